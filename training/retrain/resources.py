"""The raw resource store: every pulled FHIR resource, NDJSON by type, deduplicated by id and version.

Each retraining reads the store, so any run can be reproduced from the files alone. Layout::

    <Type>.ndjson   appended resources, one per line (every version ever pulled, each once)
    state.json      the pull watermark, replaced atomically after a pull has fully succeeded

A crash while appending can leave a torn last line; readers skip lines that do not parse, and the
next pull fetches those resources again because the watermark did not move.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from training.private_files import atomic_write, open_private, private_dir

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def version_key(resource: Mapping[str, Any]) -> str:
    """What distinguishes two versions of one resource: versionId, else lastUpdated, else content."""
    meta = resource.get("meta") or {}
    if isinstance(meta, dict):
        if meta.get("versionId"):
            return f"v:{meta['versionId']}"
        if meta.get("lastUpdated"):
            return f"t:{meta['lastUpdated']}"
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"))
    return "h:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def last_updated(resource: Mapping[str, Any]) -> str | None:
    """The resource's ``meta.lastUpdated`` as written by the server, or None."""
    meta = resource.get("meta") or {}
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return str(value) if value else None


def instant_order(value: str) -> datetime:
    """An instant as an aware datetime, to compare ``lastUpdated`` values written with any precision."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def later(a: str | None, b: str | None) -> str | None:
    """The later of two instants (None counts as earliest)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if instant_order(a) >= instant_order(b) else b


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The id of the Patient a resource belongs to (itself for a Patient), from subject/patient."""
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id")) if resource.get("id") else None
    for element in ("subject", "patient"):
        reference = resource.get(element)
        if isinstance(reference, dict):
            text = str(reference.get("reference") or "")
            if text.startswith("Patient/"):
                return text.split("/")[1]
            if "/Patient/" in text:
                return text.split("/Patient/")[1].split("/")[0]
    return None


def _version_number(resource: Mapping[str, Any]) -> tuple[int, str]:
    meta = resource.get("meta") or {}
    version = str(meta.get("versionId", "")) if isinstance(meta, dict) else ""
    return (int(version) if version.isdigit() else 0, last_updated(resource) or "")


class ResourceStore:
    """Append-only NDJSON files of raw resources plus the pull watermark."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        private_dir(self.root)  # raw patient records
        self._keys: set[tuple[str, str, str]] | None = None
        # (type, patient id) -> latest lastUpdated seen: where a patient's next pull resumes.
        self._patient_marks: dict[tuple[str, str], str] = {}

    # -- reading ----------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return sorted(self.root.glob("*.ndjson"))

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Every stored resource version, file by file."""
        for path in self.files():
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        resource = json.loads(line)
                    except json.JSONDecodeError:
                        log.warning("skipping unreadable line %d of %s", number, path.name)
                        continue
                    if isinstance(resource, dict):
                        yield resource

    def latest(self) -> list[dict[str, Any]]:
        """The newest stored version of every resource: what training reads."""
        newest: dict[tuple[str, str], dict[str, Any]] = {}
        for resource in self.iter_all():
            key = (str(resource.get("resourceType")), str(resource.get("id")))
            held = newest.get(key)
            if held is None or _version_number(resource) >= _version_number(held):
                newest[key] = resource
        return list(newest.values())

    def patient_index(self) -> Any:
        """What :meth:`latest` holds, grouped by patient for :class:`fhir_mapping.bulk.PatientIndex`: only where
        each newest version lies is kept, and one patient's resources are read at a time."""
        from fhir_mapping.bulk import index_newest_versions

        return index_newest_versions(self.files(), _version_number)

    def count(self) -> int:
        """Stored resource versions."""
        return len(self._index())

    def counts_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for resource_type, _, _ in self._index():
            counts[resource_type] += 1
        return dict(sorted(counts.items()))

    def patient_ids(self) -> set[str]:
        """Patients with at least one stored resource."""
        self._index()
        return {patient for _, patient in self._patient_marks}

    def patient_mark(self, resource_type: str, patient_id: str) -> str | None:
        """The latest ``lastUpdated`` stored for this patient and type: a per-patient watermark."""
        self._index()
        return self._patient_marks.get((resource_type, patient_id))

    def contains(self, resource: Mapping[str, Any]) -> bool:
        return (str(resource.get("resourceType")), str(resource.get("id")), version_key(resource)) in self._index()

    def _index(self) -> set[tuple[str, str, str]]:
        if self._keys is None:
            self._keys = set()
            for resource in self.iter_all():
                self._remember(resource)
        return self._keys

    def _remember(self, resource: Mapping[str, Any]) -> None:
        if self._keys is None:
            self._keys = set()
        self._keys.add((str(resource.get("resourceType")), str(resource.get("id")), version_key(resource)))
        patient = patient_of(resource)
        if patient:
            key = (str(resource.get("resourceType")), patient)
            self._patient_marks[key] = later(self._patient_marks.get(key), last_updated(resource)) or ""

    # -- writing ----------------------------------------------------------------------------------

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Append the resources not stored yet (by id and version); returns new ones per type."""
        keys = self._index()
        fresh: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        batch: set[tuple[str, str, str]] = set()
        for resource in resources:
            resource_type, resource_id = resource.get("resourceType"), resource.get("id")
            if not resource_type or not resource_id:
                continue
            key = (str(resource_type), str(resource_id), version_key(resource))
            if key in keys or key in batch:
                continue
            batch.add(key)
            fresh[str(resource_type)].append(resource)
        for resource_type, items in fresh.items():
            if not resource_type.isalpha():
                continue  # a resource type names a file: never let it name a path
            with open_private(self.root / f"{resource_type}.ndjson", "a", encoding="utf-8") as handle:
                for resource in items:
                    handle.write(json.dumps(resource, separators=(",", ":"), sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            for resource in items:
                self._remember(resource)
        return {resource_type: len(items) for resource_type, items in sorted(fresh.items())}

    # -- watermark --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The stored pull state (``watermark`` and when it was set); empty before the first pull."""
        try:
            value = json.loads((self.root / STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return value if isinstance(value, dict) else {}

    def watermark(self) -> str | None:
        value = self.state().get("watermark")
        return str(value) if value else None

    def write_state(self, state: Mapping[str, Any]) -> None:
        """Replace the state file atomically (temporary file, fsync, ``os.replace``)."""
        atomic_write(self.root / STATE_FILE, json.dumps(dict(state), sort_keys=True).encode("utf-8"))
