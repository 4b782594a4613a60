"""The call's resource index (``fhir_mapping.inputs.ResourceIndex``) reads every input as the plain passes do.

``collect_prefetch`` notes whose each resource is as it collects; the scope, other patients' data and
the timeline then look it up. Each of them, given the indexed list, must answer exactly what it answers
for the same resources as a plain list (which it reads itself), on the clinical charts and simulated
children of ``bench/bodies.py`` and on references the readers treat differently.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_mapping.build import _group, build_timeline, build_timelines, patient_of
from fhir_mapping.inputs import IndexedResources, ResourceIndex, collect_prefetch, index_of, stated_patient
from fhir_mapping.scope import judge_scope
from fhir_mapping.timeline import PatientTimeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from bodies import benchmark_requests

TODAY = date.today()


@pytest.fixture(scope="module")
def requests() -> list[dict[str, Any]]:
    return benchmark_requests(8, seed=3)


def everything(timeline: PatientTimeline) -> dict[str, Any]:
    """All a timeline holds, the parts ``to_json`` leaves out included."""
    return {"json": timeline.to_json(), "levels": [asdict(level) for level in timeline.lev_levels],
            "history": [asdict(span) for span in timeline.lev_history], "without_order": sorted(timeline.lev_taken_without_order)}


def test_a_prefetch_is_collected_with_its_index(requests: list[dict[str, Any]]) -> None:
    for request in requests:
        resources, _, by_key = collect_prefetch(request["prefetch"])
        index = index_of(resources)
        assert index is not None and by_key is not None
        plain_groups, plain_shared, plain_orphans = _group(list(resources))
        assert index.groups == plain_groups
        assert all(a is b for group, items in index.groups.items() for a, b in zip(items, plain_groups[group], strict=True))
        assert index.shared == plain_shared and index.orphans == plain_orphans
        for key, found in by_key.items():
            assert index.owners_under_key[key] == {stated_patient(r, r.get("resourceType")) for r in found}


def test_the_timeline_and_the_scope_read_through_the_index_as_without_it(requests: list[dict[str, Any]]) -> None:
    for request in requests:
        resources, _, _ = collect_prefetch(request["prefetch"])
        patient_id = request["context"]["patientId"]
        assert index_of(resources) is not None
        plain = list(resources)
        assert everything(build_timeline(resources, patient_id, as_of=TODAY)) == everything(build_timeline(plain, patient_id, as_of=TODAY))
        assert [everything(t) for t in build_timelines(resources, as_of=TODAY)] == [everything(t) for t in build_timelines(plain, as_of=TODAY)]
        assert judge_scope(resources, patient_id, TODAY) == judge_scope(plain, patient_id, TODAY)
        assert judge_scope(resources, "someone-else", TODAY) == judge_scope(plain, "someone-else", TODAY)


def test_a_list_changed_after_indexing_is_read_afresh(requests: list[dict[str, Any]]) -> None:
    request = requests[-1]
    resources, _, _ = collect_prefetch(request["prefetch"])
    assert isinstance(resources, IndexedResources)
    patient_id = request["context"]["patientId"]
    weight = {"resourceType": "Observation", "id": "late-weight", "status": "final", "subject": {"reference": f"Patient/{patient_id}"},
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": TODAY.isoformat(),
              "valueQuantity": {"value": 31.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    resources.append(weight)
    assert resources.current_index() is None
    timeline = build_timeline(resources, patient_id, as_of=TODAY)
    assert timeline.visits[-1].weight is not None and timeline.visits[-1].weight.value == 31.5
    assert everything(timeline) == everything(build_timeline(list(resources), patient_id, as_of=TODAY))
    resources[-1] = dict(weight, id="replaced")  # same length, another resource
    assert resources.current_index() is None


def _condition(ident: str, **fields: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": ident, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44145005"}]},
            "onsetDateTime": "2021-03-01", **fields}


@pytest.mark.parametrize("fields", [
    {"subject": {"reference": "urn:uuid:"}, "patient": {"reference": "Patient/p"}},  # an empty subject id, then the patient
    {"subject": {"reference": "Patient/p"}},
    {"subject": {"reference": "urn:uuid:"}},
    {"patient": {"reference": "https://ehr.example/fhir/Patient/p/_history/2"}},
    {"subject": {"reference": "Group/p"}, "patient": {"reference": "Patient/p"}},
    {},
])
def test_references_the_readers_treat_differently(fields: dict[str, Any]) -> None:
    """Where the scope and the timeline read an empty subject id differently, each still reads it its own way."""
    resources = [{"resourceType": "Patient", "id": "p", "birthDate": "2014-05-01"}, _condition("c", **fields),
                 {"resourceType": "Patient", "id": ""}]
    indexed = IndexedResources(resources)
    index = indexed.current_index()
    assert isinstance(index, ResourceIndex)
    assert index.irregular == ("urn:uuid:" in str(fields))
    for patient_id in ("p", ""):
        assert judge_scope(indexed, patient_id, TODAY) == judge_scope(resources, patient_id, TODAY)
    assert everything(build_timeline(indexed, "p", as_of=TODAY)) == everything(build_timeline(resources, "p", as_of=TODAY))
    assert stated_patient(resources[1], "Condition") == (patient_of(resources[1]) or None)
    assert stated_patient(resources[2], "Patient") == "" and patient_of(resources[2]) is None


def test_resources_naming_no_patient_go_to_the_only_patient() -> None:
    weight = {"resourceType": "Observation", "id": "w", "status": "final", "effectiveDateTime": "2021-04-01",
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
              "valueQuantity": {"value": 24.0, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    resources = [{"resourceType": "Patient", "id": "p", "birthDate": "2014-05-01"}, _condition("c"), weight,
                 {"resourceType": "Medication", "id": "m"}]
    indexed = IndexedResources(resources)
    index = indexed.current_index()
    assert index is not None and index.orphans == [resources[1], weight] and list(index.shared) == ["Medication/m"]
    timeline = build_timeline(indexed, as_of=TODAY)
    assert timeline.patient_id == "p" and timeline.visits[-1].weight is not None and "bect" in timeline.conditions
    assert everything(timeline) == everything(build_timeline(resources, as_of=TODAY))
