"""Cards rest on current, readable data: outdated weights and unreadable current orders are named, not used."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_mapping import dosing
from plugin.decide import RECENT_VISIT_DAYS, decide
from plugin.gather import Gathered
from tests.plugin.fixtures import FakeModel, patient_resources

REPORT = "https://cds.example.org/models/current"


def _decide(prefetch: dict, today: date | None = None) -> dict:
    outcome = decide("patient-view", {"patientId": "p1"}, Gathered(values=prefetch), FakeModel("m", adversarial=False),
                     REPORT, today=today)
    assert len(outcome.cards) == 1
    return outcome.cards[0]


def test_current_weight_gives_a_dose_card() -> None:
    """A weight of 90 days ago is current: the card gives a dose (the summary now starts with the action)."""
    card = _decide(patient_resources())
    assert card["summary"].startswith("Raise levetiracetam to ") and "suggestions" in card


def test_outdated_weight_is_asked_for_not_used() -> None:
    """Past the weight age limit the card recommends nothing and names the date of the outdated weight."""
    prefetch = patient_resources()
    weighed_on = date.fromisoformat(prefetch["weight"]["entry"][0]["resource"]["effectiveDateTime"])
    late = weighed_on + timedelta(days=dosing.MAX_WEIGHT_AGE_DAYS + 1)
    card = _decide(prefetch, today=late)
    assert "suggestions" not in card
    assert "cannot recommend" in card["summary"]
    assert weighed_on.isoformat() in card["detail"] and "days old" in card["detail"]
    # The day before the limit the same data still gives a dose.
    assert "suggestions" in _decide(prefetch, today=weighed_on + timedelta(days=dosing.MAX_WEIGHT_AGE_DAYS))


def test_card_says_which_visit_it_rests_on() -> None:
    """When the latest visit is older than a month the card says seizure reports since then are unknown."""
    prefetch = patient_resources()
    visit_day = date.fromisoformat(prefetch["weight"]["entry"][0]["resource"]["effectiveDateTime"])
    card = _decide(prefetch, today=visit_day + timedelta(days=RECENT_VISIT_DAYS + 10))
    assert f"after the visit of {visit_day.isoformat()}" in card["detail"]
    assert "after the visit of" not in _decide(prefetch, today=visit_day + timedelta(days=RECENT_VISIT_DAYS - 1))["detail"]


def test_unreadable_current_order_blocks_the_recommendation() -> None:
    """An order in effect whose dose cannot be read would look like 0 mg to the model: no dose is recommended."""
    prefetch = patient_resources()
    order = prefetch["medications"]["entry"][0]["resource"]
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] = {"value": 1, "unit": "scoop"}
    card = _decide(prefetch)
    assert "suggestions" not in card
    # Named as unreadable (not "missing"), with the order and what could not be read.
    problem = card["extension"]["org.epidose.decision"]["problems"][0]
    assert problem["kind"] == "unreadable" and problem["item"] == "the levetiracetam order in effect"
    assert order["id"] in problem["detail"] and "scoop" in problem["detail"]


def test_levetiracetam_taken_without_a_readable_order_is_named_as_the_dose_taken() -> None:
    """An order of unknown status says the child may take levetiracetam: the card names the dose taken as
    unreadable (there is no order in effect to read) and never offers a start."""
    prefetch = patient_resources()
    order = prefetch["medications"]["entry"][0]["resource"]
    order["status"] = "unknown"
    card = _decide(prefetch)
    assert "suggestions" not in card and "start levetiracetam" not in card["summary"].lower()
    problem = card["extension"]["org.epidose.decision"]["problems"][0]
    assert problem["kind"] == "unreadable" and problem["item"] == "the dose of levetiracetam taken"
    assert "levetiracetam may be taken, with no readable order in effect" in card["detail"]
    assert "levetiracetam order in effect" not in card["detail"]
