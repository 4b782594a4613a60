"""Retraining commands: ``epidose retrain`` and ``epidose scheduler``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def retrain_settings(**overrides: Any) -> Any:
    """Retraining settings from the environment; a bad or unknown variable is an EpidoseError (one line, exit 1)."""
    from plugin.settings import read_retrain_settings

    settings = read_retrain_settings()
    changes = {key: value for key, value in overrides.items() if value is not None}
    return settings.with_overrides(**changes) if changes else settings


def register(group: click.Group) -> None:
    """Attach ``retrain`` and ``scheduler`` to the root group."""

    @group.command("retrain")
    @click.option("--once", is_flag=True, help="Run one retraining now (pull, train, compare, promote or refuse).")
    @click.option("--history", is_flag=True, help="Print every run record, one JSON object per line.")
    @click.option("--fhir-server", metavar="URL", help="Pull from this FHIR server instead of the configured source.")
    @click.option("--source", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="Pull from this folder of FHIR NDJSON (cohort layout) instead of a server.")
    def retrain(once: bool, history: bool, fhir_server: str | None, source: Path | None) -> None:
        """Retrain from new FHIR data and promote the candidate only if the gate passes."""
        if once == history:
            raise click.UsageError("choose exactly one of --once or --history")
        if fhir_server and source:
            raise click.UsageError("--fhir-server and --source are alternatives")
        if history:
            from training.retrain.records import read_records, shared_database

            settings = retrain_settings()
            for line in read_records(settings.runs_file, shared_database(settings)):
                click.echo(json.dumps(line, sort_keys=True))
            return
        from training.retrain.job import retrain_once
        from training.retrain.records import strict_json

        overrides: dict[str, Any] = {}
        if fhir_server:
            overrides["fhir_server_url"] = fhir_server.rstrip("/")
        if source:
            overrides.update(source_dir=source, fhir_server_url=None)
        settings = retrain_settings()
        if overrides:
            settings = settings.with_overrides(**overrides)
        record = retrain_once(settings)
        click.echo(json.dumps(strict_json(record.as_dict()), sort_keys=True, default=str))
        if record.decision == "failed":
            raise SystemExit(1)

    @group.command("scheduler")
    def scheduler() -> None:
        """Run scheduled retraining in this process (one per data folder; never in web workers)."""
        from training.retrain.scheduler import run_scheduler

        run_scheduler(retrain_settings())
