"""``epidose cohort``: write a simulated BECT cohort as FHIR R4 (NDJSON and transaction Bundles)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click


def register(group: click.Group) -> None:
    """Attach this module's subcommands to the root group."""

    @group.command("cohort")
    @click.option("--patients", "n_patients", type=click.IntRange(min=1), default=245, show_default=True, help="Number of children.")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random seed (the cohort is deterministic for a seed).")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
    @click.option("--end-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Move the follow-up window to end on this day (default: the study's 2016-01-01 to 2021-04-29).")
    @click.option("--dialect", type=click.Choice(["epidose", "ehr", "mixed"]), default="epidose", show_default=True,
                  help="epidose: the project's coded seizure reports; ehr: Conditions, encounter diagnoses, progress notes "
                       "(English or Chinese), sparse labs and weights; mixed: one of the two per child. Truth files are the same.")
    def cohort(n_patients: int, seed: int, out: Path, end_date: datetime | None, dialect: str) -> None:
        """Simulate children with BECT treated with levetiracetam and write them as FHIR R4."""
        from training.simulator.cohort import write_cohort
        from training.simulator.config import DEFAULT_CONFIG, ending_on

        config = DEFAULT_CONFIG if end_date is None else ending_on(DEFAULT_CONFIG, end_date.date())
        summary = write_cohort(out, n_patients, seed, config, dialect=dialect)
        checks = summary.report["checks"]
        click.echo(
            f"{summary.patients} patients, {summary.visits} visits, {summary.resources} resources in {summary.seconds:.1f} s; "
            f"calibration checks passed: {sum(checks.values())}/{len(checks)} (see {out / 'calibration.md'})"
        )
