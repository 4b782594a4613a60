"""Dated seizure evidence (emergency and inpatient encounters, Condition onsets, notes between visits)
is placed in the interval it falls in and never makes a decision visit of its own: a child with one
seizure is read as having had one, however many places of the chart record it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from fhir_mapping import codes
from fhir_mapping.build import EVIDENCE_ENCOUNTER_CLASSES, build_timeline
from fhir_mapping.features import FEATURE_SPEC, seizure_course, state_row
from fhir_mapping.problems import ProblemKind
from fhir_mapping.rails import facts_at
from fhir_mapping.timeline import PatientTimeline, Provenance
from tests.fhir_mapping import factory as f

FIRST, CLINIC = date(2021, 3, 1), date(2021, 5, 31)  # two clinic follow-ups 91 days apart
BETWEEN = FIRST + timedelta(days=40)
SEIZURE = {"coding": [{"system": codes.SNOMED, "code": "91175000", "display": "Seizure"}]}


def clinic(count_at_second: int | None = 1) -> list[dict[str, Any]]:
    """The patient, two clinic encounters, no seizure at the first and (optionally) a coded count at the second."""
    out = [f.patient(), f.encounter("e1", FIRST), f.encounter("e2", CLINIC), f.count("o1", FIRST, 0, eid="e1")]
    if count_at_second is not None:
        out.append(f.count("o2", CLINIC, count_at_second, eid="e2"))
    return out


def hospital_encounter(kind: str, day: date = BETWEEN) -> dict[str, Any]:
    encounter = f.encounter("ed", day)
    encounter["class"] = {"system": codes.V3_ACT_CODE, "code": kind}
    encounter["reasonCode"] = [SEIZURE]
    return encounter


def lifetime(timeline: PatientTimeline) -> tuple[int | None, float | None, int | None]:
    """Seizures so far as the rails read them, as the state reads them, and from the shared reading."""
    index = len(timeline.visits) - 1
    values, observed = state_row(timeline, index)
    column = FEATURE_SPEC.index("seizures_reported_so_far")
    course = seizure_course(timeline.visits)
    return facts_at(timeline, index).lifetime_seizures, float(values[column]) if observed[column] else None, course.total if course else None


def conflicts(timeline: PatientTimeline) -> list[str]:
    return [p.message for p in timeline.problems if p.kind is ProblemKind.CONFLICT]


@pytest.mark.parametrize("kind", sorted(EVIDENCE_ENCOUNTER_CLASSES))
def test_an_emergency_or_inpatient_encounter_is_evidence_not_a_visit(kind: str) -> None:
    """The seizure that brought the child to the emergency department is the one the clinic counts."""
    note = f.document("ed-note", BETWEEN, "Seizure today, lasting 2 minutes; brought in by ambulance.", eid="ed")
    timeline = build_timeline([*clinic(1), hospital_encounter(kind), note])
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC]
    assert [v.encounter_id for v in timeline.visits] == ["e1", "e2"]
    second = timeline.visits[1]
    assert second.seizure_since_last_visit is True and second.seizure_count_since_last_visit == 1
    assert second.seizure_last_3_months is True
    assert lifetime(timeline) == (1, 1.0, 1)
    assert not conflicts(timeline)


def test_an_ambulatory_encounter_stays_a_visit() -> None:
    """The contrast: the same encounter as a clinic visit is a follow-up of its own."""
    timeline = build_timeline([*clinic(1), hospital_encounter("AMB")])
    assert [v.date for v in timeline.visits] == [FIRST, BETWEEN, CLINIC]


def test_an_emergency_seizure_without_a_clinic_count_is_placed_in_its_interval() -> None:
    timeline = build_timeline([*clinic(None), hospital_encounter("EMER")])
    second = timeline.visits[1]
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC]
    assert second.seizure_since_last_visit is True and second.seizure_count_since_last_visit is None
    assert second.provenance["seizure_since_last_visit"] == Provenance("encounter", "Encounter/ed")
    # Dated on the emergency visit's day, 51 days before the clinic: within the 3-month window.
    assert second.seizure_last_3_months is True
    assert lifetime(timeline) == (1, 1.0, 1)


def test_a_condition_onset_between_visits_is_the_seizure_the_clinic_counts() -> None:
    """An unlinked seizure Condition whose note counts its seizure: no visit on its onset, counted once."""
    condition = f.coded_condition("single", codes.SNOMED, "703151001", onset=BETWEEN, recorded=BETWEEN,
                                  note="Single nocturnal focal seizure, 90 seconds.")
    timeline = build_timeline([*clinic(1), condition])
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC]
    assert timeline.visits[1].seizure_count_since_last_visit == 1
    assert lifetime(timeline) == (1, 1.0, 1)
    assert not conflicts(timeline)
    # Without the clinic's count the Condition still says a seizure happened since the last visit.
    without = build_timeline([*clinic(None), condition])
    assert [v.date for v in without.visits] == [FIRST, CLINIC]
    assert without.visits[1].seizure_since_last_visit is True
    assert without.visits[1].provenance["seizure_since_last_visit"] == Provenance("condition", "Condition/single")
    assert lifetime(without) == (1, 1.0, 1)


def test_a_note_only_seizure_between_visits_is_placed_not_made_a_visit() -> None:
    """A telephone note between follow-ups, linked to no encounter, the only record of the seizure."""
    note = f.document("phone", BETWEEN, "Seizure today, lasting 2 minutes; brought in by ambulance.")
    timeline = build_timeline([*clinic(None), note])
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC]
    second = timeline.visits[1]
    assert second.seizure_since_last_visit is True
    assert second.provenance["seizure_since_last_visit"] == Provenance("text", "DocumentReference/phone")
    # The state counts it (a lower bound); the rails do not take "a seizure, the interval's number not
    # recorded" for a single lifetime seizure: the note is dated by its writing, not seizure by seizure.
    assert second.seizures_uncounted
    assert lifetime(timeline) == (None, 1.0, 1)
    # The clinic's coded "no seizure since the last visit" is stronger: the note is a conflict, not a seizure.
    denied = build_timeline([*clinic(0), note])
    assert denied.visits[1].seizure_since_last_visit is False
    assert conflicts(denied)
    assert lifetime(denied) == (0, 0.0, 0)


def test_more_dated_seizures_than_the_count_is_a_conflict_and_the_count_stands() -> None:
    two = [f.coded_condition(f"s{i}", codes.SNOMED, "91175000", onset=BETWEEN + timedelta(days=10 * i)) for i in range(2)]
    timeline = build_timeline([*clinic(1), *two])
    assert timeline.visits[1].seizure_count_since_last_visit == 1
    assert lifetime(timeline) == (1, 1.0, 1)
    assert any("dated on 2 days" in message for message in conflicts(timeline))
    # Two dated seizures and a count of two agree.
    agreed = build_timeline([*clinic(2), *two])
    assert not conflicts(agreed) and lifetime(agreed) == (2, 2.0, 2)


def test_without_encounters_a_lab_day_does_not_split_the_interval() -> None:
    """As a service receives a chart without Encounters: the coded reports' days are the visits; a
    creatinine drawn on the day of an emergency seizure does not make a visit the clinic count restarts at."""
    resources = [f.patient(), f.count("o1", FIRST, 0), f.count("o2", CLINIC, 1),
                 f.quantity("cr", "creatinine", BETWEEN, 0.4, "mg/dL"),
                 f.coded_condition("sz", codes.ICD10CM, "R56.9", onset=BETWEEN)]
    timeline = build_timeline(resources)
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC]
    assert timeline.visits[1].labs["creatinine"].age_days == (CLINIC - BETWEEN).days
    assert lifetime(timeline) == (1, 1.0, 1)
    # Measurements after the last report still make the latest visit (the decision point).
    later = build_timeline([*resources, f.quantity("w", "weight", CLINIC + timedelta(days=7), 30.0)])
    assert [v.date for v in later.visits] == [FIRST, CLINIC, CLINIC + timedelta(days=7)]


def test_a_seizure_after_the_last_visit_is_the_decision_point_not_lost() -> None:
    """An emergency visit for a seizure after the last follow-up: no later visit holds it, so its day is
    the decision point (a breakthrough seizure yesterday must reach today's decision)."""
    after = CLINIC + timedelta(days=20)
    timeline = build_timeline([*clinic(0), hospital_encounter("EMER", after)], as_of=after + timedelta(days=1))
    assert [v.date for v in timeline.visits] == [FIRST, CLINIC, after]
    assert timeline.visits[-1].seizure_since_last_visit is True
    assert timeline.visits[-1].encounter_id is None  # not a clinic encounter
    assert lifetime(timeline) == (1, 1.0, 1)
    # Known only after the decision date: not read.
    before = build_timeline([*clinic(0), hospital_encounter("EMER", after)], as_of=after - timedelta(days=1))
    assert [v.date for v in before.visits] == [FIRST, CLINIC]
