"""``epidose load``: the loader of :mod:`plugin.load` as a command."""

from __future__ import annotations

from pathlib import Path

import click

from plugin.load import REASONS_SHOWN, LoadError, Tally, _files, _units, count_resources, send


@click.command("load")
@click.option("--fhir-server", "fhir_server", required=True, metavar="URL",
              help="Base URL of the FHIR R4 server to load into, e.g. http://127.0.0.1:8090/fhir.")
@click.option("--token", default=None, help="Access token for the FHIR server (sent as Bearer; never printed).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on standard error.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def load(fhir_server: str, token: str | None, progress: bool, paths: tuple[Path, ...]) -> None:
    """Load FHIR transaction/batch Bundles (*.json) and NDJSON (*.ndjson, one resource a line) into a FHIR server.

    PATHS are files or folders (searched for *.json and *.ndjson), e.g. the `bundles/` folder that
    `epidose cohort` writes. Prints how many resources were loaded and, for those that failed, how many
    for each reason the server gave; exits with status 1 when any failed.
    """
    import requests
    from tqdm import tqdm

    base = fhir_server.rstrip("/")
    files = _files(paths)
    if not files:
        raise LoadError("no *.json or *.ndjson files under the paths given")
    tally = Tally()
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    with tqdm(total=count_resources(files), disable=not progress, unit="resource", desc="load",
              mininterval=0.5) as bar:
        for unit in _units(files, tally):
            send(session, base, unit, tally)
            bar.update(unit.resources)
    click.echo(f"{tally.loaded} resource(s) loaded into {base} from {len(files)} file(s); {tally.failed} failed",
               err=True)
    for reason, count in tally.reasons.most_common(REASONS_SHOWN):
        click.echo(f"  {count} × {reason}", err=True)
    if len(tally.reasons) > REASONS_SHOWN:
        click.echo(f"  … and {len(tally.reasons) - REASONS_SHOWN} other reason(s)", err=True)
    if tally.failed:
        raise SystemExit(1)
