"""``epidose models``: the model registry (list, add, promote, roll back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from plugin.cli.retrain import retrain_settings


def _registry() -> Any:
    """The registry, refusing any folder the service could not serve (load, schema, forward pass)."""
    from training.artifact.check import check_model_folder
    from training.artifact.registry import open_registry

    settings = retrain_settings()
    return open_registry(settings.registry_dir, settings.keep, settings.database_url, check=check_model_folder)


@click.group("models")
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
    registry = _registry()
    version = registry.add(folder, {"source": "epidose models add"})
    if promote_now:
        registry.promote(version)
    click.echo(f"added {version}" + (" and promoted it" if promote_now else ""))

@models.command("promote")
@click.argument("version")
def promote(version: str) -> None:
    """Make VERSION the model in service (the service picks it up without restart)."""
    _registry().promote(version)
    click.echo(f"promoted {version}")

@models.command("rollback")
def rollback() -> None:
    """Return to the previously promoted version."""
    version = _registry().rollback()
    click.echo(f"rolled back to {version}")
