"""Dose cards as a paediatric neurologist reads them: scope, the action against the dose taken, the rails,
honest confidence, drafts first on order hooks, data problems by name, and levels as information."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.testing import FlaskClient

from fhir_mapping.dosing import DOSE_CLASSES_MG
from fhir_mapping.scope import epilepsy_diagnosis, judge_scope
from plugin.decide import decide
from plugin.gather import Gathered
from tests.plugin.cardspec import check_response
from tests.plugin.fixtures import SNOMED, FakeModel, child_chart, solution_order

PV = "/cds-services/epidose-patient-view"
OS = "/cds-services/epidose-order-sign"
REPORT = "https://cds.example.org/models/current"
KEY = "org.epidose.decision"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
BREAKTHROUGH = ((200, 1), (100, 0), (10, 4))  # 4 seizures at the latest visit, 10 days ago
SEIZURE_FREE_2Y = ((900, 2), (700, 0), (400, 0), (10, 0))


def _card(prefetch: dict[str, Any], model: Any, hook: str = "patient-view", draft: dict[str, Any] | None = None,
          patient: str = "c1") -> dict[str, Any]:
    context: dict[str, Any] = {"patientId": patient}
    if draft is not None:
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": draft}]}
    outcome = decide(hook, context, Gathered(values=prefetch), model, REPORT)
    cards = check_response({"cards": outcome.cards})
    assert len(cards) == 1, cards
    return cards[0]


def _decision(card: dict[str, Any]) -> dict[str, Any]:
    return card["extension"][KEY]


def _clear(dose_mg: float) -> FakeModel:
    """A model that clearly prefers one dose (margin 100 − 10) on children well inside its training data."""
    return FakeModel("clear", adversarial=False, favour=DOSE_CLASSES_MG.index(dose_mg), coverage_percent=50.0)


# --- scope ---------------------------------------------------------------------------------------


def test_patients_out_of_scope_get_no_card_and_are_counted(client: FlaskClient) -> None:
    """An adult with atrial fibrillation and a child with asthma, never on levetiracetam: {"cards": []} and a metric."""
    for prefetch in (child_chart("af", age_years=45, weight_kg=80, condition=(SNOMED, "49436004")),
                     child_chart("asthma", condition=(SNOMED, "195967001"))):
        pid = prefetch["patient"]["id"]
        body = {"hook": "patient-view", "hookInstance": pid, "context": {"patientId": pid}, "prefetch": prefetch}
        response = client.post(PV, json=body)
        assert response.status_code == 200 and response.get_json() == {"cards": []}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'epidose_out_of_scope_total{reason="not-epilepsy",service="epidose-patient-view"}' in metrics
    assert float(metrics.split('reason="not-epilepsy"')[1].split("}")[1].split()[0]) == 2


def test_epilepsy_code_set() -> None:
    """SNOMED epilepsy/seizure concepts and ICD-10-CM G40.* and R56.9 count; febrile convulsions and refuted ones do not."""
    def condition(system: str, code: str) -> dict[str, Any]:
        return {"resourceType": "Condition", "code": {"coding": [{"system": system, "code": code}]}}

    assert epilepsy_diagnosis(condition(SNOMED, "703151001")) == "History of single seizure"
    assert epilepsy_diagnosis(condition(ICD10CM, "G40.909")) is not None
    assert epilepsy_diagnosis(condition(ICD10CM, "R56.9")) == "Unspecified convulsions"
    assert epilepsy_diagnosis(condition(ICD10CM, "R56.00")) is None  # simple febrile convulsions
    assert epilepsy_diagnosis(condition(ICD10CM, "G400")) is None  # not a G40 code as written
    assert epilepsy_diagnosis(condition(SNOMED, "G40.909")) is None  # right code, wrong system
    today = date.today()
    refuted = {**condition(SNOMED, "84757009"), "subject": {"reference": "Patient/x"},
               "verificationStatus": {"coding": [{"code": "refuted"}]}}
    patient = {"resourceType": "Patient", "id": "x", "birthDate": "2018-01-01"}
    assert not judge_scope([patient, refuted], "x", today).in_scope
    # A completed levetiracetam order, years ago, is enough without a coded diagnosis.
    old = solution_order("old", "x", 500, date(2020, 1, 1), status="completed")
    assert judge_scope([patient, old], "x", today).in_scope


def test_atypical_age_is_said() -> None:
    """A 3-year-old with recurrent seizures is in scope, but the card says the age is atypical for BECT."""
    card = _card(child_chart(age_years=3, weight_kg=14, height_cm=95, visits=((100, 2), (10, 2))), _clear(500))
    assert "atypical for BECT" in card["detail"]


# --- the action, measured against the dose taken ----------------------------------------------------


def test_breakthrough_seizures_on_a_low_dose_raise_with_the_facts() -> None:
    """4 seizures in 3 months on 20 mg/kg/day: "Raise levetiracetam to 1000 mg/day (40 mg/kg/day): …", recommended,
    and accepting it also stops the 500 mg/day order so that two orders are never active."""
    card = _card(child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH), _clear(1000))
    assert card["summary"] == "Raise levetiracetam to 1000 mg/day (40 mg/kg/day): 4 seizures in 3 months on 20 mg/kg/day"
    decision = _decision(card)
    assert (decision["action"], decision["source"], decision["confidence"]) == ("raise", "model", "clear")
    assert decision["current_mg_per_day"] == 500 and decision["recommended_mg_per_day"] == 1000
    assert "R-NO-DECREASE-WHILE-SEIZING" in decision["rules"]
    top = card["detail"].split("#### Details")[0].strip().splitlines()
    assert len(top) <= 5 and [line.split(":**")[0] for line in top] == [
        "- **Now", "- **Recommended (raise)", "- **Why", "- **Rails", "- **Confidence"]
    suggestion = card["suggestions"][0]
    assert suggestion["isRecommended"] is True
    create, stop = suggestion["actions"]
    assert create["type"] == "create" and stop["type"] == "update"
    assert stop["resource"]["id"] == "c1-m" and stop["resource"]["status"] == "stopped"
    assert stop["resource"]["dispenseRequest"]["numberOfRepeatsAllowed"] == 2  # the rest of the order as written


def test_a_model_that_lowers_a_seizing_child_is_not_followed() -> None:
    """The rail removes every decrease while seizures continue; the model cannot lower a 12-year-old on 14 mg/kg/day."""
    prefetch = child_chart(age_years=12, weight_kg=70, height_cm=150, lev_mg_per_day=1000, visits=BREAKTHROUGH)
    card = _card(prefetch, _clear(750))
    decision = _decision(card)
    assert decision["action"] in ("raise", "keep") and decision["action"] != "lower"
    assert (decision["recommended_mg_per_day"] or 0) >= 1000
    assert not card["summary"].startswith("Lower")


def test_narrow_margin_gives_guidance_and_no_recommended_suggestion() -> None:
    """Scores one apart (narrow): an info card with the guidance, "no confident model recommendation", nothing recommended."""
    card = _card(child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH), FakeModel("narrow", adversarial=False))
    decision = _decision(card)
    assert (decision["source"], decision["confidence"], decision["action"]) == ("guidance", "narrow", "raise")
    assert card["indicator"] == "info"
    assert "no confident model recommendation" in card["detail"]
    assert "G-RAISE-BREAKTHROUGH" in decision["rules"]
    assert all(not s["isRecommended"] for s in card.get("suggestions", []))


def test_unknown_coverage_abstains() -> None:
    """A model without coverage statistics cannot say the child is like its training children: it abstains."""
    card = _card(child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH),
                 FakeModel("blind", adversarial=False, favour=6, coverage_percent=None))
    assert _decision(card)["confidence"] == "abstain" and _decision(card)["source"] == "guidance"
    assert "resembled this one is unknown" in card["detail"]


def test_clear_model_against_the_guidance_abstains() -> None:
    """Seizure-free 2 years on 1000 mg/day: a model clearly keeping the dose is not offered against the guidance
    to offer withdrawal; the card says so, and says to taper gradually."""
    card = _card(child_chart(age_years=10, weight_kg=35, height_cm=140, lev_mg_per_day=1000, lev_days_ago=1000,
                             visits=SEIZURE_FREE_2Y), _clear(1000))
    decision = _decision(card)
    assert (decision["action"], decision["source"], decision["confidence"]) == ("taper", "guidance", "abstain")
    assert card["summary"].startswith("Taper levetiracetam from 1000 mg/day")
    assert "do not stop abruptly" in card["summary"]
    assert "goes against the practice guidance" in card["detail"]


def test_taper_is_never_said_to_a_child_not_on_levetiracetam() -> None:
    """A never-treated, seizure-free child: "No levetiracetam needed now", never "taper"."""
    for model in (_clear(0.0), _clear(500), FakeModel("narrow", adversarial=False)):
        card = _card(child_chart(age_years=7, weight_kg=22, visits=((400, 2), (200, 0), (10, 0))), model)
        assert _decision(card)["action"] in ("none", "no-recommendation")
        assert "taper" not in card["summary"].lower() and "abruptly" not in card["detail"]


def test_single_seizure_is_watchful_waiting() -> None:
    """One lifetime seizure, untreated: no start, watchful waiting named."""
    single = (SNOMED, "703151001")  # History of single seizure
    card = _card(child_chart(age_years=7, weight_kg=22, visits=((10, 1),), condition=single), _clear(500))
    assert _decision(card)["action"] == "none"
    assert card["summary"].startswith("No levetiracetam needed now") and "single seizure" in card["summary"]
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" in _decision(card)["rules"] and "suggestions" not in card


def test_a_bect_diagnosis_alone_does_not_lift_watchful_waiting() -> None:
    """BECT on the chart and one seizure reported: BECT practice still waits after a single seizure (domain.md
    §6), and the card reads it as the evaluation does (one set of rails); a child treated before is another
    matter (tests/fhir_mapping/test_rails.py, chart c34)."""
    card = _card(child_chart(age_years=7, weight_kg=22, visits=((10, 1),)), _clear(500))
    assert _decision(card)["action"] == "none"
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" in _decision(card)["rules"]
    assert "no seizure in the last 3 months" not in card["summary"]


# --- levels as information ---------------------------------------------------------------------------


def test_measured_level_is_shown_and_a_high_one_with_somnolence_lowers() -> None:
    """60 mg/L with somnolence on 50 mg/kg/day: the measured level is on the card, against the lab reference."""
    card = _card(child_chart(age_years=9, weight_kg=30, lev_mg_per_day=1500, level_mg_l=60, adverse_effect=True,
                             visits=((200, 1), (100, 0), (10, 0))), FakeModel("narrow", adversarial=False))
    assert _decision(card)["action"] == "lower"
    assert "Measured 60 mg/L" in card["detail"] and "10–40" in card["detail"]
    assert "no established therapeutic range" in card["detail"]
    assert "60 mg/L" in card["summary"]


def test_typical_paediatric_levels_are_not_called_a_problem() -> None:
    """20 mg/kg/day gives a predicted trough below the adult-derived range: shown, not labelled a problem."""
    card = _card(child_chart(lev_mg_per_day=500, visits=((100, 0), (10, 0))), _clear(500))
    assert "Predicted for a typical child" in card["detail"]
    assert "below range" not in card["detail"] and "below the reference" not in card["detail"]
    measured = _card(child_chart(lev_mg_per_day=500, level_mg_l=8, visits=((100, 0), (10, 0))), _clear(500))
    assert "Measured 8" in measured["detail"]
    assert "below range" not in measured["detail"] and _decision(measured)["action"] == "keep"


# --- data problems by name ---------------------------------------------------------------------------


def test_implausible_creatinine_is_a_data_problem_not_normal_renal_function() -> None:
    """A creatinine of 26 mg/dL is no reading to dose on: named as implausible, no dose, no "normal renal function"."""
    card = _card(child_chart(lev_mg_per_day=500, creatinine=26, visits=BREAKTHROUGH), _clear(1000))
    decision = _decision(card)
    assert decision["action"] == "no-recommendation" and decision["recommended_mg_per_day"] is None
    assert {"kind": "implausible", "item": "creatinine"}.items() <= decision["problems"][0].items()
    assert "normal renal function assumed" not in card["detail"] and "suggestions" not in card
    assert card["summary"] == "Levetiracetam: cannot recommend, creatinine implausible"


def test_implausible_birth_date_is_a_data_problem_not_an_adult() -> None:
    """birthDate 0001-01-01 is no 2000-year-old: a data problem, never the adult dose."""
    card = _card(child_chart(birth_date="0001-01-01", lev_mg_per_day=500, visits=BREAKTHROUGH), _clear(3000))
    decision = _decision(card)
    assert decision["action"] == "no-recommendation" and "suggestions" not in card
    assert decision["problems"][0]["kind"] == "implausible" and "birthDate" in decision["problems"][0]["item"]
    assert "0001-01-01" in card["detail"]


def test_data_for_another_patient_is_named_as_such() -> None:
    """context.patientId names one patient and the prefetch another: the card says exactly that, and no dose."""
    card = _card(child_chart("c1", lev_mg_per_day=500, visits=BREAKTHROUGH), _clear(1000), patient="random-id")
    decision = _decision(card)
    assert decision["action"] == "no-recommendation" and "suggestions" not in card
    assert {p["kind"] for p in decision["problems"]} == {"other-patient"}
    assert "another patient than the one in context" in card["summary"]


def test_unreadable_weight_says_what_was_wrong() -> None:
    """A weight in a unit nobody can convert is unreadable (with the unit), not missing."""
    prefetch = child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH)
    prefetch["weight"]["entry"][0]["resource"]["valueQuantity"].update({"unit": "stone", "code": "stone"})
    decision = _decision(_card(prefetch, _clear(1000)))
    assert decision["problems"][0]["kind"] == "unreadable" and "'stone'" in decision["problems"][0]["detail"]


# --- order hooks lead with the draft -------------------------------------------------------------------


def _draft(mg_per_day: float) -> dict[str, Any]:
    draft = solution_order("draft-1", "c1", mg_per_day, date.today(), status="draft")
    return draft


def test_overdose_draft_leads_the_summary() -> None:
    """18 kg, 5 years: "Draft 1500 mg/day = 83 mg/kg/day exceeds the 1080 mg/day maximum", critical."""
    prefetch = child_chart(age_years=5, weight_kg=18, height_cm=110, lev_mg_per_day=360, visits=BREAKTHROUGH)
    card = _card(prefetch, _clear(1000), hook="order-sign", draft=_draft(1500))
    assert card["summary"].startswith("Draft 1500 mg/day = 83 mg/kg/day exceeds the 1080 mg/day maximum")
    assert card["indicator"] == "critical"
    decision = _decision(card)
    assert decision["draft_mg_per_day"] == 1500 and decision["current_mg_per_day"] == 360


def test_absurd_draft_is_a_likely_entry_error_and_titration_counts_from_the_dose_taken() -> None:
    """20000 mg/day at 25 kg is an entry error; any titration note counts from the 500 mg/day taken, not the draft."""
    prefetch = child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH)
    card = _card(prefetch, _clear(1500), hook="order-sign", draft=_draft(20000))
    assert "likely entry error" in card["summary"]
    assert "19" not in card["detail"].split("Titration")[-1][:80]  # no "decrease of 19750 mg/day"
    assert "from the 500 mg/day taken" in card["detail"]


def test_update_keeps_every_field_of_the_draft_and_never_repeats_its_dose() -> None:
    """The update changes only the dose; a draft already at the recommended dose gets no suggestion."""
    prefetch = child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH)
    draft = _draft(1500)
    card = _card(prefetch, _clear(1000), hook="order-sign", draft=draft)
    update = card["suggestions"][0]["actions"][0]
    resource = update["resource"]
    assert update["type"] == "update" and resource["id"] == "draft-1"
    for kept in ("status", "intent", "category", "authoredOn", "requester", "note", "subject"):
        assert resource[kept] == draft[kept], kept
    assert resource["dispenseRequest"]["expectedSupplyDuration"] == draft["dispenseRequest"]["expectedSupplyDuration"]
    assert resource["dispenseRequest"]["quantity"]["value"] == 300  # 5 mL twice daily for 30 days
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 5
    stop = card["suggestions"][0]["actions"][1]
    assert stop["resource"]["id"] == "c1-m" and stop["resource"]["status"] == "stopped"
    same = _card(prefetch, _clear(1000), hook="order-sign", draft=_draft(1000))
    assert "suggestions" not in same
    assert same["summary"].startswith("Draft 1000 mg/day = 40 mg/kg/day (raise) is in line with the recommendation")


def test_taper_draft_of_a_child_seizure_free_for_two_years_is_not_argued_with() -> None:
    """A clinician's taper draft for a child seizure-free 2 years is in line with the guidance: no counter-proposal."""
    prefetch = child_chart(age_years=10, weight_kg=35, height_cm=140, lev_mg_per_day=1000, lev_days_ago=1000,
                           visits=SEIZURE_FREE_2Y)
    card = _card(prefetch, _clear(1250), hook="order-sign", draft=_draft(500))
    assert _decision(card)["action"] == "taper"
    assert "in line with" in card["summary"] and "suggestions" not in card
    assert not card["summary"].startswith("Raise")


def test_a_low_level_while_seizing_asks_about_adherence() -> None:
    """Seizing on 41 mg/kg/day with a level of 2.5 mg/L: the card asks about missed doses before raising."""
    card = _card(child_chart(age_years=11, weight_kg=37, height_cm=145, lev_mg_per_day=1500, level_mg_l=2.5,
                             visits=BREAKTHROUGH), FakeModel("narrow", adversarial=False))
    assert "check adherence" in card["detail"].split("#### Details")[0]
    typical = _card(child_chart(age_years=11, weight_kg=37, height_cm=145, lev_mg_per_day=1500, level_mg_l=12,
                                visits=BREAKTHROUGH), FakeModel("narrow", adversarial=False))
    assert "adherence" not in typical["detail"]


def test_a_newborn_is_out_of_scope() -> None:
    """Levetiracetam is labelled from 1 month: a 2-week-old gets no card (reason age-not-labelled)."""
    prefetch = child_chart(age_years=0.04, weight_kg=3.5, height_cm=52, lev_mg_per_day=50, visits=((1, 2),))
    outcome = decide("patient-view", {"patientId": "c1"}, Gathered(values=prefetch), _clear(0.0), REPORT)
    assert outcome.cards == [] and outcome.out_of_scope == "age-not-labelled"


def test_implausible_height_blocks_only_when_a_creatinine_needs_it() -> None:
    """A height of 400 cm cannot be right: with a creatinine the eGFR rests on it (no dose); without, it is noted."""
    prefetch = child_chart(lev_mg_per_day=500, creatinine=0.5, visits=BREAKTHROUGH)
    prefetch["height"]["entry"][0]["resource"]["valueQuantity"]["value"] = 400
    card = _card(prefetch, _clear(1000))
    assert _decision(card)["action"] == "no-recommendation"
    assert {"kind": "implausible", "item": "body height"}.items() <= _decision(card)["problems"][0].items()
    prefetch["labs"] = None
    card = _card(prefetch, _clear(1000))
    assert _decision(card)["action"] == "raise"
    assert any(p["item"] == "body height" for p in _decision(card)["problems"])


def test_a_corrected_weight_supersedes_an_implausible_one() -> None:
    """A mistyped weight (25 000 kg) corrected by a later weight is no longer a problem for the decision."""
    prefetch = child_chart(lev_mg_per_day=500, visits=BREAKTHROUGH)
    good = prefetch["weight"]["entry"][0]["resource"]
    bad = {**good, "id": "c1-w-typo", "effectiveDateTime": "2026-01-01",
           "valueQuantity": {**good["valueQuantity"], "value": 25000}}
    prefetch["weight"]["entry"].append({"resource": bad})
    assert _decision(_card(prefetch, _clear(1000)))["problems"] == []
    bad["effectiveDateTime"] = good["effectiveDateTime"]  # the same day: which one is right is not known
    assert _decision(_card(prefetch, _clear(1000)))["action"] == "no-recommendation"
