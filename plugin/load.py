"""``epidose load``: put FHIR data (transaction or batch Bundles, NDJSON) into a FHIR server.

For integrators and first tries: load ``epidose cohort``'s output, or any FHIR export, into a test
server before pointing ``epidose sandbox`` at it. A Bundle file is posted as it is (a transaction is
all or nothing, so its failure counts every entry). NDJSON lines travel as batch Bundles of
``BATCH_SIZE`` PUTs (resources with an id) or POSTs, so each resource gets its own status. Nothing is
silent: a progress bar counts resources, and every failure is counted under its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_mapping.errors import EpidoseError

BATCH_SIZE = 200  # resources per batch Bundle: small enough for a server's body limit, large enough to be quick
TIMEOUT_SECONDS = 120.0  # a transaction of a few hundred resources on a test server can take a while
REASONS_SHOWN = 10
# Types that others refer to go first, so that a server checking references finds them.
TYPE_ORDER = ("Patient", "Practitioner", "Organization", "Location", "Encounter", "Condition", "Observation")


class LoadError(EpidoseError):
    """A file or the server cannot be used at all; the message says which and why."""


@dataclass
class Tally:
    """Resources loaded, and the failures counted by their reason."""

    loaded: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def fail(self, count: int, reason: str) -> None:
        self.failed += count
        self.reasons[reason] += count


@dataclass
class Unit:
    """One request's worth of data: a Bundle to post, where it came from, how many resources it holds."""

    bundle: dict[str, Any]
    origin: str
    resources: int
    atomic: bool


def _files(paths: tuple[Path, ...]) -> list[Path]:
    """The files named, and those inside named folders (``*.json``, ``*.ndjson``), in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = [p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".ndjson")]
            found += sorted(inside, key=_load_order)
        else:
            found.append(path)
    return found


def _load_order(path: Path) -> tuple[int, int, str]:
    """NDJSON before Bundles is arbitrary; within NDJSON, referenced types first."""
    kind = path.stem
    rank = TYPE_ORDER.index(kind) if kind in TYPE_ORDER else len(TYPE_ORDER)
    return (0 if path.suffix == ".ndjson" else 1, rank, str(path))


def _ndjson_units(path: Path, tally: Tally) -> Iterator[Unit]:
    batch: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError as error:
                tally.fail(1, f"{path.name} line {number}: not JSON ({error.msg})")
                continue
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                tally.fail(1, f"{path.name} line {number}: not a FHIR resource (no resourceType)")
                continue
            kind, rid = resource["resourceType"], resource.get("id")
            request = {"method": "PUT", "url": f"{kind}/{rid}"} if isinstance(rid, str) and rid else \
                {"method": "POST", "url": kind}
            batch.append({"resource": resource, "request": request})
            if len(batch) == BATCH_SIZE:
                yield Unit({"resourceType": "Bundle", "type": "batch", "entry": batch}, path.name, len(batch), False)
                batch = []
    if batch:
        yield Unit({"resourceType": "Bundle", "type": "batch", "entry": batch}, path.name, len(batch), False)


def _bundle_unit(path: Path, tally: Tally) -> Unit | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        tally.fail(1, f"{path.name}: not readable JSON ({type(error).__name__})")
        return None
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle" or value.get("type") not in ("transaction", "batch"):
        tally.fail(1, f"{path.name}: not a transaction or batch Bundle")
        return None
    entries = value.get("entry")
    return Unit(value, path.name, len(entries) if isinstance(entries, list) else 0, value.get("type") == "transaction")


def _units(files: list[Path], tally: Tally) -> Iterator[Unit]:
    for path in files:
        if path.suffix == ".ndjson":
            yield from _ndjson_units(path, tally)
        else:
            unit = _bundle_unit(path, tally)
            if unit is not None:
                yield unit


def count_resources(files: list[Path]) -> int:
    """The progress bar's total: NDJSON lines plus Bundle entries (a cheap count, not a parse)."""
    total = 0
    for path in files:
        try:
            if path.suffix == ".ndjson":
                with path.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            else:
                total += path.read_text(encoding="utf-8").count('"request"')
        except (OSError, UnicodeDecodeError):
            continue
    return total


def _outcome_text(body: Any) -> str:
    """The first issue of an OperationOutcome, as a short reason."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or []:
            if isinstance(issue, dict):
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
                if text:
                    return str(text)[:200]
    return ""


def _status_reason(status: str, outcome: Any) -> str:
    text = _outcome_text(outcome)
    return f"{status}: {text}" if text else status


def send(session: Any, base: str, unit: Unit, tally: Tally) -> None:
    """Post one Bundle and count its failures, entry by entry where the server says."""
    import requests

    try:
        response = session.post(base, json=unit.bundle, timeout=TIMEOUT_SECONDS,
                                headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
    except requests.RequestException as error:
        raise LoadError(f"the FHIR server at {base} could not be reached ({type(error).__name__}) while sending "
                        f"{unit.origin}; {tally.loaded} resource(s) were loaded before") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        tally.fail(unit.resources, _status_reason(f"HTTP {response.status_code}", body))
        return
    entries = body.get("entry") if isinstance(body, dict) and isinstance(body.get("entry"), list) else None
    if entries is None:
        if unit.atomic:  # a transaction either wholly succeeds or fails
            tally.loaded += unit.resources
        else:  # a batch answered without per-entry statuses: nothing can be claimed
            tally.fail(unit.resources, f"HTTP {response.status_code}: the batch response lists no entries")
        return
    for entry in entries:
        answer = entry.get("response") if isinstance(entry, dict) else None
        status = str((answer or {}).get("status", ""))
        if status[:1] == "2":
            tally.loaded += 1
        else:
            tally.fail(1, _status_reason(status or "no status", (answer or {}).get("outcome")))
