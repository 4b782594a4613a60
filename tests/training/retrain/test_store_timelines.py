"""The retraining store read one patient at a time gives the visit table of its newest versions read whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.training.retrain.data import patient_resources
from training.retrain.job import load_visit_table, store_visit_table
from training.retrain.resources import ResourceStore


def versioned(resource: dict, version: int, **changes: object) -> dict:
    return {**resource, **changes, "meta": {"versionId": str(version), "lastUpdated": f"2024-0{version}-01T00:00:00Z"}}


def test_newest_versions_streamed_match_the_store_read_whole(tmp_path: Path) -> None:
    """Several versions of a resource (the newest wins, a later weight and a moved visit), two patients, a torn
    last line and a resource whose newest version moved it to the other patient: the same table either way."""
    store = ResourceStore(tmp_path / "store")
    first = [versioned(r, 1) for r in patient_resources("p1", ["2021-01-05", "2021-04-05", "2021-07-05"])
             + patient_resources("p2", ["2021-02-01", "2021-05-01"])]
    store.add_all(first)
    weight = next(r for r in first if r["id"] == "p1-e1-wt")
    moved = next(r for r in first if r["id"] == "p2-e1")
    store.add_all([versioned(weight, 2, valueQuantity={**weight["valueQuantity"], "value": 31.5}),
                   versioned(moved, 2, period={"start": "2021-06-01", "end": "2021-06-01"}),
                   versioned(next(r for r in first if r["id"] == "p2-e0-wt"), 3, subject={"reference": "Patient/p1"})])
    with (tmp_path / "store" / "Observation.ndjson").open("a") as torn:
        torn.write('{"resourceType": "Observation", "id": "to')
    streamed, whole = store_visit_table(store), load_visit_table(store.latest())
    assert streamed.patient_ids == whole.patient_ids == ["p1", "p2"]
    assert streamed.dates == whole.dates and "2021-06-01" in streamed.dates
    for name in ("patient", "step", "values", "observed", "actions", "masks", "rewards", "next_index", "dones"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(whole, name), err_msg=name)
    index = store.patient_index()
    assert all(isinstance(entry, int) for group in index.groups.values() for entry in group)
    weights = [r for r in index.resources("p1") if r["id"] == "p1-e1-wt"]
    assert [w["valueQuantity"]["value"] for w in weights] == [31.5]
    assert json.loads((tmp_path / "store" / "Observation.ndjson").read_text().splitlines()[0])["meta"]["versionId"] == "1"
