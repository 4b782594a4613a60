"""Data gathering against a real FHIR server (SEKMET): absent prefetch keys are fetched with the bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
import requests
from flask import Flask

from fhir_mapping.inputs import collect_resources
from plugin.gather import FhirFetcher
from tests.plugin.cardspec import check_response
from tests.plugin.fixtures import draft_bundle, hook_request, lev_order, patient_resources
from tests.plugin.proxy import recording_proxy
from tests.support.fhir_server import free_port

pytestmark = pytest.mark.fhir_server
PV = "/cds-services/epidose-patient-view"
TOKEN = "test-access-token-1234"


def _load(base: str, prefetch: dict[str, Any]) -> None:
    resources, _ = collect_resources(prefetch)
    for resource in resources:
        response = requests.put(f"{base}/{resource['resourceType']}/{resource['id']}", json=resource, timeout=10)
        assert response.status_code < 300, response.text


@pytest.fixture(scope="module")
def loaded_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The shared FHIR server with patient fhir-p1 loaded (and 7 extra seizure reports for paging)."""
    base: str = request.getfixturevalue("fhir_server")
    _load(base, patient_resources(patient="fhir-p1", n_extra_observations=7))
    yield base


@pytest.mark.parametrize("hook", ["patient-view", "order-select", "order-sign"])
def test_partial_prefetch_is_completed_from_the_fhir_server(make_app: Callable[..., Flask], loaded_server: str,
                                                            hook: str) -> None:
    """Keys absent from prefetch are fetched with the Bearer token and give the same card as a full prefetch."""
    # A generous budget: this test is about completing the prefetch, not about the service's latency
    # budget (tested on its own), and a loaded CI machine can take longer than 0.3 s for eight searches.
    client = make_app(response_cache_size=0, fhir_budget_seconds=5.0, fhir_timeout_seconds=5.0).test_client()
    full = patient_resources(patient="fhir-p1", n_extra_observations=7)
    path = f"/cds-services/epidose-{hook}"

    def request(prefetch: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = hook_request(hook, prefetch, patient="fhir-p1", **extra)
        if hook != "patient-view":
            body["context"]["draftOrders"] = draft_bundle(lev_order("d-1", "fhir-p1", 500, date.today()))
        return body

    expected = check_response(client.post(path, json=request(full)).get_json())
    with recording_proxy(loaded_server) as (proxy, recording):
        body = request({"patient": full["patient"], "labs": None},
                            fhirServer=proxy, fhirAuthorization={"access_token": TOKEN, "token_type": "Bearer",
                                                                 "expires_in": 300, "scope": "patient/*.read",
                                                                 "subject": "cds-service"})
        response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = check_response(response.get_json())
    assert cards[0]["summary"] == expected[0]["summary"]
    assert cards[0]["indicator"] == expected[0]["indicator"]
    fetched = sorted(path.split("?")[0].rsplit("/", 1)[-1] for path, _ in recording.requests)
    assert fetched == ["Condition", "DocumentReference", "Encounter", "MedicationRequest", "MedicationStatement", "Observation",
                       "Observation", "Observation", "QuestionnaireResponse"]
    assert all(auth == f"Bearer {TOKEN}" for _, auth in recording.requests)


def test_next_links_are_followed(loaded_server: str) -> None:
    """A paged search is followed through its next links into one Bundle, on the same origin only."""
    with recording_proxy(loaded_server) as (proxy, recording):
        fetcher = FhirFetcher(timeout_seconds=2.0, budget_seconds=5.0)
        gathered = fetcher.gather({"all": "Observation?patient={{context.patientId}}&_count=2"}, None,
                                  {"patientId": "fhir-p1"}, proxy, {"access_token": TOKEN})
    entries = gathered.values["all"]["entry"]
    assert len(entries) == 13  # weight, height, creatinine, 3 + 7 seizure reports
    assert len({e["resource"]["id"] for e in entries}) == 13
    assert len(recording.requests) == 7


def test_slow_fhir_server_is_cut_off_by_the_budget(make_app: Callable[..., Flask], loaded_server: str) -> None:
    """A FHIR server slower than the budget gives a 412 well under 500 ms instead of a hung call."""
    client = make_app(fhir_timeout_seconds=0.2, fhir_budget_seconds=0.25).test_client()
    with recording_proxy(loaded_server) as (proxy, recording):
        recording.delay_seconds = 2.0
        body = hook_request("patient-view", {"patient": patient_resources(patient="fhir-p1")["patient"]},
                            patient="fhir-p1", fhirServer=proxy, fhirAuthorization={"access_token": TOKEN})
        started = time.perf_counter()
        response = client.post(PV, json=body)
        elapsed = time.perf_counter() - started
    assert response.status_code == 412
    assert elapsed < 0.5
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unreachable_fhir_server_is_412(make_app: Callable[..., Flask]) -> None:
    """When the FHIR server cannot be reached and the weight was not prefetched, the answer is 412."""
    client = make_app().test_client()
    prefetch = patient_resources()
    del prefetch["weight"]
    body = hook_request("patient-view", prefetch, fhirServer=f"http://127.0.0.1:{free_port()}/fhir",
                        fhirAuthorization={"access_token": TOKEN})
    assert client.post(PV, json=body).status_code == 412


def test_unknown_patient_on_the_server_gets_the_missing_data_card(make_app: Callable[..., Flask], fhir_server: str) -> None:
    """A patient with epilepsy the server knows with no observations gets a card naming the missing weight.

    (The diagnosis puts the patient in scope: a patient with neither an epilepsy diagnosis nor a
    levetiracetam order gets no card at all.)"""
    condition = {"resourceType": "Condition", "id": "bare-unknown-c", "subject": {"reference": "Patient/bare-unknown"},
                 "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}}
    _load(fhir_server, {"patient": {"resourceType": "Patient", "id": "bare-unknown", "birthDate": "2018-01-01"},
                              "conditions": condition})
    client = make_app().test_client()
    body = hook_request("patient-view", None, patient="bare-unknown", fhirServer=fhir_server)
    cards = check_response(client.post(PV, json=body).get_json())
    assert "body weight missing" in cards[0]["summary"]
    assert {"kind": "missing", "item": "body weight"}.items() <= cards[0]["extension"]["org.epidose.decision"]["problems"][0].items()


def test_other_patients_in_a_fetched_search_are_dropped(fresh_fhir_server: str, caplog: pytest.LogCaptureFixture) -> None:
    """A server that ignores a search parameter answers with every patient's resources (SEKMET does so
    for QuestionnaireResponse?patient=): only the patient in context's are kept, and the drop is logged
    with the key and the count, never an identifier."""
    for pid in ("qr-a", "qr-b"):
        _load(fresh_fhir_server, {"patient": {"resourceType": "Patient", "id": pid}, "answers": {
            "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                "resourceType": "QuestionnaireResponse", "id": f"{pid}-1", "status": "completed",
                "subject": {"reference": f"Patient/{pid}"}, "authored": "2026-11-01"}}]}})
    fetcher = FhirFetcher(timeout_seconds=5.0, budget_seconds=5.0)
    with caplog.at_level("WARNING", logger="epidose.fhir"):
        gathered = fetcher.gather({"questionnaires": "QuestionnaireResponse?patient={{context.patientId}}"}, {},
                                  {"patientId": "qr-a"}, fresh_fhir_server, None)
    kept = [e["resource"] for e in gathered.values["questionnaires"]["entry"]
            if e["resource"]["resourceType"] == "QuestionnaireResponse"]
    assert [r["id"] for r in kept] == ["qr-a-1"]
    assert "'questionnaires' answered 1 resource(s) of other patients" in caplog.text
    assert "qr-b" not in caplog.text
