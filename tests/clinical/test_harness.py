"""The chart checks themselves: they pass a card written to the contract and fail each kind of fault.

Cards are written here by hand, as the contract (CDS Hooks card + ``org.epidose.decision``) describes
them, for two charts: a patient-view raise (c05) and an order-sign overdose draft (c27). Each fault is
one change to the good card; the checks must name it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from tests.clinical import chart as c
from tests.clinical.test_charts import CHARTS_DIR, check_cards, load_chart, shift_dates

Card = dict[str, Any]


def _suggestion(*actions: dict[str, Any], recommended: bool = True) -> dict[str, Any]:
    return {"label": "Change levetiracetam", "uuid": "5b0f7a8e-0000-4000-8000-000000000001",
            "isRecommended": recommended, "actions": list(actions)}


def _raise_card(request: dict[str, Any]) -> Card:
    """A conforming answer for c05: 500 → 1000 mg/day, replacing (and stopping) the active order."""
    pid = request["context"]["patientId"]
    active = request["prefetch"]["medications"]["entry"][0]["resource"]
    new = c.lev_order("new-order", pid, "311289", 1, "tablet", per_day=2, authored=date.today().isoformat(),
                      status="draft")
    stop = {**copy.deepcopy(active), "status": "stopped"}
    return {
        "uuid": "5b0f7a8e-0000-4000-8000-000000000000",
        "summary": "Raise levetiracetam to 1000 mg/day (40 mg/kg/day): 4 seizures in 3 months on 20 mg/kg/day",
        "detail": "- Now: 500 mg/day (20 mg/kg/day), 25 kg, 8.6 y\n- Why: breakthrough seizures on the starting dose\n\n#### Details\n\n"
                  + "\n".join(f"- more {i}" for i in range(8)),
        "indicator": "warning", "source": {"label": "epidose"},
        "suggestions": [_suggestion({"type": "create", "description": "new", "resource": new},
                                    {"type": "update", "description": "stop", "resource": stop})],
        "selectionBehavior": "at-most-one",
        "extension": {"org.epidose.decision": {
            "action": "raise", "source": "model", "confidence": "clear", "current_mg_per_day": 500.0,
            "draft_mg_per_day": None, "recommended_mg_per_day": 1000.0,
            "rules": ["R-NO-DECREASE-WHILE-SEIZING"], "problems": []}},
    }


def _overdose_card(request: dict[str, Any]) -> Card:
    """A conforming answer for c27: the 1500 mg/day draft flagged, an update to 720 mg/day (3.6 mL twice daily)."""
    draft = copy.deepcopy(request["context"]["draftOrders"]["entry"][0]["resource"])
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 3.6
    return {
        "uuid": "5b0f7a8e-0000-4000-8000-000000000002",
        "summary": "Draft 1500 mg/day = 83 mg/kg/day exceeds the 1080 mg/day maximum",
        "detail": "Raise levetiracetam to 720 mg/day (40 mg/kg/day): 3 seizures on 20 mg/kg/day.",
        "indicator": "critical", "source": {"label": "epidose"},
        "suggestions": [_suggestion({"type": "update", "description": "720 mg/day", "resource": draft},
                                    recommended=False)],
        "selectionBehavior": "at-most-one",
        "extension": {"org.epidose.decision": {
            "action": "raise", "source": "guidance", "confidence": "abstain", "current_mg_per_day": 360.0,
            "draft_mg_per_day": 1500.0, "recommended_mg_per_day": 720.0, "rules": ["R-NO-DECREASE-WHILE-SEIZING"],
            "problems": []}},
    }


def _chart(stem: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_chart(CHARTS_DIR / f"{stem}.json")


def test_a_conforming_answer_passes() -> None:
    request, expect = _chart("c05-breakthrough-4-in-3mo")
    check_cards(request, expect, [_raise_card(request)])
    request, expect = _chart("c27-draft-overdose-sign")
    check_cards(request, expect, [_overdose_card(request)])
    request, expect = _chart("c30-out-of-scope-45y-af")
    check_cards(request, expect, [])


def _decision(card: Card) -> dict[str, Any]:
    decision: dict[str, Any] = card["extension"]["org.epidose.decision"]
    return decision


def _first_resource(card: Card) -> dict[str, Any]:
    resource: dict[str, Any] = card["suggestions"][0]["actions"][0]["resource"]
    return resource


RAISE_FAULTS: dict[str, Callable[[Card], object]] = {
    "wrong action": lambda card: _decision(card).update(action="lower"),
    "summary without the action first": lambda card: card.update(summary="Levetiracetam 1000 mg/day: 500 mg twice daily"),
    "a cited fact missing": lambda card: card.update(summary="Raise levetiracetam to 1000 mg/day (40 mg/kg/day)"),
    "summary of 140 characters": lambda card: card.update(summary=card["summary"] + " " + "x" * 80),
    "no decision extension": lambda card: card.pop("extension"),
    "recommended though the model abstains": lambda card: _decision(card).update(source="guidance"),
    "a suggestion above the label maximum": lambda card: _first_resource(card)["dosageInstruction"][0]
        ["doseAndRate"][0]["doseQuantity"].update(value=4),
    "a suggested order that cannot be read": lambda card: _first_resource(card)["dosageInstruction"][0]
        ["doseAndRate"][0]["doseQuantity"].update(code="{puff}", unit="puff"),
    "oral solution for a whole-tablet dose at 25 kg": lambda card: card["suggestions"][0]["actions"][0].update(
        resource=c.lev_order("new-order", "c05-jonas", "403884", 5, "mL", per_day=2, authored="2026-12-01",
                             status="draft")),
    "a detail too long for the sidebar": lambda card: card.update(detail="\n".join(f"- line {i}" for i in range(7))),
    "a jump beyond one step without titration": lambda card: _decision(card).update(recommended_mg_per_day=1500.0),
    "current counted wrongly": lambda card: _decision(card).update(current_mg_per_day=0),
    "recommendation outside the expected range": lambda card: _decision(card).update(recommended_mg_per_day=500),
    "a rule not named": lambda card: _decision(card).update(rules=["R-OTHER"]),
    "a problem kind out of the contract": lambda card: _decision(card).update(problems=[{"kind": "bad", "item": "x"}]),
    "a create that leaves the active order running": lambda card: card["suggestions"][0]["actions"].pop(1),
}


@pytest.mark.parametrize("fault", list(RAISE_FAULTS))
def test_patient_view_faults_are_caught(fault: str) -> None:
    request, expect = _chart("c05-breakthrough-4-in-3mo")
    expect = {**expect, "rules": ["R-NO-DECREASE-WHILE-SEIZING"]}
    card = _raise_card(request)
    RAISE_FAULTS[fault](card)
    with pytest.raises(AssertionError):
        check_cards(request, expect, [card])


ORDER_FAULTS: dict[str, Callable[[Card], object]] = {
    "summary leads with the recommendation": lambda card: card.update(summary="Raise levetiracetam to 720 mg/day"),
    "overdose not flagged critical": lambda card: card.update(indicator="warning"),
    "titration counted from the draft": lambda card: _decision(card).update(current_mg_per_day=1500.0),
    "the update drops authoredOn": lambda card: _first_resource(card).pop("authoredOn"),
    "the update drops the supply duration": lambda card: _first_resource(card).pop("dispenseRequest"),
    "tablets for an 18 kg child": lambda card: _first_resource(card).update(
        medicationCodeableConcept={"coding": [{"system": c.RXNORM, "code": "311288"}]},
        dosageInstruction=[{**_first_resource(card)["dosageInstruction"][0],
                            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet", "system": c.UCUM,
                                                              "code": "{tbl}"}}]}]),
    "no decision on an order card": lambda card: card.update(extension={}),
}


@pytest.mark.parametrize("fault", list(ORDER_FAULTS))
def test_order_hook_faults_are_caught(fault: str) -> None:
    request, expect = _chart("c27-draft-overdose-sign")
    card = _overdose_card(request)
    ORDER_FAULTS[fault](card)
    with pytest.raises(AssertionError):
        check_cards(request, expect, [card])


def test_a_suggestion_repeating_the_draft_is_caught() -> None:
    """c29: a renewal at the dose taken; a keep card without a suggestion passes, one repeating the draft fails."""
    request, expect = _chart("c29-draft-equals-current")
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    card: Card = {
        "uuid": "5b0f7a8e-0000-4000-8000-000000000003",
        "summary": "Draft 1000 mg/day = 33 mg/kg/day: in line with keeping the dose (seizure-free 8 months)",
        "indicator": "info", "source": {"label": "epidose"},
        "extension": {"org.epidose.decision": {
            "action": "keep", "source": "guidance", "confidence": "abstain", "current_mg_per_day": 1000.0,
            "draft_mg_per_day": 1000.0, "recommended_mg_per_day": 1000.0, "rules": [], "problems": []}}}
    check_cards(request, expect, [card])
    card["suggestions"] = [_suggestion({"type": "update", "description": "same", "resource": copy.deepcopy(draft)},
                                       recommended=False)]
    with pytest.raises(AssertionError, match="repeats the draft"):
        check_cards(request, expect, [card])


def test_a_card_for_a_patient_out_of_scope_is_caught() -> None:
    request, expect = _chart("c31-out-of-scope-8y-asthma")
    with pytest.raises(AssertionError):
        check_cards(request, expect, [_raise_card(_chart("c05-breakthrough-4-in-3mo")[0])])


def test_dates_move_to_today_but_placeholders_stay() -> None:
    moved = shift_dates({"a": "2026-12-01", "b": ["2026-11-30T10:05:00Z"], "birthDate": "0001-01-01",
                         "text": "since 2026"}, 31)
    assert moved == {"a": "2027-01-01", "b": ["2026-12-31T10:05:00Z"], "birthDate": "0001-01-01", "text": "since 2026"}
