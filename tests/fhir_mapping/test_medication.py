"""MedicationRequest → levetiracetam mg/day, and which order is in effect on a day."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_mapping import codes
from fhir_mapping.medication import (
    NormalisedDose,
    OrdersInEffect,
    PlacedOrder,
    asm_key,
    asm_key_of_codings,
    medication_codings,
    normalise_medication_request,
    order_at_end_of_day,
    order_on_arrival,
    place_order,
)
from fhir_mapping.problems import Problem, ProblemKind

RX = codes.RXNORM


def order(product: str | None = "311289", dose: dict[str, Any] | None = None, timing: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal MedicationRequest with one dosage instruction."""
    dosage: dict[str, Any] = {}
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    if timing is not None:
        dosage["timing"] = timing
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}, "dosageInstruction": [dosage]}
    if product is not None:
        resource["medicationCodeableConcept"] = {"coding": [{"system": RX, "code": product}]}
    resource.update(extra)
    return resource


BID = {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}


def mg(resource: dict[str, Any], medications: dict[str, Any] | None = None) -> float:
    result = normalise_medication_request(resource, medications)
    assert isinstance(result, NormalisedDose), result
    return result.mg_per_day


def problems(resource: dict[str, Any]) -> list[Problem]:
    result = normalise_medication_request(resource)
    assert isinstance(result, list), result
    return result


@pytest.mark.parametrize(
    ("product", "dose", "timing", "expected"),
    [
        ("311289", {"value": 1, "code": "{tbl}"}, BID, 1000.0),
        ("311288", {"value": 2, "code": "{pill}"}, BID, 1000.0),
        ("311290", {"value": 1, "code": "1"}, {"code": {"coding": [{"system": codes.TIMING_ABBREVIATION, "code": "TID"}]}}, 2250.0),
        ("403884", {"value": 3.5, "code": "mL"}, BID, 700.0),
        ("403884", {"value": 350, "unit": "mg"}, {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}, 700.0),
        ("311289", {"value": 0.5, "code": "g"}, {"code": {"text": "BID"}}, 1000.0),
        ("311289", {"value": 500, "code": "mg"}, {"repeat": {"frequency": 14, "period": 1, "periodUnit": "wk"}}, 1000.0),
        ("311289", {"value": 500, "code": "mg"}, {"repeat": {"when": ["MORN", "EVE"]}}, 1000.0),
        ("311289", {"value": 500, "code": "mg"}, {"code": {"coding": [{"system": codes.TIMING_ABBREVIATION, "code": "QD"}]}}, 500.0),
        ("807832", {"value": 2, "code": "{tbl}"}, None, 1000.0),
        ("311289", {"value": 1, "unit": "tablet"}, BID, 1000.0),
    ],
)
def test_dose_shapes(product: str, dose: dict[str, Any], timing: dict[str, Any] | None, expected: float) -> None:
    """Each real-world dose shape reads to the expected total daily dose."""
    assert mg(order(product, dose, timing)) == pytest.approx(expected)


def test_ingredient_code_with_contained_medication_strength() -> None:
    """An ingredient-coded contained Medication with a Ratio strength gives mg per tablet."""
    resource = order(None, {"value": 2, "code": "TAB", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"}, BID)
    resource["contained"] = [{
        "resourceType": "Medication", "id": "lev",
        "code": {"coding": [{"system": RX, "code": "114477", "display": "levetiracetam"}]},
        "form": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}]},
        "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RX, "code": "114477"}]}, "strength": {"numerator": {"value": 250, "code": "mg"}, "denominator": {"value": 1, "code": "TAB"}}}],
    }]
    resource["medicationReference"] = {"reference": "#lev"}
    result = normalise_medication_request(resource)
    assert isinstance(result, NormalisedDose)
    assert (result.mg_per_day, result.formulation, result.product_code) == (1000.0, "tablet", None)


def test_bundled_medication_reference_with_solution_strength() -> None:
    """A medicationReference to a bundled Medication is resolved through the medications mapping."""
    medication = {"resourceType": "Medication", "id": "sol", "code": {"coding": [{"system": codes.ATC, "code": "N03AX14"}]},
                  "ingredient": [{"itemCodeableConcept": {"coding": [{"system": codes.ATC, "code": "N03AX14"}]}, "strength": {"numerator": {"value": 1, "code": "g"}, "denominator": {"value": 10, "code": "mL"}}}]}
    resource = order(None, {"value": 4, "code": "mL"}, BID, medicationReference={"reference": "Medication/sol"})
    assert mg(resource, {"Medication/sol": medication}) == pytest.approx(800.0)
    assert problems(resource)[0].kind is ProblemKind.MISSING


def test_morning_and_evening_instructions_are_summed() -> None:
    """Two dosage instructions without sequence apply together and are summed."""
    resource = order("311288", {"value": 1, "code": "{tbl}"}, {"code": {"coding": [{"system": codes.TIMING_ABBREVIATION, "code": "QAM"}]}})
    evening = copy.deepcopy(resource["dosageInstruction"][0])
    evening["doseAndRate"][0]["doseQuantity"]["value"] = 2
    evening["timing"]["code"]["coding"][0]["code"] = "QPM"
    resource["dosageInstruction"].append(evening)
    result = normalise_medication_request(resource)
    assert isinstance(result, NormalisedDose)
    assert (result.mg_per_day, result.doses_per_day) == (750.0, 2.0)


@pytest.mark.parametrize(
    ("mutate", "kind", "path_part"),
    [
        (lambda r: r["dosageInstruction"][0]["doseAndRate"][0].update(doseQuantity=None, doseRange={"low": {"value": 1, "code": "{tbl}"}, "high": {"value": 2, "code": "{tbl}"}}), ProblemKind.AMBIGUOUS, "doseRange"),
        (lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(code="{puff}"), ProblemKind.UNKNOWN_UNIT, "doseQuantity.code"),
        (lambda r: r["dosageInstruction"][0].pop("timing"), ProblemKind.UNREADABLE_DOSE, "timing"),
        (lambda r: r["dosageInstruction"][0]["timing"]["repeat"].update(periodUnit="mo"), ProblemKind.UNREADABLE_DOSE, "periodUnit"),
        (lambda r: r["dosageInstruction"][0]["timing"]["repeat"].update(frequencyMax=3), ProblemKind.AMBIGUOUS, "timing.repeat"),
        (lambda r: r["dosageInstruction"][0].update(asNeededBoolean=True), ProblemKind.UNREADABLE_DOSE, "asNeeded"),
        (lambda r: r["dosageInstruction"].append({**r["dosageInstruction"][0], "sequence": 2}), ProblemKind.AMBIGUOUS, "sequence"),
        (lambda r: r["medicationCodeableConcept"]["coding"][0].update(system=codes.LOINC), ProblemKind.UNKNOWN_CODE, "medicationCodeableConcept"),
        (lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(code="mL"), ProblemKind.UNREADABLE_DOSE, "doseQuantity.unit"),
        (lambda r: r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(code="ORALSOL"), ProblemKind.UNKNOWN_UNIT, "doseQuantity.code"),
    ],
)
def test_unreadable_orders_give_typed_problems_with_paths(mutate: Any, kind: ProblemKind, path_part: str) -> None:
    """What cannot be read with confidence is a typed problem naming the FHIR path, never a guess."""
    resource = order("311289", {"value": 1, "code": "{tbl}"}, copy.deepcopy(BID))
    mutate(resource)
    found = problems(resource)
    assert found[0].kind is kind
    assert path_part in found[0].path
    assert found[0].resource == "MedicationRequest/mr"


def test_dose_range_with_equal_ends_is_read() -> None:
    """A doseRange whose low equals its high is one dose, not a range."""
    resource = order("311289", None, BID)
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseRange": {"low": {"value": 1, "code": "{tbl}"}, "high": {"value": 1, "code": "{tbl}"}}}]
    assert mg(resource) == 1000.0


def test_asm_keys_match_exact_system_and_code() -> None:
    """The multi-hot key comes from the exact (system, code) pair, never the code alone."""
    assert asm_key(order("311289")) == "levetiracetam"
    assert asm_key({"medicationCodeableConcept": {"coding": [{"system": codes.ATC, "code": "N03AG01"}]}}) == "valproate"
    assert asm_key({"medicationCodeableConcept": {"coding": [{"system": codes.LOINC, "code": "11118"}]}}) is None


def placed(oid: str, start: str, end: str | None = None, status: str = "active", position: int = 0, last_updated: str | None = None, known: date | None = None) -> Any:
    resource = order("311289", {"value": 1, "code": "{tbl}"}, {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "boundsPeriod": {"start": start, **({"end": end} if end else {})}}}, id=oid, status=status, authoredOn=start)
    if last_updated:
        resource["meta"] = {"lastUpdated": last_updated}
    dose = normalise_medication_request(resource)
    assert isinstance(dose, NormalisedDose)
    return place_order(resource, position, dose, "levetiracetam", known)


def test_order_started_on_the_visit_day_is_the_decision_not_the_state() -> None:
    """An order started on the visit day is in effect at the end of the day but not on arrival."""
    old, new = placed("a", "2020-01-01", "2020-03-01", "stopped"), placed("b", "2020-03-01", position=1)
    day = date(2020, 3, 1)
    assert order_on_arrival([old, new], day).source == "MedicationRequest/a"
    assert order_at_end_of_day([old, new], day).source == "MedicationRequest/b"


def test_latest_start_wins_and_older_orders_never_come_back() -> None:
    """When the newest order has ended, an older open order does not count again."""
    old, new = placed("a", "2020-01-01"), placed("b", "2020-02-01", "2020-02-20", "completed", position=1)
    assert order_at_end_of_day([old, new], date(2020, 2, 10)).source == "MedicationRequest/b"
    assert order_at_end_of_day([old, new], date(2020, 3, 1)) is None


def test_statuses_that_never_count() -> None:
    """Draft, cancelled, entered-in-error and unknown orders are never placed as taken."""
    for status in ("draft", "cancelled", "entered-in-error", "unknown"):
        assert placed("a", "2020-01-01", status=status) is None
    assert placed("a", "2020-01-01", status="on-hold") is not None


def test_stopped_order_without_end_ends_when_its_status_is_known() -> None:
    """A stopped order without an end date ends at meta.lastUpdated, else on the date its status is known."""
    assert placed("a", "2020-01-01", status="stopped", last_updated="2020-02-03T10:00:00Z").end == date(2020, 2, 3)
    assert placed("a", "2020-01-01", status="stopped", known=date(2020, 5, 1)).end == date(2020, 5, 1)
    assert placed("a", "2020-01-01", status="active", known=date(2020, 5, 1)).end is None


def test_stopped_order_never_ends_after_its_status_is_known() -> None:
    """A lastUpdated set when a server loaded the data does not extend a stopped order past the known date."""
    order = placed("a", "2020-01-01", status="stopped", last_updated="2024-06-01T00:00:00Z", known=date(2020, 5, 1))
    assert order.end == date(2020, 5, 1)


# Orders as a chart may hold them: overlapping, open-ended, stopped, several starting on one day and
# sharing an authoredOn (then the position decides), and equal on both (then the first given wins).
_ORDER_DAYS = st.integers(min_value=0, max_value=40).map(lambda n: date(2020, 1, 1) + timedelta(days=n))
_PLACED = st.builds(
    lambda start, length, authored, position: PlacedOrder(
        f"MedicationRequest/{start.isoformat()}-{position}", start, None if length is None else start + timedelta(days=length),
        (authored, position), None, "levetiracetam"),
    _ORDER_DAYS, st.one_of(st.none(), st.integers(min_value=0, max_value=15)), st.sampled_from(["", "2020-01-01", "2020-01-02T10:00:00Z"]),
    st.integers(min_value=0, max_value=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(_PLACED, max_size=7), _ORDER_DAYS)
def test_orders_in_effect_by_bisection_are_the_scans(orders: list[PlacedOrder], day: date) -> None:
    """The index the timeline uses finds, on every day, the very order the scans of every order find."""
    indexed = OrdersInEffect(orders)
    assert indexed.on_arrival(day) is order_on_arrival(orders, day)
    assert indexed.at_end_of_day(day) is order_at_end_of_day(orders, day)
    assert bool(indexed) == bool(orders)


def test_orders_equal_on_start_and_tiebreak_keep_the_first_given() -> None:
    first = PlacedOrder("MedicationRequest/first", date(2020, 1, 1), None, ("", 0), None, "levetiracetam")
    second = PlacedOrder("MedicationRequest/second", date(2020, 1, 1), None, ("", 0), None, "levetiracetam")
    assert order_at_end_of_day([first, second], date(2020, 1, 5)) is first
    assert OrdersInEffect([first, second]).at_end_of_day(date(2020, 1, 5)) is first
    assert OrdersInEffect([second, first]).on_arrival(date(2020, 1, 5)) is second


def test_a_dose_read_with_its_codings_is_the_dose_read_alone() -> None:
    """Handing normalise_medication_request the codings already read changes nothing it reads."""
    medication = {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": RX, "code": "114477"}]},
                  "form": {"coding": [{"code": "ORALSOL"}]},
                  "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RX, "code": "114477"}]},
                                  "strength": {"numerator": {"value": 100, "code": "mg"}, "denominator": {"value": 1, "code": "mL"}}}]}
    medications = {"Medication/m": medication}
    for resource in (order("311289", {"value": 1, "code": "{tbl}"}, BID), order(None, {"value": 5, "code": "mL"}, BID, medicationReference={"reference": "Medication/m"}),
                     order("311289", None, BID), order("999999", {"value": 1, "code": "{tbl}"}, BID)):
        named = medication_codings(resource, medications)
        assert normalise_medication_request(resource, medications, named=named) == normalise_medication_request(resource, medications)
        assert asm_key_of_codings(named[0]) == asm_key(resource, medications)
