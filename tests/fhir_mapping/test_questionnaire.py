"""The project's BECT follow-up Questionnaire: its items are the state's visit items, responses map
through the one FHIR → state path with provenance "questionnaire"."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_mapping import codes
from fhir_mapping.build import VISIT_REPORT_KEYS, build_timeline
from fhir_mapping.problems import ProblemKind
from fhir_mapping.questionnaire import CHOICES, QUESTIONNAIRE_URL, questionnaire
from fhir_mapping.timeline import Provenance
from tests.fhir_mapping import factory as f

DAY = date(2022, 5, 2)


def response(rid: str, answers: dict[str, dict[str, Any]], *, status: str = "completed", url: str = QUESTIONNAIRE_URL + "|1") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse", "id": rid, "questionnaire": url, "status": status,
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e0"}, "authored": f"{DAY.isoformat()}T10:00:00Z",
        "item": [{"linkId": "seizures", "item": [{"linkId": key, "answer": [answer]} for key, answer in answers.items()]}],
    }


def coding(code: str) -> dict[str, Any]:
    return {"valueCoding": {"system": codes.EPIDOSE_SYSTEM, "code": code}}


def test_questionnaire_asks_the_state_items_with_the_project_codes() -> None:
    q = questionnaire()
    assert q["resourceType"] == "Questionnaire" and q["url"] == QUESTIONNAIRE_URL and q["status"] == "active"
    links = {item["linkId"] for item in q["item"]}
    assert links <= VISIT_REPORT_KEYS and {"seizure_since_last_visit", "seizure_count_since_last_visit", "seizure_last_3_months", "seizure_last_6_months"} <= links
    for item in q["item"]:
        if item["type"] == "choice":
            offered = tuple(o["valueCoding"]["code"] for o in item["answerOption"])
            assert set(offered) <= set(CHOICES[item["linkId"]]) and all(o["valueCoding"]["system"] == codes.EPIDOSE_SYSTEM for o in item["answerOption"])


def test_response_answers_become_visit_items_with_their_provenance() -> None:
    answers = {"seizure_since_last_visit": {"valueBoolean": True}, "seizure_count_since_last_visit": {"valueInteger": 2},
               "seizure_duration_class": coding("1-to-5-min"), "seizure_last_3_months": {"valueBoolean": True},
               "physical_exam_class": coding("fair"), "behaviour_adverse_effect": {"valueBoolean": False}}
    visit = build_timeline([f.patient(), f.encounter("e0", DAY), response("q", answers)]).visits[0]
    assert (visit.seizure_since_last_visit, visit.seizure_count_since_last_visit, visit.seizure_duration_class) == (True, 2, 2)
    assert (visit.seizure_last_3_months, visit.exam_class, visit.behaviour_adverse_effect) == (True, "fair", False)
    assert visit.seizure_last_6_months is None
    assert visit.provenance["seizure_count_since_last_visit"] == Provenance("questionnaire", "QuestionnaireResponse/q")


def test_no_seizure_answer_implies_a_count_of_zero_and_no_duration() -> None:
    visit = build_timeline([f.patient(), f.encounter("e0", DAY), response("q", {"seizure_since_last_visit": {"valueBoolean": False}})]).visits[0]
    assert (visit.seizure_since_last_visit, visit.seizure_count_since_last_visit, visit.seizure_duration_class) == (False, 0, 0)


def test_questionnaire_wins_over_text_and_loses_to_a_coded_observation() -> None:
    resources = [f.patient(), f.encounter("e0", DAY), response("q", {"seizure_since_last_visit": {"valueBoolean": True}, "seizure_last_6_months": {"valueBoolean": True}}),
                 f.document("d", DAY, "No seizures since the last visit.", eid="e0"), f.flag("o", "seizure_last_6_months", DAY, False, eid="e0")]
    timeline = build_timeline(resources)
    visit = timeline.visits[0]
    assert visit.seizure_since_last_visit is True and visit.provenance["seizure_since_last_visit"].kind == "questionnaire"
    assert visit.seizure_last_6_months is False and visit.provenance["seizure_last_6_months"].kind == "code"
    assert {p.resource for p in timeline.problems if p.kind is ProblemKind.CONFLICT} == {"DocumentReference/d", "QuestionnaireResponse/q"}


def test_bad_answers_other_forms_and_unfinished_responses_are_not_read() -> None:
    resources = [f.patient(), f.encounter("e0", DAY),
                 response("bad", {"seizure_count_since_last_visit": {"valueInteger": -1}, "seizure_duration_class": coding("forever"), "seizure_last_3_months": {"valueString": "yes"}}),
                 response("draft", {"seizure_since_last_visit": {"valueBoolean": True}}, status="in-progress"),
                 response("other", {"seizure_since_last_visit": {"valueBoolean": True}}, url="https://example.org/Questionnaire/x")]
    timeline = build_timeline(resources)
    visit = timeline.visits[0]
    assert (visit.seizure_since_last_visit, visit.seizure_count_since_last_visit, visit.seizure_duration_class, visit.seizure_last_3_months) == (None, None, None, None)
    assert [p.kind for p in timeline.problems] == [ProblemKind.INVALID_VALUE] * 3
