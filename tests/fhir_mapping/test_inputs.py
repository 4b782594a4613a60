"""Lenient reading of FHIR input shapes into a flat list of resources."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_mapping.inputs import collect_resources, draft_orders, reference_id
from fhir_mapping.problems import ProblemKind

PATIENT = {"resourceType": "Patient", "id": "p"}
OBS = {"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/p"}}


def ids(resources: list[dict]) -> list[str]:
    return [f"{r['resourceType']}/{r.get('id')}" for r in resources]


def test_nested_bundles_of_any_type_are_unwrapped() -> None:
    """Searchset, transaction and type-less Bundles, nested, all yield their resources."""
    inner = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": OBS}, {"fullUrl": "x"}]}
    outer = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": PATIENT, "request": {"method": "PUT"}}, {"resource": inner}]}
    untyped = {"resourceType": "Bundle", "entry": [{"resource": outer}]}
    resources, problems = collect_resources(untyped)
    assert ids(resources) == ["Patient/p", "Observation/o"]
    assert problems == []


def test_prefetch_object_with_null_and_operation_outcome() -> None:
    """A prefetch null is no data; an OperationOutcome is a missing problem naming the prefetch key."""
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "access denied"}]}
    prefetch = {"patient": PATIENT, "conditions": None, "observations": outcome, "weights": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": OBS}]}}
    resources, problems = collect_resources(prefetch)
    assert ids(resources) == ["Patient/p", "Observation/o"]
    assert len(problems) == 1
    assert problems[0].kind is ProblemKind.MISSING
    assert problems[0].path == "prefetch.observations"
    assert "access denied" in problems[0].message


def test_duplicates_across_prefetch_keys_are_kept_once() -> None:
    """The same (type, id) reached by two prefetch keys is one resource."""
    resources, _ = collect_resources({"a": PATIENT, "b": {"resourceType": "Bundle", "entry": [{"resource": PATIENT}]}}, [OBS, OBS])
    assert ids(resources) == ["Patient/p", "Observation/o"]


def test_files_ndjson_and_bulk_folders(tmp_path: Path) -> None:
    """JSON files, NDJSON files and Bulk Data folders are read; bad lines are malformed problems."""
    (tmp_path / "one.json").write_text(json.dumps(PATIENT))
    bulk = tmp_path / "bulk" / "ndjson"
    bulk.mkdir(parents=True)
    (bulk / "Observation.ndjson").write_text(json.dumps(OBS) + "\n\n{not json\n")
    resources, problems = collect_resources(tmp_path / "one.json", str(tmp_path / "bulk"))
    assert ids(resources) == ["Patient/p", "Observation/o"]
    assert [p.kind for p in problems] == [ProblemKind.MALFORMED]
    assert problems[0].resource.endswith("Observation.ndjson:3")


def test_an_ndjson_line_holding_a_unicode_line_separator_is_one_resource(tmp_path: Path) -> None:
    """NDJSON lines end at "\\n" (or "\\r\\n"): U+2028 or a form feed inside a string does not cut the resource in two."""
    note = {**OBS, "note": [{"text": "seizure\u2028at night\x0cstopped\x85"}]}
    (tmp_path / "Observation.ndjson").write_text(json.dumps(note, ensure_ascii=False) + "\r\n" + json.dumps(PATIENT) + "\r\n")
    resources, problems = collect_resources(tmp_path / "Observation.ndjson")
    assert problems == []
    assert resources == [note, PATIENT]


def test_unreadable_inputs_are_problems_not_exceptions(tmp_path: Path) -> None:
    """Missing files, non-JSON and non-objects give malformed problems."""
    (tmp_path / "bad.json").write_text("[1, 2")
    resources, problems = collect_resources(tmp_path / "nope.json", tmp_path / "bad.json", 42, {"resourceType": 7})
    assert resources == []
    assert [p.kind for p in problems] == [ProblemKind.MALFORMED] * 4


def test_draft_orders_from_hook_context() -> None:
    """The draftOrders Bundle of a hook context (no type, as the sandbox sends) yields its orders."""
    context = {"patientId": "p", "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationRequest", "id": "d", "status": "draft"}}]}}
    resources, problems = draft_orders(context)
    assert ids(resources) == ["MedicationRequest/d"] and problems == []
    assert draft_orders({"patientId": "p"}) == ([], [])


def test_reference_ids() -> None:
    """References resolve to logical ids in relative, absolute, versioned and urn:uuid forms."""
    assert reference_id({"reference": "Patient/1"}, "Patient") == "1"
    assert reference_id({"reference": "urn:uuid:abc"}, "Patient") == "abc"
    assert reference_id({"reference": "Group/1"}, "Patient") is None
    assert reference_id({"display": "x"}) is None


def test_transaction_entries_take_their_id_from_full_url() -> None:
    """Entries identified only by a urn:uuid fullUrl get that id, so urn:uuid references resolve; the input is unchanged."""
    patient = {"resourceType": "Patient", "birthDate": "2012-01-01"}
    obs = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:7f3c"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7f3c", "resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:91aa", "resource": obs, "request": {"method": "POST", "url": "Observation"}}]}
    resources, _ = collect_resources(bundle)
    assert ids(resources) == ["Patient/7f3c", "Observation/91aa"]
    assert "id" not in patient
    assert reference_id(resources[1]["subject"], "Patient") == resources[0]["id"]
