"""Incremental pull of new clinical data into the raw resource store.

From a FHIR server (paged search, the default):
  1. Encounters with ``_lastUpdated`` after the stored watermark, sorted by ``_lastUpdated``, every page.
  2. For the patients those encounters belong to: Patient, Encounter, Observation, Condition,
     MedicationRequest, DocumentReference and QuestionnaireResponse. A patient seen before is asked, per type, only for what changed after the
     newest resource of that type already stored for them (``_lastUpdated=gt``), so known data is
     not downloaded again; a new patient is pulled whole.
  3. Only when every request has succeeded: append to the store, then move the watermark to the
     newest Encounter ``lastUpdated`` seen. A failure anywhere leaves the store and watermark as they
     were (the next run repeats the pull; the store drops duplicates by id and version).

From Bulk Data $export (setting ``bulk_export``): one Patient-level export with ``_since`` the
watermark; the new watermark is the export's ``transactionTime``.

From a folder (no server): the NDJSON files of the cohort layout (``DIR/ndjson/<Type>.ndjson`` or
``DIR/<Type>.ndjson``); the store's deduplication makes repeated runs pull nothing new.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.retrain.client import FhirClient, FhirMalformedResponse
from training.retrain.resources import ResourceStore, last_updated, later, patient_of, version_key

# What the mapping reads (fhir_mapping.inputs / build): everything else on the server is left there.
# DocumentReference and QuestionnaireResponse: where EHR charts keep the seizure history (notes, forms).
PULLED_TYPES = ("Patient", "Encounter", "Observation", "Condition", "MedicationRequest", "DocumentReference", "QuestionnaireResponse")
PATIENT_TYPES = ("Encounter", "Observation", "Condition", "MedicationRequest", "DocumentReference", "QuestionnaireResponse")
# Patients per search when several are asked for at once (comma = OR in FHIR search).
PATIENTS_PER_QUERY = 20


@dataclass
class PullResult:
    """What one pull fetched and stored."""

    source: str
    fetched: int = 0
    """Resources received from the source (before deduplication)."""
    new: int = 0
    """Resources the store did not have (by id and version)."""
    new_by_type: dict[str, int] = field(default_factory=dict)
    fetched_by_type: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    """Patients whose data was asked for."""
    requests: int = 0
    seconds: float = 0.0
    watermark_before: str | None = None
    watermark_after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _count(resources: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in resources:
        key = str(resource.get("resourceType"))
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _commit(store: ResourceStore, result: PullResult, received: list[dict[str, Any]], watermark: str | None) -> PullResult:
    # A resource can arrive twice in one pull (an Encounter found by date and by patient).
    unique: dict[tuple[str, str, str], dict[str, Any]] = {}
    for resource in received:
        unique.setdefault((str(resource.get("resourceType")), str(resource.get("id")), version_key(resource)), resource)
    resources = list(unique.values())
    result.fetched = len(resources)
    result.fetched_by_type = _count(resources)
    result.new_by_type = store.add_all(resources)
    result.new = sum(result.new_by_type.values())
    # Data first, watermark last: a crash in between only makes the next pull repeat work.
    result.watermark_after = later(result.watermark_before, watermark)
    state = store.state()
    state.update({"watermark": result.watermark_after, "pulled_at": _now(), "source": result.source})
    store.write_state(state)
    return result


def pull_from_server(client: FhirClient, store: ResourceStore) -> PullResult:
    """Incremental pull by paged search (see the module docstring); raises a FhirError on failure."""
    started = time.monotonic()
    requests_before = client.requests_made
    result = PullResult(source="fhir", watermark_before=store.watermark())
    query = {"_sort": "_lastUpdated"}
    if result.watermark_before:
        query["_lastUpdated"] = f"gt{result.watermark_before}"
    encounters = list(client.search("Encounter", query))
    newest: str | None = None
    patients: list[str] = []
    for encounter in encounters:
        if encounter.get("resourceType") != "Encounter":
            continue
        stamp = last_updated(encounter)
        if stamp is None:
            raise FhirMalformedResponse("an Encounter without meta.lastUpdated cannot move the watermark")
        newest = later(newest, stamp)
        patient = patient_of(encounter)
        if patient and patient not in patients:
            patients.append(patient)
    resources: list[dict[str, Any]] = list(encounters)
    resources.extend(_pull_patients(client, store, patients))
    result.patients = len(patients)
    result.requests = client.requests_made - requests_before
    _commit(store, result, resources, newest)
    result.seconds = time.monotonic() - started
    return result


def _pull_patients(client: FhirClient, store: ResourceStore, patients: list[str]) -> Iterator[dict[str, Any]]:
    """The listed patients' resources, asking only for what changed since each was last pulled.

    New patients: every resource, 20 patients per search. Known patients: per type, only what was
    updated after the newest stored resource of that type and patient. Every resource the server
    had not yet shown us is newer than that mark (it was written after the search that returned the
    mark), so nothing is missed and nothing stored is asked for again. Those searches differ per
    patient, so they travel in batch Bundles, 100 searches per request.
    """
    known = store.patient_ids()
    unknown = [p for p in patients if p not in known]
    for start in range(0, len(unknown), PATIENTS_PER_QUERY):
        chunk = ",".join(unknown[start : start + PATIENTS_PER_QUERY])
        yield from client.search("Patient", {"_id": chunk})
        for resource_type in PATIENT_TYPES:
            yield from client.search(resource_type, {"patient": chunk})
    queries: list[tuple[str, dict[str, str]]] = []
    for patient in (p for p in patients if p in known):
        for resource_type in PULLED_TYPES:
            query = {"_id": patient} if resource_type == "Patient" else {"patient": patient}
            mark = store.patient_mark(resource_type, patient)
            if mark:
                query["_lastUpdated"] = f"gt{mark}"
            queries.append((resource_type, query))
    yield from client.search_many(queries)


def pull_bulk(client: FhirClient, store: ResourceStore) -> PullResult:
    """Incremental pull by Bulk Data $export with ``_since`` the watermark."""
    started = time.monotonic()
    requests_before = client.requests_made
    result = PullResult(source="bulk", watermark_before=store.watermark())
    transaction_time, stream = client.bulk_export(level="Patient", types=PULLED_TYPES, since=result.watermark_before)
    resources = list(stream)
    if transaction_time is None:
        raise FhirMalformedResponse("$export manifest without transactionTime")
    result.patients = len({patient_of(r) for r in resources} - {None})
    result.requests = client.requests_made - requests_before
    _commit(store, result, resources, transaction_time)
    result.seconds = time.monotonic() - started
    return result


def ndjson_files(source_dir: Path) -> list[Path]:
    """The NDJSON files of a folder in the cohort layout (``ndjson/``) or flat."""
    folder = source_dir / "ndjson" if (source_dir / "ndjson").is_dir() else source_dir
    return sorted(p for p in folder.glob("*.ndjson") if p.stem in PULLED_TYPES)


def pull_from_folder(source_dir: Path, store: ResourceStore) -> PullResult:
    """Read a folder of FHIR NDJSON (the embedded source when no server is configured)."""
    started = time.monotonic()
    result = PullResult(source="folder", watermark_before=store.watermark())
    files = ndjson_files(Path(source_dir))
    if not files:
        raise FileNotFoundError(f"no FHIR NDJSON files in {source_dir}")
    resources: list[dict[str, Any]] = []
    newest: str | None = None
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                resource = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path.name} line {number} is not JSON") from error
            if isinstance(resource, dict) and resource.get("resourceType"):
                resources.append(resource)
                newest = later(newest, last_updated(resource))
    result.patients = len({patient_of(r) for r in resources} - {None})
    _commit(store, result, resources, newest)
    result.seconds = time.monotonic() - started
    return result
