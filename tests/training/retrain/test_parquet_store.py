"""The Parquet resource store: round trip, deduplication keeping the newest version, watermark, crash safety."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.training.retrain.data import load, patient_resources
from training.retrain.parquet_store import (
    COMPACT_AT,
    MANIFEST_FILE,
    PARTS_DIR,
    ParquetResourceStore,
    open_store,
)
from training.retrain.pull import pull_from_folder, pull_from_server
from training.retrain.resources import ResourceStore

ROOT = Path(__file__).resolve().parents[3]


def _version(resource: dict[str, Any], version: str, stamp: str, **changes: Any) -> dict[str, Any]:
    return {**resource, **changes, "meta": {"versionId": version, "lastUpdated": stamp}}


def _canonical(resource: dict[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True)


def _snapshot(store: ParquetResourceStore) -> tuple[Any, ...]:
    fresh = ParquetResourceStore(store.root)
    newest = sorted(json.dumps(r, sort_keys=True) for r in fresh.latest())
    return fresh.count(), fresh.counts_by_type(), newest, fresh.watermark(), fresh.manifest()


def test_round_trip_keeps_every_resource_as_it_was(tmp_path: Path) -> None:
    """What is added comes back identical from a new store object, counted by type, in private files."""
    previous = os.umask(0o022)
    try:
        resources = patient_resources("p1", ["2020-01-10", "2020-04-10"]) + patient_resources("p2", ["2021-02-01"])
        resources[1]["note"] = [{"text": "seizure free since March \u2014 \u766b\u75eb"}]  # non-ASCII text survives
        store = ParquetResourceStore(tmp_path / "store")
        assert store.add_all(resources) == {"Encounter": 3, "Observation": 3, "Patient": 2}
        again = ParquetResourceStore(tmp_path / "store")
        assert sorted(map(_canonical, again.iter_all())) == sorted(map(_canonical, resources))
        assert sorted(map(_canonical, again.latest())) == sorted(map(_canonical, resources))
        assert again.count() == 8 and again.counts_by_type() == {"Encounter": 3, "Observation": 3, "Patient": 2}
        assert again.patient_ids() == {"p1", "p2"}
        assert again.contains(resources[2]) and not again.contains({"resourceType": "Patient", "id": "p3"})
        for path in [again.root / MANIFEST_FILE, *again.files()]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for path in (again.root, again.root / PARTS_DIR):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    finally:
        os.umask(previous)


def test_duplicates_are_dropped_and_the_newest_version_is_read(tmp_path: Path) -> None:
    """By type, id and version: a re-sent version adds nothing, a new one is kept beside the old, and
    training reads the newest (versionId first, then the later lastUpdated as an instant)."""
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    weight = patient_resources("p1", ["2020-01-10"])[2]
    store = ParquetResourceStore(tmp_path / "store")
    first = [_version(patient, "1", "2024-01-01T10:00:00Z"), _version(weight, "1", "2024-01-01T10:00:00Z")]
    assert store.add_all(first + first) == {"Observation": 1, "Patient": 1}
    assert store.add_all(first) == {}
    edited = _version(weight, "2", "2024-02-01T10:00:00Z", status="amended")
    store.add_all([edited])
    store.add_all([_version(weight, "3", "2024-03-01T10:00:00Z", status="entered-in-error"),
                   _version(patient, "2", "2024-03-01T10:00:00Z", gender="male")])
    store.add_all([edited])  # an old version arriving again does not come back as the newest
    reopened = ParquetResourceStore(tmp_path / "store")
    assert reopened.count() == 5
    newest = {r["resourceType"]: r for r in reopened.latest()}
    assert newest["Observation"]["status"] == "entered-in-error" and newest["Patient"]["gender"] == "male"
    # Without versionId the later instant wins, whatever the offset it is written with.
    store.add_all([{"resourceType": "Condition", "id": "c1", "clinicalStatus": "active",
                    "meta": {"lastUpdated": "2024-05-01T11:30:00+02:00"}},
                   {"resourceType": "Condition", "id": "c1", "clinicalStatus": "resolved",
                    "meta": {"lastUpdated": "2024-05-01T10:00:00Z"}}])
    conditions = [r for r in ParquetResourceStore(tmp_path / "store").latest() if r["resourceType"] == "Condition"]
    assert [c["clinicalStatus"] for c in conditions] == ["resolved"]


def test_same_newest_versions_as_the_ndjson_store(tmp_path: Path) -> None:
    """Fed the same pulls, both stores hold the same versions and hand training the same newest ones."""
    pulls = [patient_resources(f"p{n}", ["2020-01-10", "2020-04-10"]) for n in range(5)]
    stamped = [[_version(r, "1", f"2024-01-0{n + 1}T10:00:00.{i:03d}Z") for i, r in enumerate(pull)]
               for n, pull in enumerate(pulls)]
    later = [_version(r, "2", "2024-06-01T00:00:00Z", status="amended") for r in stamped[0] if r["resourceType"] == "Observation"]
    ndjson, parquet = ResourceStore(tmp_path / "ndjson"), ParquetResourceStore(tmp_path / "parquet")
    for pull in [*stamped, later, stamped[1]]:
        assert ndjson.add_all(pull) == parquet.add_all(pull)
    assert ndjson.count() == parquet.count() and ndjson.counts_by_type() == parquet.counts_by_type()
    assert sorted(map(_canonical, ndjson.latest())) == sorted(map(_canonical, parquet.latest()))
    for patient in ndjson.patient_ids():
        for kind in ("Patient", "Encounter", "Observation"):
            assert ndjson.patient_mark(kind, patient) == parquet.patient_mark(kind, patient)


def test_the_jobs_visit_table_is_the_ndjson_stores(tmp_path: Path) -> None:
    """The visit table the job builds from each store (by patient) is the one built from the newest
    versions read whole, and the same for both stores."""
    import numpy as np

    from training.retrain.job import load_visit_table, store_visit_table

    first = [_version(r, "1", "2024-01-01T00:00:00Z")
             for r in patient_resources("p1", ["2021-01-05", "2021-04-05", "2021-07-05"])
             + patient_resources("p2", ["2021-02-01", "2021-05-01"])]
    weight = next(r for r in first if r["id"] == "p1-e1-wt")
    second = [_version(weight, "2", "2024-02-01T00:00:00Z", valueQuantity={**weight["valueQuantity"], "value": 31.5})]
    ndjson, parquet = ResourceStore(tmp_path / "ndjson"), ParquetResourceStore(tmp_path / "parquet")
    for store in (ndjson, parquet):
        store.add_all(first)
        store.add_all(second)
    tables = [store_visit_table(parquet), load_visit_table(parquet.latest()), store_visit_table(ndjson)]
    assert all(table.patient_ids == ["p1", "p2"] for table in tables)
    for name in ("patient", "step", "values", "observed", "actions", "masks", "rewards", "next_index", "dones"):
        for table in tables[1:]:
            np.testing.assert_array_equal(getattr(tables[0], name), getattr(table, name), err_msg=name)
    assert 31.5 in tables[0].values


def test_watermark_and_patient_marks(tmp_path: Path) -> None:
    """The watermark is what was last written; a patient's mark is its newest lastUpdated, as written."""
    store = ParquetResourceStore(tmp_path / "store")
    assert store.watermark() is None and store.patient_mark("Observation", "p1") is None
    visits = patient_resources("p1", ["2020-01-10", "2020-04-10"])
    store.add_all([_version(visits[2], "1", "2024-01-01T12:00:00+02:00"),     # 10:00 UTC
                   _version(visits[4], "1", "2024-01-01T09:00:00.5Z")])        # earlier, though it sorts later
    assert store.patient_mark("Observation", "p1") == "2024-01-01T12:00:00+02:00"
    store.add_all([_version(visits[4], "2", "2024-01-01T10:00:00.250Z")])
    assert store.patient_mark("Observation", "p1") == "2024-01-01T10:00:00.250Z"
    assert ParquetResourceStore(store.root).patient_mark("Observation", "p1") == "2024-01-01T10:00:00.250Z"
    store.write_state({"watermark": "2024-01-01T10:00:00.250Z", "source": "fhir"})
    assert ParquetResourceStore(store.root).watermark() == "2024-01-01T10:00:00.250Z"


def test_compaction_keeps_rows_and_order(tmp_path: Path) -> None:
    """After many pulls the parts become one, with every version and the same newest ones."""
    store = ParquetResourceStore(tmp_path / "store")
    for n in range(COMPACT_AT + 2):
        resource = {"resourceType": "Observation", "id": "o1", "status": f"s{n}",
                    "subject": {"reference": "Patient/p1"}, "meta": {"lastUpdated": f"2024-01-01T10:00:{n:02d}Z"}}
        store.add_all([resource, {"resourceType": "Patient", "id": f"p{n}"}])
    reopened = ParquetResourceStore(tmp_path / "store")
    assert len(reopened.files()) < COMPACT_AT and reopened.count() == 2 * (COMPACT_AT + 2)
    assert [r["status"] for r in reopened.latest() if r["resourceType"] == "Observation"] == [f"s{COMPACT_AT + 1}"]
    assert [r["status"] for r in reopened.iter_all() if r["resourceType"] == "Observation"] == [
        f"s{n}" for n in range(COMPACT_AT + 2)]
    assert sorted(p.name for p in (reopened.root / PARTS_DIR).iterdir()) == [p.name for p in reopened.files()]


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from training.retrain.parquet_store import ParquetResourceStore
    store = ParquetResourceStore(Path(sys.argv[1]))
    count = int(sys.argv[2])
    resources = [{"resourceType": "Observation", "id": f"o{n}", "status": "final", "valueString": "x" * 200,
                  "subject": {"reference": f"Patient/p{n % 997}"},
                  "meta": {"versionId": "1", "lastUpdated": "2024-02-01T00:00:00Z"}} for n in range(count)]
    print("writing", flush=True)
    store.add_all(resources)
    print("done", flush=True)
""")


def _writer(store_root: Path, count: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(store_root), str(count)],
                               stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.stdout is not None
    process.stdout.close()


def _stored_before(root: Path) -> ParquetResourceStore:
    store = ParquetResourceStore(root)
    store.add_all(patient_resources("p1", ["2020-01-10", "2020-04-10"]))
    store.write_state({"watermark": "2024-01-01T00:00:00Z"})
    return store


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """SIGKILL while the part file is being written: the store reads as before, and the next write
    removes the leftover and stores the pull whole."""
    store = _stored_before(tmp_path / "store")
    before = _snapshot(store)
    process = _writer(store.root, 300_000)
    deadline = time.monotonic() + 120
    while not any((store.root / PARTS_DIR).glob(".*.tmp")):
        assert process.poll() is None, "the writer finished before it could be killed mid-write"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    _kill(process)
    assert any((store.root / PARTS_DIR).glob(".*.tmp"))  # the torn part is there, unnamed by the manifest
    assert _snapshot(store) == before
    again = ParquetResourceStore(store.root)
    assert again.add_all(patient_resources("p2", ["2020-02-01"])) == {"Encounter": 1, "Observation": 1, "Patient": 1}
    assert not any((store.root / PARTS_DIR).glob(".*.tmp")) and again.count() == before[0] + 3


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_commits_all_or_nothing(tmp_path: Path) -> None:
    """Killed at moments spread over the whole write (conversion, part file, rename, manifest), the store
    holds either exactly what it held or all of the pull, never part of it."""
    store = _stored_before(tmp_path / "store")
    before = _snapshot(store)
    finished = _writer(tmp_path / "timing", 20_000)
    started = time.monotonic()
    assert finished.stdout is not None and finished.stdout.readline().strip() == "done"
    writing = time.monotonic() - started
    finished.wait()
    finished.stdout.close()
    outcomes = set()
    for fraction in (0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1.0, 1.1, 1.5):
        process = _writer(store.root, 20_000)
        time.sleep(writing * fraction)
        _kill(process)
        now = _snapshot(store)
        if now[0] == before[0]:
            assert now == before
            outcomes.add("nothing")
        else:
            assert now[0] == before[0] + 20_000 and now[1]["Observation"] == before[1]["Observation"] + 20_000
            outcomes.add("all")
            break
    assert "nothing" in outcomes


def test_pulls_through_the_folder_source(tmp_path: Path) -> None:
    """The folder pull stores into the Parquet store exactly as into the NDJSON one; again, nothing new."""
    folder = tmp_path / "cohort" / "ndjson"
    folder.mkdir(parents=True)
    by_type: dict[str, list[str]] = {}
    for resource in patient_resources("f1", ["2020-01-01", "2020-02-01"]):
        by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for resource_type, lines in by_type.items():
        (folder / f"{resource_type}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = ParquetResourceStore(tmp_path / "store")
    assert pull_from_folder(tmp_path / "cohort", store).new == 5
    assert pull_from_folder(tmp_path / "cohort", store).new == 0
    assert store.counts_by_type() == {"Encounter": 2, "Observation": 2, "Patient": 1}


def _same_content(ndjson: ResourceStore, parquet: ParquetResourceStore) -> None:
    assert (ndjson.count(), ndjson.counts_by_type(), ndjson.watermark()) == (
        parquet.count(), parquet.counts_by_type(), parquet.watermark())
    assert sorted(map(_canonical, ndjson.latest())) == sorted(map(_canonical, parquet.latest()))


@pytest.mark.fhir_server
def test_pulls_from_a_real_server_match_the_ndjson_store(fresh_fhir_server: str, tmp_path: Path) -> None:
    """Pulled side by side from a real server, through new visits, a replaced resource and a deleted one,
    both stores hold the same versions, the same newest ones and the same watermark: the Parquet store's
    per-patient marks ask for exactly what the NDJSON store's do, and a delete leaves what was pulled."""
    import requests

    from training.retrain.client import FhirClient, RetryPolicy

    def pull_both() -> tuple[int, int]:
        results = [pull_from_server(FhirClient(fresh_fhir_server, page_size=4, retry=RetryPolicy(retries=0),
                                               sleep=lambda _: None), store(tmp_path / kind))
                   for kind, store in (("ndjson", ResourceStore), ("parquet", ParquetResourceStore))]
        assert results[0].fetched == results[1].fetched and results[0].new == results[1].new
        _same_content(ResourceStore(tmp_path / "ndjson"), ParquetResourceStore(tmp_path / "parquet"))
        return results[1].fetched, results[1].new

    load(fresh_fhir_server, [r for n in range(4) for r in patient_resources(f"p{n}", ["2020-01-10", "2020-04-10"])])
    assert pull_both() == (20, 20)
    p1 = patient_resources("p1", ["2020-01-10", "2020-04-10", "2020-07-10"])
    replaced = {**p1[2], "valueQuantity": {**p1[2]["valueQuantity"], "value": 31}}  # a corrected weight
    load(fresh_fhir_server, [*p1[-2:], replaced])
    assert pull_both() == (3, 3)
    weights = [r for r in ParquetResourceStore(tmp_path / "parquet").latest() if r["id"] == replaced["id"]]
    assert [w["valueQuantity"]["value"] for w in weights] == [31]
    deleted = patient_resources("p2", ["2020-01-10"])[2]
    assert requests.delete(f"{fresh_fhir_server}/Observation/{deleted['id']}", timeout=30).status_code < 300
    load(fresh_fhir_server, patient_resources("p2", ["2020-01-10", "2020-04-10", "2020-08-01"])[-2:])
    assert pull_both() == (2, 2)
    assert any(r["id"] == deleted["id"] for r in ParquetResourceStore(tmp_path / "parquet").latest())


def test_an_existing_store_keeps_its_format(tmp_path: Path) -> None:
    """A folder already holding the NDJSON store stays NDJSON; an empty one gets the kind asked for."""
    ResourceStore(tmp_path / "old").add_all(patient_resources("p1", ["2020-01-10"]))
    assert type(open_store(tmp_path / "old", "parquet")) is ResourceStore
    assert type(open_store(tmp_path / "new", "parquet")) is ParquetResourceStore
    assert type(open_store(tmp_path / "other", "ndjson")) is ResourceStore
    ParquetResourceStore(tmp_path / "pq").add_all(patient_resources("p1", ["2020-01-10"]))
    assert type(open_store(tmp_path / "pq", "ndjson")) is ParquetResourceStore
    with pytest.raises(ValueError, match="unknown resource store"):
        open_store(tmp_path / "bad", "csv")
