"""``epidose cohort``: write a simulated BECT cohort as FHIR R4 (NDJSON and transaction Bundles)."""

from __future__ import annotations

from pathlib import Path

import click


def register(group: click.Group) -> None:
    """Attach this module's subcommands to the root group."""

    @group.command("cohort")
    @click.option("--patients", "n_patients", type=click.IntRange(min=1), default=245, show_default=True, help="Number of children.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed (the cohort is deterministic for a seed).")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
    def cohort(n_patients: int, seed: int, out: Path) -> None:
        """Simulate children with BECT treated with levetiracetam and write them as FHIR R4."""
        from training.simulator.cohort import write_cohort

        summary = write_cohort(out, n_patients, seed)
        checks = summary.report["checks"]
        click.echo(
            f"{summary.patients} patients, {summary.visits} visits, {summary.resources} resources in {summary.seconds:.1f} s; "
            f"calibration checks passed: {sum(checks.values())}/{len(checks)} (see {out / 'calibration.md'})"
        )
