"""The raw resource store as Parquet: every pulled FHIR resource, columnar, deduplicated by id and version.

The same interface and watermark as :class:`training.retrain.resources.ResourceStore` (NDJSON), laid out as::

    parts/part-<n>.parquet   one file per pull: the resources new to the store, every version each once
    manifest.json            the committed parts, replaced atomically (temporary file, fsync, os.replace)
    state.json               the pull watermark, replaced atomically after a pull has fully succeeded

Each row keeps what deduplication and the watermark need as columns (type, id, version key, version
number, ``lastUpdated`` as written and as UTC microseconds, patient) beside the resource's JSON, so
finding what is new, each patient's marks and the newest version of every resource read a few small
columns and never parse the resources.

A pull is committed by the manifest alone: its part is written under a temporary name, fsynced and
renamed, and only then does the manifest name it. A crash at any point leaves the manifest as it
was, so readers see the store as it was; the next write deletes the unnamed leftovers. After
``COMPACT_AT`` parts the store rewrites them as one (same rows, same order), again by manifest swap.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.private_files import atomic_write, fsync_dir, open_private, private_dir
from training.retrain.resources import ResourceStore, instant_order, last_updated, patient_of, version_key

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
PARTS_DIR = "parts"
FORMAT = "epidose-resource-store/parquet"
FORMAT_VERSION = 1
# Parts before a compaction: each pull adds one, and reading many small files costs a file open each.
COMPACT_AT = 24
# Rows converted and written at a time (one Parquet row group): bounds the memory of a large pull.
BATCH_ROWS = 65_536
KEY_COLUMNS = ("resource_type", "id", "version_key")
SCHEMA = pa.schema([
    ("resource_type", pa.string()),
    ("id", pa.string()),
    ("version_key", pa.string()),
    ("version_number", pa.int64()),      # meta.versionId when it is a number, else 0
    ("last_updated", pa.string()),       # meta.lastUpdated as the server wrote it
    ("last_updated_us", pa.int64()),     # the same instant in UTC microseconds, for ordering
    ("patient", pa.string()),
    ("resource", pa.large_string()),     # the resource, JSON with sorted keys
])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant_microseconds(value: str | None) -> int | None:
    """An instant as UTC microseconds since 1970 (a date or a time without offset counts as UTC)."""
    if not value:
        return None
    try:
        moment = instant_order(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _version_number(resource: Mapping[str, Any]) -> int:
    meta = resource.get("meta") or {}
    version = str(meta.get("versionId", "")) if isinstance(meta, dict) else ""
    return int(version) if version.isdigit() else 0


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a million resources are decoded, converted or mapped.

    Every container allocated counts towards a collection, and each full collection walks every live
    object: decoding 300,000 resources took 22 s with it running and 1.8 s paused (orjson, one core).
    Nothing decoded here forms a cycle, so reference counting frees it all the same.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _part_writer(parts: Path, name: str) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer on a private temporary file that becomes ``parts/name`` whole (fsync'd, renamed, the
    folder fsync'd) when the block ends, or is removed when it raises: a crash leaves no half part."""
    temporary = parts / f".{name}.tmp"
    try:
        with open_private(temporary, "wb") as handle:
            writer = pq.ParquetWriter(handle, SCHEMA, compression="zstd")
            yield writer
            writer.close()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, parts / name)
        fsync_dir(parts)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class ParquetResourceStore(ResourceStore):
    """Parquet parts of raw resources, a manifest naming the committed ones, and the pull watermark."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._key_table: pa.Table | None = None
        self._patients: set[str] | None = None
        self._marks: dict[tuple[str, str], tuple[int, str]] | None = None

    # -- the manifest -----------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The committed parts (``parts``: file and rows, oldest first); empty before the first pull."""
        try:
            value = json.loads((self.root / MANIFEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "version": FORMAT_VERSION, "parts": [], "next": 1}
        if not isinstance(value, dict) or value.get("format") != FORMAT or value.get("version") != FORMAT_VERSION:
            raise ValueError(f"{self.root / MANIFEST_FILE} is not a version {FORMAT_VERSION} Parquet resource store")
        return value

    def _write_manifest(self, manifest: Mapping[str, Any]) -> None:
        atomic_write(self.root / MANIFEST_FILE, json.dumps(dict(manifest), sort_keys=True).encode("utf-8"))

    def files(self) -> list[Path]:
        """The committed part files, oldest first."""
        return [self.root / PARTS_DIR / part["file"] for part in self.manifest()["parts"]]

    def _columns(self, columns: Iterable[str]) -> pa.Table:
        """The named columns of every committed row, in commit order."""
        names = list(columns)
        tables = [pq.read_table(path, columns=names) for path in self.files()]
        if not tables:
            return pa.table({name: pa.array([], SCHEMA.field(name).type) for name in names})
        return pa.concat_tables(tables)

    # -- reading ----------------------------------------------------------------------------------

    def iter_all(self) -> Iterator[dict[str, Any]]:
        """Every stored resource version, in commit order."""
        for path in self.files():
            for batch in pq.ParquetFile(path).iter_batches(columns=["resource"]):
                for text in batch.column(0).to_pylist():
                    yield orjson.loads(text)

    def latest(self) -> list[dict[str, Any]]:
        """The newest stored version of every resource (highest versionId, then latest ``lastUpdated``,
        then the one stored last), grouped by type in type order: what training reads."""
        chosen = self._chosen()
        resources: list[dict[str, Any]] = []
        offset = 0
        with paused_gc():
            for path in self.files():
                for batch in pq.ParquetFile(path).iter_batches(columns=["resource"]):
                    mask = pa.array(chosen[offset : offset + batch.num_rows])
                    resources.extend(orjson.loads(text) for text in pc.filter(batch.column(0), mask).to_pylist())
                    offset += batch.num_rows
        resources.sort(key=lambda resource: str(resource.get("resourceType")))  # stable: commit order kept
        return resources

    def _chosen(self) -> np.ndarray:
        chosen = np.zeros(self.count(), dtype=bool)
        chosen[self.newest_rows().to_numpy()] = True
        return chosen

    def newest_texts(self) -> pa.Array:
        """The JSON text of :meth:`latest`'s resources, in its order, still in Arrow (not parsed)."""
        chosen = self._chosen()
        kinds: list[pa.Array] = []
        texts: list[pa.Array] = []
        offset = 0
        for path in self.files():
            for batch in pq.ParquetFile(path).iter_batches(columns=["resource_type", "resource"]):
                mask = pa.array(chosen[offset : offset + batch.num_rows])
                kinds.append(pc.filter(batch.column(0), mask))
                texts.append(pc.filter(batch.column(1), mask))
                offset += batch.num_rows
        if not texts:
            return pa.array([], pa.large_string())
        order = pc.sort_indices(pa.chunked_array(kinds, pa.string()))  # stable: commit order kept within a type
        ordered = pc.take(pa.chunked_array(texts, pa.large_string()), order).combine_chunks()
        del kinds, texts
        pa.default_memory_pool().release_unused()  # the unordered copy: give it back now, not at exit
        return ordered

    def patient_index(self) -> ParquetPatientIndex:
        """What :meth:`latest` holds, grouped by patient as the mapping groups it, from which the job builds
        the visit table with one patient's resources parsed at a time (the rest stay JSON text in Arrow)."""
        from fhir_mapping.build import PATIENT_KINDS, SHARED_KINDS, patient_of

        texts = self.newest_texts()
        groups: dict[str, list[int]] = {}
        shared: dict[str, dict[str, Any]] = {}
        orphans: list[int] = []
        for start in range(0, len(texts), BATCH_ROWS):
            for position, text in enumerate(texts.slice(start, BATCH_ROWS).to_pylist(), start=start):
                resource = orjson.loads(text)
                kind = resource.get("resourceType")
                if kind in SHARED_KINDS:
                    if isinstance(resource.get("id"), str):
                        shared[f"{kind}/{resource['id']}"] = resource
                elif kind in PATIENT_KINDS:
                    patient = patient_of(resource)
                    (orphans if patient is None else groups.setdefault(patient, [])).append(position)
        return ParquetPatientIndex(texts, groups, shared, orphans)

    def newest_rows(self) -> pa.Array:
        """Row numbers (in commit order) of the newest version of every (type, id)."""
        table = self._columns(["resource_type", "id", "version_number", "last_updated_us"])
        table = table.append_column("row", pa.array(range(table.num_rows), pa.int64()))
        table = table.set_column(
            3, "last_updated_us", pc.fill_null(table.column("last_updated_us"), pa.scalar(-(2**63), pa.int64()))
        )
        ordered = table.sort_by([("resource_type", "ascending"), ("id", "ascending"), ("version_number", "descending"),
                                 ("last_updated_us", "descending"), ("row", "descending")])
        first = ordered.group_by(["resource_type", "id"], use_threads=False).aggregate([("row", "first")])
        return first.column("row_first").combine_chunks()

    def count(self) -> int:
        """Stored resource versions."""
        return sum(int(part["rows"]) for part in self.manifest()["parts"])

    def counts_by_type(self) -> dict[str, int]:
        counts = pc.value_counts(self._columns(["resource_type"]).column(0).combine_chunks())
        return dict(sorted((str(item["values"]), int(item["counts"])) for item in counts.to_pylist()))

    def patient_ids(self) -> set[str]:
        """Patients with at least one stored resource."""
        self._load_patients()
        assert self._patients is not None
        return set(self._patients)

    def patient_mark(self, resource_type: str, patient_id: str) -> str | None:
        """The latest ``lastUpdated`` stored for this patient and type: a per-patient watermark."""
        self._load_patients()
        assert self._marks is not None
        mark = self._marks.get((resource_type, patient_id))
        return mark[1] if mark else None

    def contains(self, resource: Mapping[str, Any]) -> bool:
        key = (str(resource.get("resourceType")), str(resource.get("id")), version_key(resource))
        keys = self._keys_table()
        match = pc.and_(pc.and_(pc.equal(keys.column(0), key[0]), pc.equal(keys.column(1), key[1])),
                        pc.equal(keys.column(2), key[2]))
        return bool(pc.any(match).as_py())

    def _keys_table(self) -> pa.Table:
        if self._key_table is None:
            self._key_table = self._columns(KEY_COLUMNS)
        return self._key_table

    def _load_patients(self) -> None:
        if self._marks is not None:
            return
        table = self._columns(["resource_type", "patient", "last_updated", "last_updated_us"])
        self._patients, self._marks = set(), {}
        self._note_patients(table)

    def _note_patients(self, table: pa.Table) -> None:
        """Fold rows (type, patient, lastUpdated, its microseconds) into the patient set and marks."""
        assert self._patients is not None and self._marks is not None
        table = table.filter(pc.is_valid(table.column("patient")))
        self._patients.update(pc.unique(table.column("patient")).to_pylist())
        dated = table.filter(pc.is_valid(table.column("last_updated_us"))).sort_by("last_updated_us")
        newest = dated.group_by(["resource_type", "patient"], use_threads=False).aggregate(
            [("last_updated_us", "last"), ("last_updated", "last")]
        )
        for resource_type, patient, micros, text in zip(*(newest.column(name).to_pylist() for name in (
                "resource_type", "patient", "last_updated_us_last", "last_updated_last")), strict=True):
            held = self._marks.get((resource_type, patient))
            if held is None or micros > held[0]:
                self._marks[(resource_type, patient)] = (micros, text)

    # -- writing ----------------------------------------------------------------------------------

    def add_all(self, resources: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Store the resources not stored yet (by type, id and version) as one part; returns new ones per type."""
        with paused_gc():
            return self._add_all(resources)

    def _add_all(self, resources: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        self.remove_leftovers()
        candidates: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        for resource in resources:
            resource_type, resource_id = resource.get("resourceType"), resource.get("id")
            if not resource_type or not resource_id or not str(resource_type).isalpha():
                continue
            candidates.setdefault((str(resource_type), str(resource_id), version_key(resource)), resource)
        fresh = self._not_stored(list(candidates))
        if not fresh:
            return {}
        manifest = self.manifest()
        number = int(manifest.get("next", 1))
        name = f"part-{number:08d}.parquet"
        added = self._write_part(name, [(key, candidates[key]) for key in fresh])
        manifest["parts"] = [*manifest["parts"], {"file": name, "rows": added.num_rows}]
        manifest["next"] = number + 1
        self._write_manifest(manifest)
        self._remember_part(added)
        if len(manifest["parts"]) >= COMPACT_AT:
            self.compact()
        counts: dict[str, int] = {}
        for resource_type, _, _ in fresh:
            counts[resource_type] = counts.get(resource_type, 0) + 1
        return dict(sorted(counts.items()))

    def _not_stored(self, keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        """The keys (type, id, version key) of ``keys`` the store does not hold, in their order."""
        if not keys:
            return []
        batch = pa.table({
            "resource_type": pa.array([k[0] for k in keys], pa.string()),
            "id": pa.array([k[1] for k in keys], pa.string()),
            "version_key": pa.array([k[2] for k in keys], pa.string()),
            "position": pa.array(range(len(keys)), pa.int64()),
        })
        stored = self._keys_table()
        if stored.num_rows:
            batch = batch.join(stored, keys=list(KEY_COLUMNS), join_type="left anti")
        positions = sorted(batch.column("position").to_pylist())
        return [keys[p] for p in positions]

    def _write_part(self, name: str, resources: list[tuple[tuple[str, str, str], Mapping[str, Any]]]) -> pa.Table:
        """Write a part under a temporary name, fsync, rename; returns its key and patient columns."""
        kept: list[pa.Table] = []
        with _part_writer(private_dir(self.root / PARTS_DIR), name) as writer:
            for start in range(0, len(resources), BATCH_ROWS):
                table = _rows(resources[start : start + BATCH_ROWS])
                writer.write_table(table, row_group_size=BATCH_ROWS)
                kept.append(table.drop_columns(["resource"]))
        return pa.concat_tables(kept)

    def _remember_part(self, added: pa.Table) -> None:
        if self._key_table is not None:
            self._key_table = pa.concat_tables([self._key_table, added.select(list(KEY_COLUMNS))])
        if self._marks is not None:
            self._note_patients(added.select(["resource_type", "patient", "last_updated", "last_updated_us"]))

    def remove_leftovers(self) -> list[str]:
        """Delete part files no manifest names (a crashed write's); the single writer calls it."""
        named = {part["file"] for part in self.manifest()["parts"]}
        removed = []
        folder = self.root / PARTS_DIR
        for path in list(folder.iterdir()) if folder.is_dir() else []:
            if path.name not in named:
                path.unlink()
                removed.append(path.name)
        for path in self.root.glob(f".{MANIFEST_FILE}-*"):  # atomic_write's temporary names
            path.unlink()
            removed.append(path.name)
        if removed:
            log.warning("removed %d leftover file(s) of an interrupted store write", len(removed))
        return removed

    def compact(self) -> None:
        """Rewrite every part as one (same rows, same order), committed by the manifest; then drop the old."""
        manifest = self.manifest()
        old = self.files()
        if len(old) < 2:
            return
        number = int(manifest["next"])
        name = f"part-{number:08d}.parquet"
        rows = 0
        with _part_writer(self.root / PARTS_DIR, name) as writer:
            for path in old:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
                    writer.write_batch(batch, row_group_size=BATCH_ROWS)
                    rows += batch.num_rows
        self._write_manifest({**manifest, "parts": [{"file": name, "rows": rows}], "next": number + 1})
        for path in old:
            path.unlink()


class ParquetPatientIndex:
    """The newest versions by patient, in the order and with the rules of ``collect_resources`` +
    ``build_timelines`` (as :class:`fhir_mapping.bulk.PatientIndex` for the NDJSON store): patients in
    order of first appearance, resources without a patient given to the only patient when there is one."""

    def __init__(self, texts: pa.Array, groups: dict[str, list[int]], shared: dict[str, dict[str, Any]],
                 orphans: list[int]) -> None:
        self.texts, self.groups, self.shared, self.orphans = texts, groups, shared, orphans

    def patient_ids(self) -> list[str]:
        return list(self.groups)

    def resources(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's newest versions, parsed from their text."""
        positions = self.groups[patient_id]
        if len(self.groups) == 1 and self.orphans:
            positions = positions + self.orphans
        return [orjson.loads(text) for text in pc.take(self.texts, pa.array(positions, pa.int64())).to_pylist()]

    def timelines(self, *, as_of: Any = None) -> Iterator[Any]:
        """One timeline per patient, each patient's resources dropped once mapped."""
        from fhir_mapping.build import build_patient_timeline

        for patient_id in self.groups:
            yield build_patient_timeline(patient_id, self.resources(patient_id), self.shared, as_of=as_of)


def _rows(keyed: list[tuple[tuple[str, str, str], Mapping[str, Any]]]) -> pa.Table:
    """Resources with their keys (type, id, version key) as a table of the store's schema."""
    resources = [resource for _, resource in keyed]
    stamps = [last_updated(r) for r in resources]
    return pa.table({
        "resource_type": pa.array([key[0] for key, _ in keyed], pa.string()),
        "id": pa.array([key[1] for key, _ in keyed], pa.string()),
        "version_key": pa.array([key[2] for key, _ in keyed], pa.string()),
        "version_number": pa.array([_version_number(r) for r in resources], pa.int64()),
        "last_updated": pa.array(stamps, pa.string()),
        "last_updated_us": pa.array([instant_microseconds(s) for s in stamps], pa.int64()),
        "patient": pa.array([patient_of(r) for r in resources], pa.string()),
        "resource": pa.array([orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in resources],
                             pa.large_string()),
    }, schema=SCHEMA)


def open_store(root: Path, kind: str = "ndjson") -> ResourceStore:
    """The store in ``root``: the kind already there (an NDJSON store stays NDJSON), else ``kind``."""
    root = Path(root)
    if (root / MANIFEST_FILE).exists():
        return ParquetResourceStore(root)
    if any(root.glob("*.ndjson")) or kind == "ndjson":
        return ResourceStore(root)
    if kind != "parquet":
        raise ValueError(f"unknown resource store kind {kind!r} (parquet or ndjson)")
    return ParquetResourceStore(root)
