"""FHIR R4 resources of one simulated child, as real data would carry them.

Per child: Patient, the BECT Condition (SNOMED 44145005, onsetDateTime) and per visit an Encounter
(period.start = visit date), weight and height (vital-signs, UCUM; a few weights in [lb_av]), the
project seizure reports (fhir_mapping.codes EPIDOSE_SYSTEM), labs (creatinine in mg/dL or umol/L,
ALT, AST, WBC, Hb, platelets, levetiracetam level LOINC 30471-7), an EEG at some visits and the
levetiracetam MedicationRequest decided at the visit (fhir_mapping.emit), with
``timing.repeat.boundsPeriod`` from the visit to the next visit when superseded. When the physician
stops the drug the previous order becomes ``stopped`` with its period ending that day.
Every Observation carries subject, encounter and effectiveDateTime = the visit date; a levetiracetam
level also the clock time of the draw and the request's note on timing (:mod:`training.simulator.levels`).

Dialects (``dialect``): ``epidose`` is the above (the project's coded seizure reports at every
visit); ``ehr`` writes the same child as an EHR would: the epilepsy diagnosis (SNOMED or ICD-10-CM),
seizures as encounter reasons and Conditions listed as encounter diagnoses at some visits, a progress
note in English or Chinese (training/simulator/notes.py; text/plain, HTML or Markdown) at most visits,
the project Questionnaire at a few, sparse labs, heights and EEGs, weights missing at some visits, and
no coded examination or assessment; ``mixed`` draws one of the two per child. The dialect draws come
from a stream of their own, so the simulated course and the truth files do not depend on it.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Final

import numpy as np

from fhir_mapping.codes import (
    ANSWER_DISPLAYS,
    ASSESSMENT_CLASSES,
    CONDITION_CLINICAL,
    CONDITIONS,
    DURATION_CLASSES,
    EPIDOSE_SYSTEM,
    ICD10CM,
    LOINC,
    OBSERVATION_CATEGORY,
    SNOMED,
    UCUM,
    V3_ACT_CODE,
    coding,
    observation_concept,
)
from fhir_mapping.dosing import DOSE_CLASSES_MG
from fhir_mapping.emit import medication_request
from fhir_mapping.questionnaire import QUESTIONNAIRE_URL
from fhir_mapping.units import CREATININE_UMOL_L_PER_MG_DL, KG_PER_LB
from training.simulator.names import synthetic_name
from training.simulator.notes import VisitFacts, family_request_sentence, note_text, visit_sentences
from training.simulator.patients import Child, resource_uuid
from training.simulator.simulate import ChildRun, VisitTruth

DIALECTS: Final = ("epidose", "ehr", "mixed")
# How often an EHR-shaped chart holds each record at a visit (project assumptions for the ehr
# dialect, not sourced: they make the mapping work from partial, varied records).
EHR_RATES: Final = {
    "note": 0.85, "questionnaire": 0.15, "encounter_reason": 0.35, "seizure_condition": 0.4,
    "weight": 0.8, "height": 0.5, "lab": 0.35, "eeg": 0.5, "html": 0.15, "markdown": 0.15, "chinese": 0.5,
}
_DIAGNOSES: Final = (
    {"system": SNOMED, "code": "44145005", "display": "Benign rolandic epilepsy"},
    {"system": ICD10CM, "code": "G40.009", "display": "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes with seizures of localized onset, not intractable, without status epilepticus"},
    {"system": SNOMED, "code": "84757009", "display": "Epilepsy"},
)
_SEIZURE_CODES: Final = (
    {"system": SNOMED, "code": "91175000", "display": "Seizure"},
    {"system": ICD10CM, "code": "R56.9", "display": "Unspecified convulsions"},
)
_PROGRESS_NOTE: Final = {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]}

_BECT = next(c for c in CONDITIONS if c.key == "bect")
_LAB_UNITS = {"alt": "U/L", "ast": "U/L", "wbc": "10*3/uL", "hemoglobin": "g/dL", "platelets": "10*3/uL", "lev_level": "mg/L", "creatinine": "mg/dL"}
_CATEGORY = {
    cat: [{"coding": [{"system": OBSERVATION_CATEGORY, "code": cat, "display": display}]}]
    for cat, display in (("vital-signs", "Vital Signs"), ("laboratory", "Laboratory"), ("exam", "Exam"), ("survey", "Survey"), ("procedure", "Procedure"))
}
_CODES = {
    key: {"coding": [coding(observation_concept(key))], "text": observation_concept(key).display}
    for key in (
        "weight", "height", "lev_level", "creatinine", "alt", "ast", "wbc", "hemoglobin", "platelets", "eeg",
        "seizure_count_since_last_visit", "seizure_last_3_months", "seizure_last_6_months", "seizure_duration_class",
        "physical_exam_class", "physician_assessment", "behaviour_adverse_effect", "family_requests_treatment",
    )
}


def _answer(code: str) -> dict[str, Any]:
    return {"coding": [{"system": EPIDOSE_SYSTEM, "code": code, "display": ANSWER_DISPLAYS[code]}]}


def dialect_of(child: Child, dialect: str) -> str:
    """The dialect a child is written in: ``mixed`` gives each child one of the two, by its seed."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    if dialect != "mixed":
        return dialect
    return "ehr" if child.seed % 2 else "epidose"


def child_resources(run: ChildRun, *, pending_last: bool = False, dialect: str = "epidose") -> list[dict[str, Any]]:
    """All resources of one child, Patient first, in the given dialect (see the module docstring).

    With ``pending_last`` the last visit is still being decided: its observations are written but the
    order in effect is left as it was on arrival (no new order, the previous one not yet superseded).
    """
    if dialect_of(run.child, dialect) == "ehr":
        return _ehr_resources(run, pending_last=pending_last)
    child = run.child
    pid = child.patient_id
    subject = {"reference": f"Patient/{pid}"}
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "name": synthetic_name(pid, child.sex), "gender": child.sex,
         "birthDate": child.birth_date.isoformat()},
        {
            "resourceType": "Condition",
            "id": resource_uuid(child, 0),
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
            "code": {"coding": [coding(_BECT)], "text": _BECT.display},
            "subject": subject,
            "onsetDateTime": child.onset_date.isoformat(),
            "recordedDate": run.visits[0].date.isoformat(),
        },
    ]
    counter = 1 << 10  # observation ids live above the encounter/order ids of the simulation loop
    previous_order: dict[str, Any] | None = None
    last = len(run.visits) - 1
    for index, visit in enumerate(run.visits):
        day = visit.date.isoformat()
        encounter_ref = {"reference": f"Encounter/{visit.encounter_id}"}
        out.append(
            {
                "resourceType": "Encounter",
                "id": visit.encounter_id,
                "status": "finished",
                "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": subject,
                "period": {"start": day, "end": day},
            }
        )

        def observation(key: str, category: str, value: dict[str, Any], _day: str = day, _enc: dict[str, str] = encounter_ref) -> None:
            nonlocal counter
            resource = {
                "resourceType": "Observation",
                "id": resource_uuid(child, counter),
                "status": "final",
                "category": _CATEGORY[category],
                "code": _CODES[key],
                "subject": subject,
                "encounter": _enc,
                "effectiveDateTime": _day,
            }
            resource.update(value)
            counter += 1
            out.append(resource)

        weight = round(visit.weight_kg, 1)
        if visit.weight_in_pounds:
            observation("weight", "vital-signs", {"valueQuantity": {"value": round(weight / KG_PER_LB, 2), "unit": "lb", "system": UCUM, "code": "[lb_av]"}})
        else:
            observation("weight", "vital-signs", {"valueQuantity": {"value": weight, "unit": "kg", "system": UCUM, "code": "kg"}})
        observation("height", "vital-signs", {"valueQuantity": {"value": round(visit.height_cm, 1), "unit": "cm", "system": UCUM, "code": "cm"}})
        observation("seizure_count_since_last_visit", "survey", {"valueInteger": visit.seizure_count})
        observation("seizure_last_3_months", "survey", {"valueBoolean": visit.seizure_last_3_months})
        observation("seizure_last_6_months", "survey", {"valueBoolean": visit.seizure_last_6_months})
        observation("seizure_duration_class", "survey", {"valueCodeableConcept": _answer(DURATION_CLASSES[visit.duration_class])})
        observation("physical_exam_class", "exam", {"valueCodeableConcept": _answer(visit.exam_class)})
        observation("physician_assessment", "survey", {"valueCodeableConcept": _answer(visit.assessment if visit.assessment in ASSESSMENT_CLASSES else "stable")})
        observation("behaviour_adverse_effect", "survey", {"valueBoolean": visit.adverse_effect})
        if visit.family_requests_treatment:
            observation("family_requests_treatment", "survey", {"valueBoolean": True})
        for key, value in visit.labs.items():
            unit = _LAB_UNITS[key]
            if key == "creatinine" and visit.creatinine_in_umol:
                value, unit = round(value * CREATININE_UMOL_L_PER_MG_DL, 0), "umol/L"
            timing = visit.level_timing.observation_fields(day) if key == "lev_level" and visit.level_timing else {}
            observation(key, "laboratory", {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}, **timing})
        if visit.eeg is not None:
            observation("eeg", "procedure", {"valueCodeableConcept": _answer(visit.eeg)})
        # The order decided at this visit supersedes (or stops) the previous one.
        if pending_last and index == last:
            break
        added, previous_order = _order(run, visit, previous_order, weight)
        out.extend(added)
    return out


def _order(run: ChildRun, visit: VisitTruth, previous_order: dict[str, Any] | None, weight: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The order decided at a visit (superseding or stopping the previous one): (new resources, order in effect)."""
    day = visit.date.isoformat()
    if previous_order is not None:
        bounds = previous_order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
        bounds["end"] = day
        previous_order["status"] = "completed" if visit.dose_class > 0 else "stopped"
        previous_order = None
    if visit.dose_class > 0 and visit.order_id is not None:
        order = medication_request(
            run.child.patient_id, DOSE_CLASSES_MG[visit.dose_class], weight_kg=weight, age_years=run.child.age_years(visit.date),
            authored_on=visit.date, status="active", intent="order", resource_id=visit.order_id, encounter_id=visit.encounter_id,
        )
        order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": day}
        return [order], order
    return [], previous_order


def _attachment(text: str, rng: np.random.Generator) -> dict[str, Any]:
    draw = rng.random()
    if draw < EHR_RATES["html"]:
        content_type, body = "text/html", "<div>" + "".join(f"<p>{line}</p>" for line in text.split("\n")) + "</div>"
    elif draw < EHR_RATES["html"] + EHR_RATES["markdown"]:
        content_type, body = "text/markdown", "## Progress note\n\n" + text
    else:
        content_type, body = "text/plain", text
    return {"contentType": f"{content_type}; charset=utf-8", "data": base64.b64encode(body.encode("utf-8")).decode("ascii")}


def _questionnaire_response(rid: str, visit: VisitTruth, subject: dict[str, str], encounter: dict[str, str]) -> dict[str, Any]:
    def answer(key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"linkId": key, "answer": [value]}

    def code(value: str) -> dict[str, Any]:
        return {"valueCoding": {"system": EPIDOSE_SYSTEM, "code": value, "display": ANSWER_DISPLAYS[value]}}

    items = [answer("seizure_since_last_visit", {"valueBoolean": visit.seizure_count > 0})]
    if visit.seizure_count:
        items += [answer("seizure_count_since_last_visit", {"valueInteger": visit.seizure_count}),
                  answer("seizure_duration_class", code(DURATION_CLASSES[visit.duration_class]))]
    items += [answer("seizure_last_3_months", {"valueBoolean": visit.seizure_last_3_months}),
              answer("seizure_last_6_months", {"valueBoolean": visit.seizure_last_6_months}),
              answer("behaviour_adverse_effect", {"valueBoolean": visit.adverse_effect}),
              answer("physical_exam_class", code(visit.exam_class)),
              answer("physician_assessment", code(visit.assessment if visit.assessment in ASSESSMENT_CLASSES else "stable"))]
    return {"resourceType": "QuestionnaireResponse", "id": rid, "questionnaire": QUESTIONNAIRE_URL + "|1", "status": "completed",
            "subject": subject, "encounter": encounter, "authored": visit.date.isoformat(), "item": items}


def _ehr_resources(run: ChildRun, *, pending_last: bool) -> list[dict[str, Any]]:
    """The child as an EHR records it (the ``ehr`` dialect of the module docstring)."""
    child = run.child
    pid = child.patient_id
    subject = {"reference": f"Patient/{pid}"}
    rng = np.random.default_rng([child.seed % (1 << 32), 0xE4])  # the dialect's own stream
    language = "zh" if rng.random() < EHR_RATES["chinese"] else "en"
    diagnosis = _DIAGNOSES[int(rng.integers(len(_DIAGNOSES)))]
    out: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": pid, "name": synthetic_name(pid, child.sex), "gender": child.sex,
         "birthDate": child.birth_date.isoformat()},
        {"resourceType": "Condition", "id": resource_uuid(child, 0),
         "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
         "code": {"coding": [diagnosis], "text": diagnosis["display"]}, "subject": subject,
         "onsetDateTime": child.onset_date.isoformat(), "recordedDate": run.visits[0].date.isoformat()},
    ]
    counter = 1 << 10
    previous_order: dict[str, Any] | None = None
    last_seizure_day = child.onset_date
    last = len(run.visits) - 1

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return resource_uuid(child, counter)

    for index, visit in enumerate(run.visits):
        day = visit.date.isoformat()
        encounter_ref = {"reference": f"Encounter/{visit.encounter_id}"}
        encounter: dict[str, Any] = {"resourceType": "Encounter", "id": visit.encounter_id, "status": "finished",
                                     "class": {"system": V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
                                     "subject": subject, "period": {"start": day, "end": day}}
        out.append(encounter)
        if visit.seizure_count and rng.random() < EHR_RATES["encounter_reason"]:
            encounter["reasonCode"] = [{"coding": [_SEIZURE_CODES[int(rng.integers(2))]]}]
        if visit.seizure_count and rng.random() < EHR_RATES["seizure_condition"]:
            cid = next_id()
            out.append({"resourceType": "Condition", "id": cid, "code": {"coding": [_SEIZURE_CODES[int(rng.integers(2))]]},
                        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "resolved"}]},
                        "subject": subject, "encounter": encounter_ref, "recordedDate": day})
            encounter["diagnosis"] = [{"condition": {"reference": f"Condition/{cid}"}}]

        def observation(key: str, category: str, value: dict[str, Any], _day: str = day, _enc: dict[str, str] = encounter_ref) -> None:
            out.append({"resourceType": "Observation", "id": next_id(), "status": "final", "category": _CATEGORY[category],
                        "code": _CODES[key], "subject": subject, "encounter": _enc, "effectiveDateTime": _day, **value})

        weight = round(visit.weight_kg, 1)
        if rng.random() < EHR_RATES["weight"]:
            if visit.weight_in_pounds:
                observation("weight", "vital-signs", {"valueQuantity": {"value": round(weight / KG_PER_LB, 2), "unit": "lb", "system": UCUM, "code": "[lb_av]"}})
            else:
                observation("weight", "vital-signs", {"valueQuantity": {"value": weight, "unit": "kg", "system": UCUM, "code": "kg"}})
        if rng.random() < EHR_RATES["height"]:
            observation("height", "vital-signs", {"valueQuantity": {"value": round(visit.height_cm, 1), "unit": "cm", "system": UCUM, "code": "cm"}})
        for key, lab in visit.labs.items():
            if rng.random() < EHR_RATES["lab"]:
                unit = _LAB_UNITS[key]
                if key == "creatinine" and visit.creatinine_in_umol:
                    lab, unit = round(lab * CREATININE_UMOL_L_PER_MG_DL, 0), "umol/L"
                observation(key, "laboratory", {"valueQuantity": {"value": lab, "unit": unit, "system": UCUM, "code": unit}})
        if visit.eeg is not None and rng.random() < EHR_RATES["eeg"]:
            observation("eeg", "procedure", {"valueCodeableConcept": _answer(visit.eeg)})
        free = None if visit.seizure_count else math.floor((visit.date - last_seizure_day).days / 30.44)
        if visit.seizure_count:
            last_seizure_day = visit.date
        written = rng.random() < EHR_RATES["note"]
        if written or visit.family_requests_treatment:
            # A family's request is always written down (it is why treatment starts); it adds a sentence
            # and draws nothing from the stream, so every other resource stays as it was.
            facts = VisitFacts(visit.seizure_count, visit.duration_class, visit.seizure_last_3_months, visit.seizure_last_6_months, visit.adverse_effect, free)
            sentences = visit_sentences(facts, language, rng) if written else []
            if visit.family_requests_treatment:
                sentences.append(family_request_sentence(language, visit.date.toordinal()))
            text = note_text(sentences, language)
            out.append({"resourceType": "DocumentReference", "id": next_id(), "status": "current", "type": _PROGRESS_NOTE,
                        "subject": subject, "date": f"{day}T12:00:00Z", "context": {"encounter": [encounter_ref]},
                        "content": [{"attachment": _attachment(text, rng)}]})
        if rng.random() < EHR_RATES["questionnaire"]:
            out.append(_questionnaire_response(next_id(), visit, subject, encounter_ref))
        if pending_last and index == last:
            break
        added, previous_order = _order(run, visit, previous_order, weight)
        out.extend(added)
    return out
