"""FHIR resources → patient timelines: visits, carried-forward values, orders in effect, problems."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from fhir_mapping.build import build_timeline, build_timelines
from fhir_mapping.dosing import schwartz_egfr
from fhir_mapping.problems import MappingError, ProblemKind
from tests.fhir_mapping import factory as f

D0 = date(2021, 3, 1)
D1 = date(2021, 6, 1)


def kinds(timeline) -> list[ProblemKind]:
    return [p.kind for p in timeline.problems]


def test_simulator_history_maps_visit_by_visit() -> None:
    """A simulator-shaped history gives one visit per Encounter with reports, labs and doses."""
    timeline = build_timeline(f.history())
    assert [v.date for v in timeline.visits] == [date(2020, 1, 6), date(2020, 4, 6), date(2020, 7, 6), date(2020, 10, 5)]
    assert timeline.problems == []
    assert timeline.onset == date(2019, 12, 7) and timeline.conditions == frozenset({"bect"})
    assert [v.lev_mg_per_day_before for v in timeline.visits] == [0.0, 0.0, 500.0, 750.0]
    assert [v.lev_mg_per_day for v in timeline.visits] == [0.0, 500.0, 750.0, 750.0]
    assert [v.seizure_since_last_visit for v in timeline.visits] == [True, False, False, False]
    last = timeline.visits[-1]
    assert last.egfr == pytest.approx(schwartz_egfr(133.0, 0.5), rel=1e-6)
    assert last.exam_class == "good" and last.seizure_duration_class == 0
    assert last.days_since_previous_visit == 91
    assert last.anti_seizure_medicines_before == frozenset({"levetiracetam"})


def test_weight_in_pounds_converts_and_carries_forward_with_its_age() -> None:
    """A weight in [lb_av] is converted to kg and carried forward to later visits with its age."""
    resources = [f.patient(), f.encounter("e0", D0), f.encounter("e1", D1), f.quantity("w", "weight", D0, 66.0, "[lb_av]", eid="e0")]
    visits = build_timeline(resources).visits
    assert visits[0].weight_kg == pytest.approx(29.937, abs=1e-3)
    assert visits[1].weight is not None and visits[1].weight.age_days == (D1 - D0).days
    assert "weight" in visits[1].carried_forward and "weight" not in visits[0].carried_forward


def test_observation_clusters_are_visits_without_encounters() -> None:
    """Without Encounters, each day with mapped observations is a visit."""
    resources = [f.patient(), f.count("n0", D0, 3), f.quantity("w1", "weight", D1, 30.0)]
    timeline = build_timeline(resources)
    assert [v.date for v in timeline.visits] == [D0, D1]
    assert timeline.visits[0].seizure_count_since_last_visit == 3 and timeline.visits[0].weight is None


def test_as_of_drops_later_data_and_keeps_the_latest_visit_as_decision_point() -> None:
    """as_of ignores later data; the decision point is the latest real visit, never an empty one at as_of."""
    today = date(2021, 4, 15)
    assert D0 < today < D1
    resources = [f.patient(), f.encounter("e0", D0), f.encounter("e1", D1), f.quantity("w0", "weight", D0, 30.0, eid="e0"),
                 f.count("n0", D0, 1, eid="e0"), f.quantity("w1", "weight", D1, 99.0, eid="e1"), f.lev_order("mr", 500.0, D0)]
    timeline = build_timeline(resources, as_of=today)
    assert [v.date for v in timeline.visits] == [D0]
    last = timeline.visits[-1]
    assert last.weight_kg == 30.0 and last.weight is not None and last.weight.measured_on == D0
    assert last.seizure_count_since_last_visit == 1
    assert last.lev is not None and last.lev.mg_per_day == 500.0


def test_reported_egfr_used_only_without_creatinine_and_height() -> None:
    """A reported eGFR is used when bedside Schwartz cannot be computed."""
    resources = [f.patient(), f.encounter("e0", D0), f.quantity("g", "egfr", D0, 85.0, eid="e0")]
    assert build_timeline(resources).visits[0].egfr == 85.0
    resources += [f.quantity("h", "height", D0, 120.0, eid="e0"), f.quantity("c", "creatinine", D0, 53.0, "umol/L", eid="e0")]
    assert build_timeline(resources).visits[0].egfr == pytest.approx(schwartz_egfr(120.0, 53.0 / 88.42), abs=1e-3)


@pytest.mark.parametrize(
    ("resource", "kind", "path"),
    [
        (f.quantity("w", "weight", D0, 30.0, "stone"), ProblemKind.UNKNOWN_UNIT, "valueQuantity.code"),
        (f.quantity("w", "weight", D0, 185.0 * 10, "kg"), ProblemKind.INVALID_VALUE, "valueQuantity.value"),
        (f.count("n", D0, -1), ProblemKind.INVALID_VALUE, "valueInteger"),
        (f.answer("x", "physical_exam_class", D0, "improved"), ProblemKind.UNKNOWN_CODE, "valueCodeableConcept"),
    ],
)
def test_unusable_observations_are_named_problems(resource: dict, kind: ProblemKind, path: str) -> None:
    """An unusable observation becomes a problem naming the resource and path, not a value."""
    timeline = build_timeline([f.patient(), f.encounter("e0", D0), resource])
    assert kinds(timeline) == [kind]
    assert timeline.problems[0].path == path and timeline.problems[0].resource == f"Observation/{resource['id']}"


def test_missing_birth_date_is_a_problem_and_age_is_unknown() -> None:
    """No birthDate: a missing problem, and ages stay unknown."""
    timeline = build_timeline([f.patient(birth=None), f.encounter("e0", D0)])
    assert kinds(timeline) == [ProblemKind.MISSING]
    assert timeline.problems[0].path == "birthDate"
    assert timeline.visits[0].age_years is None


def test_unreadable_order_in_effect_marks_the_dose_unknown_not_zero() -> None:
    """A levetiracetam order in effect whose dose cannot be read leaves the dose unknown, with a problem."""
    bad = f.lev_order("mr", 500.0, D0)
    bad["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] = "{spoon}"
    visit = build_timeline([f.patient(), f.encounter("e1", D1), bad]).visits[0]
    assert visit.lev_before is None and visit.lev_before_unreadable == "MedicationRequest/mr"
    assert visit.anti_seizure_medicines_before == frozenset({"levetiracetam"})


def test_patients_are_grouped_and_selected() -> None:
    """Resources are grouped per patient; several patients need an explicit id."""
    resources = f.history("a", visits=2) + f.history("b", visits=3)
    assert [(t.patient_id, len(t.visits)) for t in build_timelines(resources)] == [("a", 2), ("b", 3)]
    assert len(build_timeline(resources, "b").visits) == 3
    with pytest.raises(MappingError):
        build_timeline(resources)
    assert kinds(build_timeline(resources, "zz")) == [ProblemKind.MISSING]


def test_draft_orders_are_never_taken() -> None:
    """A draft order (a proposal) is not in effect, whatever its dates."""
    draft = f.lev_order("mr", 500.0, D0, status="draft")
    visit = build_timeline([f.patient(), f.encounter("e1", D1), draft]).visits[0]
    assert visit.lev_before is None and visit.lev is None and visit.lev_before_unreadable is None


def test_as_of_ignores_orders_written_later() -> None:
    """An order authored after as_of is not known at the decision date, even if backdated."""
    backdated = f.lev_order("mr", 500.0, D0)
    backdated["authoredOn"] = "2021-05-01"
    visit = build_timeline([f.patient(), f.encounter("e0", D0), backdated], as_of=date(2021, 4, 1)).visits[-1]
    assert visit.lev_before is None and visit.lev is None
    later = build_timeline([f.patient(), f.encounter("e0", D0), backdated], as_of=date(2021, 5, 2)).visits[-1]
    assert later.lev is not None and later.lev.mg_per_day == 500.0  # known by then, in effect from D0


def test_uncoded_levetiracetam_order_is_reported_not_dropped_silently() -> None:
    """An active order naming levetiracetam only in text is a problem, never a silent 'no levetiracetam'."""
    uncoded = f.lev_order("mr", 500.0, D0)
    uncoded["medicationCodeableConcept"] = {"text": "Keppra 500 mg tablets"}
    timeline = build_timeline([f.patient(), f.encounter("e1", D1), uncoded])
    assert kinds(timeline) == [ProblemKind.UNKNOWN_CODE, ProblemKind.UNREADABLE_DOSE]
    assert timeline.problems[0].path == "medicationCodeableConcept"
    # The child may take it: the dose taken is unreadable, not "not on levetiracetam".
    assert timeline.visits[-1].lev_before_unreadable == "MedicationRequest/mr"


def test_levetiracetam_order_of_unknown_status_may_be_taken() -> None:
    unknown = f.lev_order("mr", 500.0, D0)
    unknown["status"] = "unknown"
    timeline = build_timeline([f.patient(), f.encounter("e1", D1), unknown])
    assert kinds(timeline) == [ProblemKind.UNREADABLE_DOSE] and "unknown status" in timeline.problems[0].message
    assert timeline.visits[-1].lev_unreadable == "MedicationRequest/mr"


def test_lab_with_comparator_is_not_used_as_a_value() -> None:
    """A creatinine reported as '<0.2' is a bound: reported as ambiguous and not used for eGFR."""
    low = f.quantity("c", "creatinine", D0, 0.2, eid="e0")
    low["valueQuantity"]["comparator"] = "<"
    timeline = build_timeline([f.patient(), f.encounter("e0", D0), f.quantity("h", "height", D0, 120.0, eid="e0"), low])
    assert kinds(timeline) == [ProblemKind.AMBIGUOUS]
    assert timeline.visits[0].egfr is None


def test_levetiracetam_statement_without_an_order_makes_the_dose_taken_unreadable() -> None:
    """An active levetiracetam MedicationStatement (a reconciled home medicine) with no order in effect: the
    child takes levetiracetam at a dose the mapping does not read; never "not on levetiracetam", which would
    let a card offer a start to a child already taking it. Said once."""
    statement = {"resourceType": "MedicationStatement", "id": "ms", "status": "active", "subject": {"reference": "Patient/p1"},
                 "effectivePeriod": {"start": (D0 - timedelta(days=200)).isoformat()},
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "311289"}]}}
    timeline = build_timeline([f.patient(), f.encounter("e0", D0 - timedelta(days=91)), f.encounter("e1", D0), statement])
    assert kinds(timeline) == [ProblemKind.UNREADABLE_DOSE]
    assert timeline.problems[0].resource == "MedicationStatement/ms"
    assert all(v.lev_before_unreadable == "MedicationStatement/ms" and v.lev_unreadable == "MedicationStatement/ms" for v in timeline.visits)
    with_order = build_timeline([f.patient(), f.encounter("e1", D0), statement, f.lev_order("lev", 1000.0, D0 - timedelta(days=100))])
    assert with_order.visits[-1].lev_before is not None and with_order.visits[-1].lev_before.mg_per_day == 1000.0
    assert not with_order.problems  # the order is read; the statement agrees with it
    ended = dict(statement, effectivePeriod={"start": (D0 - timedelta(days=400)).isoformat(), "end": (D0 - timedelta(days=200)).isoformat()})
    assert build_timeline([f.patient(), f.encounter("e1", D0), ended]).visits[-1].lev_before_unreadable is None


def test_an_observation_value_is_the_record_its_fields_name() -> None:
    """The Observation's value is made as a bare tuple for speed: it must hold what each named field says."""
    from fhir_mapping.build import _Builder, _Value

    weight = {"resourceType": "Observation", "id": "w", "status": "final", "effectiveDateTime": "2021-04-01T09:30:00Z",
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "encounter": {"reference": "Encounter/e"},
              "valueQuantity": {"value": 24.0, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
    builder = _Builder("p", {}, None)
    builder.evidence_encounters["e"] = date(2021, 4, 1)
    builder.observation(weight, {})
    [value] = builder.values
    assert type(value) is _Value and value._asdict() == _Value(
        "weight", date(2021, 4, 1), date(2021, 4, 1), 24.0, "2021-04-01T09:30:00Z", False, "code", "Observation/w", evidence=True)._asdict()
