"""The service's fast path reads every body exactly as the plain path does.

orjson with one bounded walk (``plugin.jsonbody``) against the standard JSON parser, and the single
collection pass that also records each prefetch key's resources (``collect_prefetch``) against
collecting each key again, on the clinical charts and simulated children of ``bench/bodies.py``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fhir_mapping.inputs import collect_prefetch, collect_resources
from plugin.decide import other_patient_problems
from plugin.jsonbody import encode_json, parse_json

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bodies import benchmark_requests, distinct_bodies


@pytest.fixture(scope="module")
def requests() -> list[dict[str, Any]]:
    return benchmark_requests(8, seed=3)


def test_bodies_parse_as_the_standard_parser_reads_them(requests: list[dict[str, Any]]) -> None:
    bodies = distinct_bodies(requests)
    assert len(bodies) == len(requests) > 45  # the charts and the children, none repeated
    for body in bodies:
        assert parse_json(body) == json.loads(body)


def test_response_encoding_reads_back_as_the_standard_encoder_writes() -> None:
    value = {"cards": [{"summary": "Lévétiracétam 1 000 mg/día", "dose": np.float64(12.5), "n": np.int64(3),
                        "levels": np.array([1.0, 2.0]), "flag": True, "none": None, 1: "key"}]}
    plain = {"cards": [{**value["cards"][0], "dose": 12.5, "n": 3, "levels": [1.0, 2.0]}]}
    assert json.loads(encode_json(value)) == json.loads(json.dumps(plain, ensure_ascii=False))


def _with_stranger(prefetch: dict[str, Any]) -> dict[str, Any]:
    """The prefetch with one Observation of another patient in 'labs', and 'weight' repeated as 'height'."""
    changed = copy.deepcopy(prefetch)
    stranger = {"resourceType": "Observation", "id": "stranger", "subject": {"reference": "Patient/someone-else"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]}}
    changed["labs"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": stranger}]}
    changed["height"] = copy.deepcopy(changed.get("weight"))
    return changed


def test_one_collection_pass_finds_what_collecting_each_key_finds(requests: list[dict[str, Any]]) -> None:
    strangers_found = 0
    for request in requests:
        patient_id = request["context"]["patientId"]
        for prefetch in (request["prefetch"], _with_stranger(request["prefetch"])):
            resources, problems, by_key = collect_prefetch(prefetch)
            assert (resources, problems) == collect_resources(prefetch)
            assert by_key is not None
            fast = other_patient_problems(prefetch, patient_id, by_key)
            assert fast == other_patient_problems(prefetch, patient_id)
            strangers_found += bool(fast)
    assert strangers_found >= len(requests)  # every altered prefetch was caught


@pytest.mark.parametrize("prefetch", [{}, {"patient": "text"}, {"hook": "patient-view", "prefetch": {}},
                                      {"resourceType": "Patient", "id": "p"}])
def test_what_is_not_a_prefetch_object_is_read_as_before(prefetch: dict[str, Any]) -> None:
    resources, problems, by_key = collect_prefetch(prefetch)
    assert by_key is None
    assert (resources, problems) == collect_resources(prefetch)
