"""How many seizures a child has had, read from what EHRs record without the project's coded report:
a "History of single seizure" code, a note saying it was the first, a count within a window, a seizure
after treatment began. The rails wait after a single seizure only when the chart says there was one, and
never take several seizures for one."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

from fhir_mapping import codes
from fhir_mapping.build import build_timeline
from fhir_mapping.dosing import label_bounds
from fhir_mapping.features import FEATURE_SPEC, seizure_course, state_row
from fhir_mapping.rails import clinical_rails, facts_at, facts_from_state
from fhir_mapping.timeline import PatientTimeline
from tests.fhir_mapping import factory as f

VISIT = date(2026, 12, 1)
SEIZURE_DAY = VISIT - timedelta(days=21)


def emergency_visit(day: date = SEIZURE_DAY, eid: str = "ed") -> dict[str, Any]:
    encounter = f.encounter(eid, day)
    encounter["class"] = {"system": codes.V3_ACT_CODE, "code": "EMER"}
    encounter["reasonCode"] = [{"coding": [{"system": codes.SNOMED, "code": "91175000"}]}]
    return encounter


def clinic_visit(reason: str | None = None, day: date = VISIT, eid: str = "e1") -> dict[str, Any]:
    encounter = f.encounter(eid, day)
    if reason is not None:
        encounter["reasonCode"] = [{"coding": [{"system": codes.SNOMED, "code": reason}]}]
    return encounter


def lifetime(timeline: PatientTimeline) -> int | None:
    index = len(timeline.visits) - 1
    facts = facts_at(timeline, index)
    assert facts.lifetime_seizures == facts_from_state(*state_row(timeline, index)).lifetime_seizures or facts.lifetime_seizures is None
    return facts.lifetime_seizures


def guidance(timeline: PatientTimeline) -> str:
    index = len(timeline.visits) - 1
    facts = dataclasses.replace(facts_at(timeline, index), weight_kg=25.0)  # the charts here carry no weight
    outcome = clinical_rails(facts, label_bounds(25.0, facts.age_years, None))
    assert outcome.guidance is not None
    return outcome.guidance.rule_id


def test_an_uncounted_seizure_is_not_taken_for_a_single_one() -> None:
    """The contrast: an emergency visit for a seizure and a clinic visit, nothing saying how many."""
    timeline = build_timeline([f.patient(birth="2018-02-01"), emergency_visit(), clinic_visit("91175000")])
    assert lifetime(timeline) is None and guidance(timeline) == "G-CANNOT-SAY"


def test_a_note_saying_it_was_the_first_seizure_makes_it_one() -> None:
    note = f.document("n1", VISIT, "Referred after a first afebrile nocturnal seizure 3 weeks ago; EEG awaited.", eid="e1")
    timeline = build_timeline([f.patient(birth="2018-02-01"), emergency_visit(), clinic_visit("91175000"), note])
    assert timeline.visits[-1].single_seizure_so_far is True
    assert lifetime(timeline) == 1 and guidance(timeline) == "G-WATCHFUL-WAITING"


def test_history_of_single_seizure_is_one_seizure_and_a_clinic_visit_about_it_is_not_another() -> None:
    single = f.coded_condition("single", codes.SNOMED, "703151001", onset=SEIZURE_DAY)
    first_visit = build_timeline([f.patient(birth="2018-02-01"), single, emergency_visit(), clinic_visit("703151001")])
    assert lifetime(first_visit) == 1 and guidance(first_visit) == "G-WATCHFUL-WAITING"
    # Three months later, seen again about the same single seizure: no new seizure, still one.
    later = VISIT + timedelta(days=91)
    follow_up = build_timeline([f.patient(birth="2018-02-01"), single, emergency_visit(), clinic_visit("703151001"),
                                clinic_visit("703151001", later, "e2")])
    assert follow_up.visits[-1].seizure_since_last_visit is not True
    assert lifetime(follow_up) == 1


def test_a_recurrence_after_a_single_seizure_is_counted() -> None:
    single = f.coded_condition("single", codes.SNOMED, "703151001", onset=SEIZURE_DAY)
    later = VISIT + timedelta(days=60)
    timeline = build_timeline([f.patient(birth="2018-02-01"), single, emergency_visit(), clinic_visit("703151001"),
                               emergency_visit(later - timedelta(days=10), "ed2"), clinic_visit(None, later, "e2")])
    assert lifetime(timeline) == 2 and guidance(timeline) == "G-START-RECURRENT"


def test_a_count_within_a_window_is_at_least_that_many_seizures() -> None:
    """"3 seizures in the last 11 weeks" beside one emergency visit: not a single seizure."""
    note = f.document("n1", VISIT, "3 seizures in the last 11 weeks, one in daytime at school.", eid="e1")
    timeline = build_timeline([f.patient(birth="2018-02-01"), emergency_visit(), clinic_visit("91175000"), note])
    assert timeline.visits[-1].seizures_so_far_at_least == 3
    course = seizure_course(timeline.visits)
    assert course is not None and course.total == 3 and not course.exact
    assert lifetime(timeline) == 3 and guidance(timeline) == "G-START-RECURRENT"
    values, _ = state_row(timeline, 0)
    assert values[FEATURE_SPEC.index("seizures_reported_so_far")] == 3.0  # the model sees the same count


def test_a_seizure_after_treatment_stopped_is_at_least_the_second() -> None:
    """A child treated before (the order stopped) with one new seizure: never "a single seizure"."""
    start, stop = VISIT - timedelta(days=900), VISIT - timedelta(days=230)
    order = f.lev_order("lev", 1000.0, start, stop, status="completed")
    note = f.document("n1", VISIT, "One brief nocturnal seizure 3 weeks ago, 7 months after stopping levetiracetam.", eid="e1")
    timeline = build_timeline([f.patient(birth="2015-01-01"), order, clinic_visit(None, stop, "e0"),
                               clinic_visit("91175000"), note])
    assert lifetime(timeline) == 2
    assert guidance(timeline) == "G-START-RECURRENT"


def test_a_seizure_since_onset_two_months_ago_is_within_3_months() -> None:
    """At a first visit the interval runs from the onset: "4 seizures" since a diagnosis 2 months old are recent."""
    onset = VISIT - timedelta(days=61)
    diagnosis = f.coded_condition("bect", codes.SNOMED, "44145005", onset=onset)
    note = f.document("n1", VISIT, "4 seizures in 2 months, one daytime.", eid="e1")
    timeline = build_timeline([f.patient(birth="2019-03-01"), diagnosis, clinic_visit("44145005"), note])
    facts = facts_at(timeline, 0)
    assert facts.seizure_last_3_months is True and facts.seizure_last_6_months is True
    assert facts_from_state(*state_row(timeline, 0)).seizure_last_3_months is True
    assert guidance(timeline) == "G-START-RECURRENT"


def test_no_claim_of_six_seizure_free_months_that_the_chart_does_not_support() -> None:
    """Recurrent seizures, the latest not dated (a visit 8 months after the previous one): ask, not "none"."""
    first = VISIT - timedelta(days=243)
    resources = [f.patient(birth="2016-01-01"), f.encounter("e0", first), f.count("o0", first, 2, eid="e0"),
                 clinic_visit(None), f.document("n1", VISIT, "Seizures since the last visit, number not recorded.", eid="e1")]
    timeline = build_timeline(resources)
    facts = facts_at(timeline, 1)
    assert facts.seizure_since_last_visit is True and facts.seizure_last_6_months is None
    assert guidance(timeline) == "G-CANNOT-SAY"


def test_a_seizure_conditions_own_note_gives_the_seizures_duration() -> None:
    """"About 12 minutes" in the Condition that records the seizure: a prolonged seizure, which opens a start."""
    single = f.coded_condition("single", codes.SNOMED, "703151001", onset=SEIZURE_DAY,
                               note="Single nocturnal focal seizure with secondary generalisation, about 12 minutes.")
    note = f.document("n1", VISIT, "Seen 3 weeks after a first seizure; none since.", eid="e1")
    timeline = build_timeline([f.patient(birth="2018-02-01"), single, clinic_visit("703151001"), note])
    facts = facts_at(timeline, 0)
    assert facts.lifetime_seizures == 1 and facts.prolonged_seizure
    assert guidance(timeline) == "G-START-PROLONGED"


def test_a_stated_seizure_free_period_dates_the_last_seizure() -> None:
    """"Seizure-free for over 2 years" at a second visit 7 months after the first: 24 months, not 7, so no
    increase and withdrawal offered for a 12-year-old on levetiracetam."""
    first = VISIT - timedelta(days=210)
    order = f.lev_order("lev", 1000.0, VISIT - timedelta(days=1200))
    resources = [f.patient(birth="2014-06-01"), order, clinic_visit(None, first, "e0"),
                 f.document("n0", first, "Seizure-free for over 18 months.", eid="e0"),
                 clinic_visit(None), f.document("n1", VISIT, "Seizure-free for over 2 years on levetiracetam.", eid="e1")]
    timeline = build_timeline(resources)
    facts = facts_at(timeline, 1)
    assert facts.months_seizure_free is not None and facts.months_seizure_free >= 23.9
    assert facts_from_state(*state_row(timeline, 1)).months_seizure_free == facts.months_seizure_free
    outcome = clinical_rails(dataclasses.replace(facts, weight_kg=40.0), label_bounds(40.0, facts.age_years, None))
    assert "R-NO-INCREASE-SEIZURE-FREE" in [rule.rule_id for rule in outcome.fired]
    assert outcome.guidance is not None and outcome.guidance.rule_id == "G-OFFER-TAPER"


def test_a_seizure_reported_after_the_period_began_is_not_overruled() -> None:
    """A count of seizures at a visit 3 months ago beside a note claiming 2 years seizure-free: the report stands."""
    first = VISIT - timedelta(days=91)
    start = VISIT - timedelta(days=200)
    resources = [f.patient(birth="2014-06-01"), f.lev_order("lev", 1000.0, VISIT - timedelta(days=1200)),
                 clinic_visit(None, start, "e00"), f.count("o00", start, 0, eid="e00"),
                 clinic_visit(None, first, "e0"), f.count("o0", first, 2, eid="e0"),
                 clinic_visit(None), f.document("n1", VISIT, "Seizure-free for over 2 years.", eid="e1")]
    timeline = build_timeline(resources)
    facts = facts_at(timeline, 2)
    assert facts.months_seizure_free is not None and facts.months_seizure_free < 4


def seizure_finding(value: dict[str, Any], day: date = SEIZURE_DAY) -> dict[str, Any]:
    """A seizure recorded as an Observation coded SNOMED 91175000, as flowsheets send it."""
    return {"resourceType": "Observation", "id": "finding", "status": "final",
            "code": {"coding": [{"system": codes.SNOMED, "code": "91175000", "display": "Seizure"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": day.isoformat(), **value}


def test_a_seizure_findings_count_is_that_many_seizures_not_one() -> None:
    """Three seizures recorded on a finding's value: never read as a single seizure (which would mean waiting)."""
    for value in ({"valueInteger": 3}, {"valueQuantity": {"value": 3, "unit": "{count}"}},
                  {"valueString": "3 nocturnal seizures this month"}):
        timeline = build_timeline([f.patient(birth="2018-02-01"), clinic_visit(None), seizure_finding(value)])
        assert lifetime(timeline) == 3, value
        assert guidance(timeline) == "G-START-RECURRENT", value
    plain = build_timeline([f.patient(birth="2018-02-01"), clinic_visit(None), seizure_finding({})])
    assert facts_at(plain, 0).seizure_since_last_visit is True


def test_a_seizure_finding_of_zero_is_no_seizure_and_a_bad_count_is_said() -> None:
    none = build_timeline([f.patient(birth="2018-02-01"), clinic_visit(None), seizure_finding({"valueInteger": 0})])
    assert facts_at(none, 0).seizure_since_last_visit is not True
    bad = build_timeline([f.patient(birth="2018-02-01"), clinic_visit(None), seizure_finding({"valueInteger": -2})])
    assert any("seizure finding's count" in problem.message for problem in bad.problems)
