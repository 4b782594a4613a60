"""Discovery and hook calls over the Flask test client: prefetch shapes, cards and their rules."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.testing import FlaskClient

from hooks import service_definitions
from tests.plugin.cardspec import check_response
from tests.plugin.fixtures import bundle, draft_bundle, hook_request, lev_order, patient_resources

PV = "/cds-services/epidose-patient-view"
OS = "/cds-services/epidose-order-sign"
OSEL = "/cds-services/epidose-order-select"
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}


def _cards(client: FlaskClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return check_response(response.get_json())


def test_discovery_lists_every_service_definition(client: FlaskClient) -> None:
    """GET /cds-services lists exactly the services of hooks/*.json with their prefetch templates."""
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = response.get_json()["services"]
    assert {s["id"] for s in services} == {d["id"] for d in service_definitions()}
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}
    for service in services:
        assert service["title"] and service["description"]
        assert set(service["prefetch"]) >= {"patient", "weight", "height", "seizures", "labs", "conditions", "medications"}


def test_prefetch_templates_use_only_what_the_spec_allows() -> None:
    """Prefetch templates are reads or type-level searches with context tokens, _count and _sort."""
    for definition in service_definitions():
        for template in definition["prefetch"].values():
            assert "{{context.patientId}}" in template
            resource, _, query = template.partition("?")
            assert "/" not in resource or resource.startswith("Patient/")
            for parameter in filter(None, query.split("&")):
                name = parameter.split("=", 1)[0]
                assert name in {"patient", "code", "_count", "_sort"}, name


def test_every_project_observation_the_mapping_reads_is_prefetched() -> None:
    """An EHR sends what the templates ask for: a project code left out (the family's request) would
    never reach the rails on a prefetched call."""
    from fhir_mapping import codes

    wanted = {f"{c.system}|{c.code}" for c in codes.OBSERVATIONS if c.system == codes.EPIDOSE_SYSTEM}
    for definition in service_definitions():
        template = definition["prefetch"]["seizures"]
        asked = {value for part in template.partition("?")[2].split("&") if part.startswith("code=")
                 for value in part[len("code="):].split(",")}
        assert wanted <= asked, (definition["id"], sorted(wanted - asked))


def test_patient_view_full_prefetch_recommends_within_bounds(client: FlaskClient) -> None:
    """A full prefetch gives one dose card whose dose, per-kg figure and suggestion respect the label maximum.

    The summary says the action against the dose taken and the facts behind it; the fake model's scores
    are one apart (a narrow margin), so the card gives the practice guidance and marks nothing recommended.
    """
    cards = _cards(client, PV, hook_request("patient-view", patient_resources(weight_kg=25.0)))
    assert len(cards) == 1
    card = cards[0]
    assert card["summary"] == "Raise levetiracetam to 1000 mg/day (40 mg/kg/day): 3 seizures in 3 months on 20 mg/kg/day (guidance)"
    assert card["detail"].startswith("- **Now:** levetiracetam 500 mg/day (20 mg/kg/day)")
    assert "trough" in card["detail"] and "12–46 mg/L" in card["detail"]
    assert "3000 mg/day" in card["detail"]  # the raw model choice the bounds and rails replaced
    assert "Model version fake-one" in card["detail"]
    assert "Decision support for clinician review" in card["detail"]
    assert card["indicator"] == "info"  # guidance, not a confident recommendation
    assert card["suggestions"][0]["isRecommended"] is False
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "create" and action["resource"]["subject"]["reference"] == "Patient/p1"
    assert card["links"][0]["url"].endswith("/models/current")
    assert {r["code"] for r in card["overrideReasons"]} >= {"clinical-judgement", "patient-preference"}


def test_small_child_gets_oral_solution_in_ml(client: FlaskClient) -> None:
    """At ≤20 kg the card gives the dose in mL of the 100 mg/mL oral solution."""
    cards = _cards(client, PV, hook_request("patient-view", patient_resources(weight_kg=15.0, age_years=4.5)))
    detail = cards[0]["detail"]
    assert "mL" in detail and "100 mg/mL oral solution" in detail
    assert cards[0]["summary"].startswith("Raise levetiracetam to 750 mg/day (50 mg/kg/day)")


def test_renal_impairment_lowers_the_recommended_dose(client: FlaskClient) -> None:
    """A high creatinine (low eGFR) lowers the maximum, and the card explains the renal adjustment."""
    cards = _cards(client, PV, hook_request("patient-view", patient_resources(weight_kg=25.0, creatinine=1.3)))
    assert cards[0]["summary"].startswith("Raise levetiracetam to 750 mg/day (30 mg/kg/day)")  # 50% of 1500
    assert "renal adjustment" in cards[0]["detail"]


def test_null_prefetch_values_mean_no_data(client: FlaskClient) -> None:
    """null values (no such data) still give a card; a null weight gives the missing-data card.

    With null diagnoses and medications too, the patient is out of scope (no epilepsy diagnosis, never
    on levetiracetam): no card at all.
    """
    prefetch = patient_resources()
    prefetch.update({"labs": None, "medications": None, "seizures": None, "height": None})
    cards = _cards(client, PV, hook_request("patient-view", prefetch))
    assert cards[0]["summary"].startswith("Levetiracetam: cannot recommend: no seizure report")
    assert cards[0]["detail"].startswith("- **Now:** not on levetiracetam")
    prefetch["weight"] = None
    cards = _cards(client, PV, hook_request("patient-view", prefetch))
    assert cards[0]["summary"] == "Levetiracetam: cannot recommend, body weight missing"
    assert "suggestions" not in cards[0]
    prefetch["conditions"] = None
    assert _cards(client, PV, hook_request("patient-view", prefetch)) == []


def test_operation_outcome_prefetch_value_is_reported_missing(client: FlaskClient) -> None:
    """An OperationOutcome instead of the weight is treated as missing and named on the card."""
    prefetch = patient_resources()
    prefetch["weight"] = OUTCOME
    cards = _cards(client, PV, hook_request("patient-view", prefetch))
    assert "body weight missing" in cards[0]["summary"]
    assert "prefetch 'weight' failed" in cards[0]["detail"]
    prefetch = patient_resources()
    prefetch["labs"] = OUTCOME
    cards = _cards(client, PV, hook_request("patient-view", prefetch))
    assert cards[0]["summary"].startswith("Raise levetiracetam") and "prefetch 'labs' failed" not in cards[0]["summary"]
    assert "Assumed: renal function unknown" in cards[0]["detail"]


def test_missing_birth_date_names_it(client: FlaskClient) -> None:
    """A Patient without birthDate gets a card that says age is missing, never a default dose."""
    cards = _cards(client, PV, hook_request("patient-view", patient_resources(birth_date=False)))
    assert "age (Patient.birthDate)" in cards[0]["summary"]
    assert "suggestions" not in cards[0]


def test_412_when_required_data_cannot_be_obtained(client: FlaskClient) -> None:
    """Without prefetch for the patient and no fhirServer to ask, the service answers 412 with an OperationOutcome."""
    prefetch = patient_resources()
    del prefetch["patient"]
    response = client.post(PV, json=hook_request("patient-view", prefetch))
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"
    del prefetch["weight"]
    assert client.post(PV, json=hook_request("patient-view", prefetch)).status_code == 412


def test_order_sign_updates_the_draft_and_flags_an_overdose(client: FlaskClient) -> None:
    """A draft above the label maximum is critical and the suggestion updates that same draft."""
    draft = lev_order("draft-1", "p1", 1000, date.today())  # 2000 mg/day at 25 kg > 1500
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(draft)
    cards = _cards(client, OS, body)
    card = cards[0]
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Draft 2000 mg/day = 80 mg/kg/day exceeds the 1500 mg/day maximum")
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "update" and action["resource"]["id"] == "draft-1"
    assert action["resource"]["status"] == "draft"


def test_order_select_agreeing_draft_is_info(make_app: Any) -> None:
    """A draft in line with the guidance (one label step up for breakthrough seizures) is an info card."""
    client = make_app().test_client()
    draft = lev_order("draft-2", "p1", 500, date.today())  # 1000 mg/day = one label step above 500
    body = hook_request("order-select", patient_resources())
    body["context"].update({"draftOrders": draft_bundle(draft), "selections": ["MedicationRequest/draft-2"]})
    cards = _cards(client, OSEL, body)
    assert cards[0]["indicator"] == "info"


def test_sandbox_shaped_draft_orders_are_read(client: FlaskClient) -> None:
    """A draftOrders Bundle with no type, category as an object and {pill} doses still gives a valid card."""
    draft = lev_order("draft-3", "p1", 500, date.today())
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(draft, sandbox=True)
    cards = _cards(client, OS, body)
    assert len(cards) == 1
    assert cards[0]["extension"]["org.epidose.decision"]["draft_mg_per_day"] == 1000
    assert cards[0]["summary"].startswith("Draft 1000 mg/day = 40 mg/kg/day")


def test_order_hook_without_levetiracetam_has_nothing_to_say(client: FlaskClient) -> None:
    """Draft orders for other medicines give an empty card list."""
    other = {"resourceType": "MedicationRequest", "id": "x", "status": "draft", "intent": "order",
             "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "161"}]},
             "subject": {"reference": "Patient/p1"}}
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = bundle([other])
    response = client.post(OS, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_bad_requests_are_json_operation_outcomes(client: FlaskClient) -> None:
    """Malformed requests get 4xx JSON OperationOutcomes, never HTML."""
    cases = [
        client.post(PV, data="not json", content_type="application/json"),
        client.post(PV, json=[1, 2]),
        client.post(PV, json={"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p"}}),
        client.post(PV, json={"hook": "patient-view", "hookInstance": "x", "context": {}}),
        client.post("/cds-services/nope", json={}),
        client.get(PV),
        client.post(PV, data="x", content_type="text/plain"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.status_code
        assert response.is_json and response.get_json()["resourceType"] == "OperationOutcome"


def test_body_over_the_cap_is_413(make_app: Any) -> None:
    """A request body above EPIDOSE_MAX_BODY_BYTES is refused with 413."""
    client = make_app(max_body_bytes=1000).test_client()
    body = hook_request("patient-view", patient_resources())
    response = client.post(PV, json=body)
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_order_select_prefers_the_selected_draft(client: FlaskClient) -> None:
    """With two levetiracetam drafts, the card is about the one named in context.selections."""
    first = lev_order("draft-a", "p1", 250, date.today())
    second = lev_order("draft-b", "p1", 1000, date.today())
    drafts = draft_bundle(first)
    drafts["entry"].append(draft_bundle(second)["entry"][0])
    body = hook_request("order-select", patient_resources())
    body["context"].update({"draftOrders": drafts, "selections": ["MedicationRequest/draft-b"]})
    card = _cards(client, OSEL, body)[0]
    assert card["suggestions"][0]["actions"][0]["resource"]["id"] == "draft-b"
    assert card["indicator"] == "critical"  # 2000 mg/day at 25 kg exceeds 1500


def test_unreadable_draft_dose_is_a_warning(client: FlaskClient) -> None:
    """A levetiracetam draft whose dose cannot be read is never called agreeing: warning, with the reason."""
    draft = lev_order("draft-u", "p1", 500, date.today())
    del draft["dosageInstruction"]
    body = hook_request("order-sign", patient_resources())
    body["context"]["draftOrders"] = draft_bundle(draft)
    card = _cards(client, OS, body)[0]
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Draft levetiracetam order: its daily dose cannot be read")
    assert "draft dose not readable" in card["detail"]
