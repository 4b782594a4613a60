"""``epidose feedback export``: clinicians' feedback joined to the audit record of each card."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def feedback() -> None:
    """Feedback and audit records."""


@feedback.command("export")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV file to write (default: standard output).")
def export(out_path: Path | None) -> None:
    """Write feedback joined to the audit record of its card as CSV (patients as keyed hashes only)."""
    from plugin.settings import Settings
    from plugin.store import open_store

    settings = Settings.from_env()
    store = open_store(settings)
    if out_path is None:
        count = store.export_feedback_csv(sys.stdout)
    else:
        with out_path.open("w", newline="", encoding="utf-8") as handle:
            count = store.export_feedback_csv(handle)
    click.echo(f"{count} feedback record(s) exported", err=True)
