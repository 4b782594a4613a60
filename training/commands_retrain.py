"""Retraining commands: ``epidose retrain``, ``epidose scheduler`` and ``epidose models``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _settings(**overrides: Any) -> Any:
    """Retraining settings from the environment (read by ``plugin.settings``, the only reader of it)."""
    from plugin.settings import Settings, SettingsError
    from training.retrain_settings import RetrainSettingsError

    try:
        settings = Settings.from_env().retrain
    except (SettingsError, RetrainSettingsError) as error:
        raise click.ClickException(str(error)) from error
    if settings is None:
        raise click.ClickException("the retraining settings are unavailable")
    changes = {key: value for key, value in overrides.items() if value is not None}
    return settings.with_overrides(**changes) if changes else settings


def _registry() -> Any:
    """The registry, refusing any folder the service could not serve (load, schema, forward pass)."""
    from training.model_check import check_model_folder
    from training.registry import open_registry

    settings = _settings()
    return open_registry(settings.registry_dir, settings.keep, settings.database_url, check=check_model_folder)


def register(group: click.Group) -> None:
    """Attach ``retrain``, ``scheduler`` and ``models`` to the root group."""

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
            from training.retrain import read_records, shared_database

            settings = _settings()
            for line in read_records(settings.runs_file, shared_database(settings)):
                click.echo(json.dumps(line, sort_keys=True))
            return
        from training.retrain import retrain_once, strict_json

        overrides: dict[str, Any] = {}
        if fhir_server:
            overrides["fhir_server_url"] = fhir_server.rstrip("/")
        if source:
            overrides.update(source_dir=source, fhir_server_url=None)
        settings = _settings()
        if overrides:
            settings = settings.with_overrides(**overrides)
        record = retrain_once(settings)
        click.echo(json.dumps(strict_json(record.as_dict()), sort_keys=True, default=str))
        if record.decision == "failed":
            raise SystemExit(1)

    @group.command("scheduler")
    def scheduler() -> None:
        """Run scheduled retraining in this process (one per data folder; never in web workers)."""
        from training.scheduler import SchedulerAlreadyRunning, run_scheduler

        try:
            run_scheduler(_settings())
        except SchedulerAlreadyRunning as error:
            raise click.ClickException(str(error)) from error

    @group.group("models")
    def models() -> None:
        """The model registry: list versions, add a trained folder, promote one, roll back."""

    @models.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
    def list_models(as_json: bool) -> None:
        """Stored versions, oldest first; the current one is marked with *."""
        for version in _registry().versions():
            if as_json:
                click.echo(json.dumps(version.as_dict(), sort_keys=True, default=str))
                continue
            metrics = version.metadata.get("metrics", {})
            agreement = metrics.get("top1_agreement")
            summary = f"agreement {agreement:.3f}" if isinstance(agreement, float) else ""
            click.echo(f"{'*' if version.current else ' '} {version.version}  {version.created}  {summary}".rstrip())

    @models.command("add")
    @click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--promote", "promote_now", is_flag=True, help="Also make it the model in service.")
    def add(folder: Path, promote_now: bool) -> None:
        """Store the model folder FOLDER (from epidose train) as a new version, once it passes the checks."""
        from training.registry import RegistryError

        registry = _registry()
        try:
            version = registry.add(folder, {"source": "epidose models add"})
            if promote_now:
                registry.promote(version)
        except RegistryError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"added {version}" + (" and promoted it" if promote_now else ""))

    @models.command("promote")
    @click.argument("version")
    def promote(version: str) -> None:
        """Make VERSION the model in service (the service picks it up without restart)."""
        from training.registry import RegistryError

        try:
            _registry().promote(version)
        except RegistryError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"promoted {version}")

    @models.command("rollback")
    def rollback() -> None:
        """Return to the previously promoted version."""
        from training.registry import RegistryError

        try:
            version = _registry().rollback()
        except RegistryError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"rolled back to {version}")
