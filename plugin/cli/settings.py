"""``epidose settings``: the configuration reference."""

from __future__ import annotations

import click


@click.command("settings")
def settings_reference() -> None:
    """Print the configuration reference (every EPIDOSE_* variable, service and retraining) as Markdown."""
    from plugin.confdoc import reference_markdown

    click.echo(reference_markdown(), nl=False)
