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
    @click.option("--pd", "pd_profile", type=click.Choice(["sourced", "fitted"]), default="sourced", show_default=True,
                  help="Exposure–response world: sourced (Schoemaker 2018 adapted to BECT) or fitted (EC50 0.7 mg/L).")
    def cohort(n_patients: int, seed: int, out: Path, end_date: datetime | None, dialect: str, pd_profile: str) -> None:
        """Simulate children with BECT treated with levetiracetam and write them as FHIR R4."""
        from training.simulator.calibration import checks_meaningful, too_small_to_judge
        from training.simulator.cohort import write_cohort
        from training.simulator.config import DEFAULT_CONFIG, ending_on, with_pd_profile

        config = with_pd_profile(DEFAULT_CONFIG, pd_profile)
        config = config if end_date is None else ending_on(config, end_date.date())
        summary = write_cohort(out, n_patients, seed, config, dialect=dialect)
        checks = summary.report["checks"]
        click.echo(f"{summary.patients} patients, {summary.visits} visits, {summary.resources} resources in "
                   f"{summary.seconds:.1f} s, written to {out}")
        if checks_meaningful(summary.patients):
            click.echo(f"calibration against the published study: {sum(checks.values())} of {len(checks)} checks "
                       f"passed (see {out / 'calibration.md'})")
        else:
            click.echo(f"calibration: {too_small_to_judge(summary.patients)} The comparison is in "
                       f"{out / 'calibration.md'}.")
