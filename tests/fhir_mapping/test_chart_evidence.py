"""Seizure evidence from every place a chart keeps it: Conditions, encounter reasons and diagnoses,
note text; placed by date, with provenance; conflicts and unreadable text as problems."""

from __future__ import annotations

from datetime import date, timedelta

from fhir_mapping import codes
from fhir_mapping.build import build_timeline
from fhir_mapping.features import FEATURE_SPEC, state_matrix
from fhir_mapping.problems import ProblemKind
from fhir_mapping.timeline import Provenance
from tests.fhir_mapping import factory as f

DAYS = [date(2021, 1, 4) + timedelta(days=91 * i) for i in range(5)]
SEIZURE_ITEMS = ["seizure_since_last_visit", "seizure_last_3_months", "seizure_last_6_months"]


def encounters(reason_on: int | None = None) -> list[dict]:
    out = [f.encounter(f"e{i}", day) for i, day in enumerate(DAYS)]
    if reason_on is not None:
        out[reason_on]["reasonCode"] = [{"coding": [{"system": codes.SNOMED, "code": "91175000", "display": "Seizure"}]}]
    return out


def kinds(timeline) -> list[ProblemKind]:
    return [p.kind for p in timeline.problems]


def test_chart_as_ehrs_record_it_gives_seizure_items_at_every_visit() -> None:
    """Two seizure Conditions, a seizure encounter reason and three notes (one Chinese, one HTML):
    every visit's seizure since the last visit is known, and each says where it came from."""
    resources = [
        f.patient(), f.coded_condition("dx", codes.ICD10CM, "G40.909", onset=DAYS[0] - timedelta(days=60)),
        *encounters(reason_on=3),
        f.coded_condition("s1", codes.SNOMED, "91175000", onset=DAYS[0] + timedelta(days=40)),
        f.coded_condition("s2", codes.ICD10CM, "R56.9", onset=DAYS[0] - timedelta(days=20)),
        f.document("n0", DAYS[0], "Seen for BECT follow-up. Mum reports no side effects.", eid="e0"),
        f.document("n2", DAYS[2], "近3个月无发作，无嗜睡。", eid="e2"),
        f.document("n4", DAYS[4], "<p>Seizure-free since the last visit.</p><p>Irritable at home.</p>", content_type="text/html", eid="e4"),
    ]
    timeline = build_timeline(resources)
    visits = timeline.visits
    assert [v.seizure_since_last_visit for v in visits] == [True, True, False, True, False]
    assert visits[0].provenance["seizure_since_last_visit"] == Provenance("condition", "Condition/s2")
    assert visits[1].provenance["seizure_since_last_visit"] == Provenance("condition", "Condition/s1")
    assert visits[2].provenance["seizure_since_last_visit"] == Provenance("text", "DocumentReference/n2")
    assert visits[3].provenance["seizure_since_last_visit"] == Provenance("visit-reason", "Encounter/e3")
    assert visits[4].provenance["seizure_since_last_visit"] == Provenance("text", "DocumentReference/n4")
    assert visits[2].seizure_last_3_months is False and visits[2].seizure_count_since_last_visit == 0
    assert visits[4].seizure_count_since_last_visit == 0 and visits[4].behaviour_adverse_effect is True
    assert visits[0].behaviour_adverse_effect is False
    assert visits[3].seizure_count_since_last_visit is None  # a dated seizure gives no count
    # The diagnosis gives the onset, not a seizure; the seizure Conditions do not move the onset.
    assert timeline.onset == DAYS[0] - timedelta(days=60) and {"epilepsy", "seizure"} <= timeline.conditions
    values, observed = state_matrix(timeline)
    column = FEATURE_SPEC.index("seizure_since_last_visit")
    assert observed[:, column].all() and values[:, column].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert not [p for p in timeline.problems if p.kind is ProblemKind.CONFLICT]


def test_not_recorded_stays_missing_and_no_seizure_is_false() -> None:
    """An Encounter without any seizure evidence leaves the items missing; a denial makes them false."""
    resources = [f.patient(), *encounters()[:2], f.document("n1", DAYS[1], "No seizures since the last visit.", eid="e1")]
    visits = build_timeline(resources).visits
    assert [visits[0].seizure_since_last_visit, visits[0].seizure_count_since_last_visit] == [None, None]
    assert visits[0].provenance == {}
    assert [visits[1].seizure_since_last_visit, visits[1].seizure_count_since_last_visit, visits[1].seizure_duration_class] == [False, 0, 0]


def test_structured_count_wins_over_text_and_the_conflict_is_named() -> None:
    """A coded count of 0 and a note reporting two seizures: the code is used, the conflict reported."""
    listed = encounters()[:2]
    listed[0]["diagnosis"] = [{"condition": {"reference": "Condition/s"}}]
    resources = [f.patient(), *listed, f.count("n", DAYS[0], 0, eid="e0"), f.coded_condition("s", codes.SNOMED, "91175000"),
                 f.document("d", DAYS[0], "Two seizures since the last visit, lasting 2 minutes.", eid="e0")]
    timeline = build_timeline(resources)
    visit = timeline.visits[0]
    assert visit.seizure_since_last_visit is False and visit.seizure_count_since_last_visit == 0
    assert visit.seizure_duration_class == 0  # the note's duration contradicts the code: not used
    # The seizure Condition the code denies counts in no window, here or at the next visit.
    assert visit.seizure_last_3_months is None and timeline.visits[1].seizure_last_6_months is None
    assert visit.provenance["seizure_count_since_last_visit"].kind == "code"
    conflicts = [p for p in timeline.problems if p.kind is ProblemKind.CONFLICT]
    assert {p.resource for p in conflicts} == {"DocumentReference/d", "Condition/s"}
    assert any("seizure count since last visit" in p.message and "code Observation/n" in p.message for p in conflicts)


def test_dated_statement_is_placed_in_the_interval_its_date_falls_in() -> None:
    """"A seizure 4 months ago", written at the third visit, falls between the first and the second
    visit: it is the second visit's seizure since the last visit, and in the third visit's 6 months.
    One dated seizure says nothing of the months after it; "last seizure 4 months ago" does."""
    resources = [f.patient(), *encounters()[:3], f.document("d", DAYS[2], "One seizure 4 months ago, lasting 1 minute.", eid="e2")]
    visits = build_timeline(resources).visits
    assert [v.seizure_since_last_visit for v in visits] == [None, True, None]
    assert visits[2].seizure_last_6_months is True and visits[2].seizure_last_3_months is None
    assert visits[2].seizure_duration_class == 2
    resources[-1] = f.document("d", DAYS[2], "Last seizure 4 months ago, lasting 1 minute.", eid="e2")
    visits = build_timeline(resources).visits
    assert visits[1].seizure_since_last_visit is True
    assert visits[2].seizure_last_6_months is True and visits[2].seizure_last_3_months is False


def test_seizure_free_period_covering_the_interval_denies_seizures_since_the_last_visit() -> None:
    """"Seizure-free for 14 months" at a visit 91 days after the previous one: none since the last visit."""
    resources = [f.patient(), *encounters()[:2], f.document("d", DAYS[1], "Seizure-free for 14 months.", eid="e1")]
    visit = build_timeline(resources).visits[1]
    assert (visit.seizure_since_last_visit, visit.seizure_count_since_last_visit, visit.seizure_last_3_months, visit.seizure_last_6_months) == (False, 0, False, False)


def test_refuted_entered_in_error_and_unconfirmed_seizures_are_not_counted() -> None:
    """Only confirmed seizure Conditions count; an unconfirmed one is reported."""
    resources = [f.patient(), *encounters()[:1]]
    for cid, status in (("r", "refuted"), ("x", "entered-in-error"), ("u", "unconfirmed")):
        resources.append(f.coded_condition(cid, codes.SNOMED, "91175000", onset=DAYS[0] - timedelta(days=5), verification=status))
    timeline = build_timeline(resources)
    assert timeline.visits[0].seizure_since_last_visit is None
    assert [p.resource for p in timeline.problems if p.kind is ProblemKind.AMBIGUOUS] == ["Condition/u"]


def test_encounter_diagnosis_dates_a_seizure_condition_without_onset() -> None:
    """A seizure Condition with no dates, listed as an Encounter's diagnosis, is a seizure on that day."""
    visits_ = encounters()[:2]
    visits_[1]["diagnosis"] = [{"condition": {"reference": "Condition/s"}}]
    resources = [f.patient(), f.coded_condition("s", codes.SNOMED, "91175000"), *visits_]  # the Condition first
    visits = build_timeline(resources).visits
    assert [v.seizure_since_last_visit for v in visits] == [None, True]


def test_note_on_condition_observation_and_encounter_narrative_are_read() -> None:
    """``note`` of Condition and Observation, and an Encounter's narrative, are note text too."""
    narrative = encounters()[:3]
    narrative[2]["text"] = {"status": "additional", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">发作2次，持续约30秒。</div>"}
    weight = f.quantity("w", "weight", DAYS[1], 30.0, eid="e1")
    weight["note"] = [{"text": "Very drowsy since the dose went up."}]
    resources = [f.patient(), *narrative, weight,
                 f.coded_condition("c", codes.SNOMED, "44145005", onset=DAYS[0] - timedelta(days=30), recorded=DAYS[0], note="Mother denies any seizures.")]
    visits = build_timeline(resources).visits
    assert visits[0].seizure_since_last_visit is False
    assert visits[1].behaviour_adverse_effect is True and visits[1].provenance["behaviour_adverse_effect"] == Provenance("text", "Observation/w")
    assert (visits[2].seizure_count_since_last_visit, visits[2].seizure_duration_class) == (2, 1)


def test_unreadable_notes_leave_items_missing_with_a_reason() -> None:
    """Another language, a binary attachment, bad base64, a wrong encoding, oversize text, a url:
    the items stay missing, each with a problem; nothing raises."""
    broken = f.document("b64", DAYS[0], "x", eid="e0")
    broken["content"][0]["attachment"]["data"] = "@@not base64@@"
    by_url = f.document("url", DAYS[0], "x", eid="e0")
    by_url["content"][0]["attachment"] = {"contentType": "text/plain", "url": "Binary/123"}
    resources = [
        f.patient(), *encounters()[:1], broken, by_url,
        f.document("fr", DAYS[0], "Pas de crise depuis la dernière consultation.", eid="e0"),
        f.document("pdf", DAYS[0], b"%PDF-1.4 \x00\x01", content_type="application/pdf", eid="e0"),
        f.document("latin", DAYS[0], "No seizures, très bien".encode("latin-1"), eid="e0"),
        f.document("nul", DAYS[0], b"no seizures\x00\x00", eid="e0"),
        f.document("big", DAYS[0], "No seizures. " * 5000, eid="e0"),
    ]
    timeline = build_timeline(resources)
    assert timeline.visits[0].seizure_since_last_visit is None
    unread = {p.resource for p in timeline.problems if p.kind is ProblemKind.UNREADABLE_TEXT}
    assert unread == {f"DocumentReference/{n}" for n in ("b64", "url", "fr", "pdf", "latin", "nul", "big")}


def test_icd10_g40_codes_are_epilepsy_diagnoses_and_exact_codes_come_first() -> None:
    """Any G40 code is an epilepsy diagnosis (category match); G40.009 keeps its exact meaning."""
    assert codes.condition_key({"coding": [{"system": codes.ICD10CM, "code": "G40.909"}]}) == "epilepsy"
    assert codes.condition_key({"coding": [{"system": codes.ICD10CM, "code": "G40.009"}]}) == "bect"
    assert codes.condition_key({"coding": [{"system": codes.ICD10CM, "code": "G400"}]}) is None
    assert codes.condition_key({"coding": [{"system": codes.SNOMED, "code": "G40.909"}]}) is None
    assert "history_of_single_seizure" in codes.SEIZURE_EVENT_KEYS and "epilepsy" not in codes.SEIZURE_EVENT_KEYS


def test_observation_coded_as_a_seizure_finding_is_a_dated_seizure() -> None:
    """An Observation with code SNOMED 91175000 is a seizure on its effective date (valueBoolean false: none)."""
    finding = {"resourceType": "Observation", "id": "sz", "status": "final", "code": {"coding": [{"system": codes.SNOMED, "code": "91175000"}]},
               "subject": {"reference": "Patient/p1"}, "effectiveDateTime": (DAYS[1] - timedelta(days=10)).isoformat()}
    absent = {**finding, "id": "no", "valueBoolean": False, "effectiveDateTime": (DAYS[2] - timedelta(days=10)).isoformat()}
    visits = build_timeline([f.patient(), *encounters()[:3], finding, absent]).visits
    assert [v.seizure_since_last_visit for v in visits] == [None, True, None]
    assert visits[1].provenance["seizure_since_last_visit"] == Provenance("observation", "Observation/sz")
    # At the third visit that seizure is 101 days old: within 6 months, not 3 (and "not recorded", not false).
    assert (visits[2].seizure_last_3_months, visits[2].seizure_last_6_months) == (None, True)


def test_synthea_shaped_epilepsy_chart_gives_the_seizure_it_records_and_no_more() -> None:
    """Synthea's epilepsy module records "Seizure disorder" and "History of single seizure" with onsets:
    the diagnosis dates the onset, the single seizure counts in the interval it falls in, and visits
    with no seizure evidence stay "not recorded" (never "no seizure")."""
    onset = DAYS[0] - timedelta(days=40)
    resources = [f.patient(), *encounters()[:3],
                 f.coded_condition("disorder", codes.SNOMED, "128613002", onset=onset),
                 f.coded_condition("single", codes.SNOMED, "703151001", onset=onset + timedelta(days=1))]
    timeline = build_timeline(resources)
    assert timeline.onset == onset and {"seizure_disorder", "history_of_single_seizure"} <= timeline.conditions
    assert [v.seizure_since_last_visit for v in timeline.visits] == [True, None, None]
    assert [v.seizure_last_6_months for v in timeline.visits] == [True, True, None]


def test_note_by_url_is_read_from_a_binary_given_with_the_data() -> None:
    """An attachment ``url`` to a Binary in the input (absolute or relative) or contained is read; a
    Binary the input does not hold is a problem (the mapping fetches nothing)."""
    import base64

    def by_url(did: str, url: str) -> dict:
        document = f.document(did, DAYS[0], "x", eid="e0")
        document["content"][0]["attachment"] = {"contentType": "text/plain", "url": url}
        return document

    binary = {"resourceType": "Binary", "id": "b1", "contentType": "text/plain", "data": base64.b64encode("无发作。".encode()).decode()}
    contained = by_url("c", "#note")
    contained["contained"] = [{"resourceType": "Binary", "id": "note", "contentType": "text/plain", "data": base64.b64encode(b"Drowsy.").decode()}]
    resources = [f.patient(), *encounters()[:1], binary, by_url("d", "https://ehr.example/fhir/Binary/b1/_history/2"), contained, by_url("gone", "Binary/absent")]
    timeline = build_timeline(resources)
    visit = timeline.visits[0]
    assert visit.seizure_since_last_visit is False and visit.provenance["seizure_since_last_visit"] == Provenance("text", "DocumentReference/d")
    assert visit.behaviour_adverse_effect is True
    assert [p.resource for p in timeline.problems if p.kind is ProblemKind.UNREADABLE_TEXT] == ["DocumentReference/gone"]


def test_a_follow_ups_seizure_reason_code_does_not_overrule_the_notes_denial() -> None:
    """A routine follow-up coded "Seizure" (R56.9 or SNOMED 91175000, the visit's subject) with a note saying
    no seizures since the last visit: no seizure, so no breakthrough raise; the disagreement is said."""
    for code, system in (("91175000", codes.SNOMED), ("R56.9", codes.ICD10CM)):
        visits = encounters()
        for visit in visits[3:5]:
            visit["reasonCode"] = [{"coding": [{"system": system, "code": code}]}]
        resources = [f.patient(), *visits, f.document("n3", DAYS[3], "No seizures since the last visit.", eid="e3"),
                     f.document("n4", DAYS[4], "No seizures since the last visit. Doing well at school.", eid="e4")]
        timeline = build_timeline(resources)
        assert [v.seizure_since_last_visit for v in timeline.visits[3:]] == [False, False], code
        assert ProblemKind.CONFLICT in kinds(timeline)
        alone = build_timeline([f.patient(), *visits])  # the reason alone still says a seizure happened
        assert alone.visits[4].seizure_since_last_visit is True



def test_a_follow_ups_seizure_diagnosis_dated_only_by_the_visit_does_not_overrule_the_note() -> None:
    """An encounter-diagnosis Condition "Seizure" of the follow-up itself (onset the visit's day, or only recorded
    then): as weak as the visit's reason code. One with an onset of its own still dates a seizure."""
    def diagnosis(**dates: str) -> dict:
        condition = f.coded_condition("dx", codes.SNOMED, "91175000")
        condition.update(dates, encounter={"reference": "Encounter/e4"})
        return condition

    denial = f.document("n4", DAYS[4], "No seizures since the last visit.", eid="e4")
    for dates in ({"onsetDateTime": DAYS[4].isoformat()}, {"recordedDate": DAYS[4].isoformat()}):
        timeline = build_timeline([f.patient(), *encounters(), diagnosis(**dates), denial])
        assert timeline.visits[4].seizure_since_last_visit is False, dates
    dated = build_timeline([f.patient(), *encounters(), diagnosis(onsetDateTime=(DAYS[4] - timedelta(days=20)).isoformat()), denial])
    assert dated.visits[4].seizure_since_last_visit is True
    assert dated.visits[4].provenance["seizure_since_last_visit"] == Provenance("condition", "Condition/dx")
