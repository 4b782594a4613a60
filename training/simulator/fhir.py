"""FHIR R4 resources of one simulated child, as real data would carry them.

Per child: Patient, the BECT Condition (SNOMED 44145005, onsetDateTime) and per visit an Encounter
(period.start = visit date), weight and height (vital-signs, UCUM; a few weights in [lb_av]), the
project seizure reports (fhir_mapping.codes EPIDOSE_SYSTEM), labs (creatinine in mg/dL or umol/L,
ALT, AST, WBC, Hb, platelets, levetiracetam level LOINC 30471-7), an EEG at some visits and the
levetiracetam MedicationRequest decided at the visit (fhir_mapping.emit), with
``timing.repeat.boundsPeriod`` from the visit to the next visit when superseded. When the physician
stops the drug the previous order becomes ``stopped`` with its period ending that day.
Every Observation carries subject, encounter and effectiveDateTime = the visit date.
"""

from __future__ import annotations

from typing import Any

from fhir_mapping.codes import (
    ANSWER_DISPLAYS,
    ASSESSMENT_CLASSES,
    CONDITION_CLINICAL,
    CONDITIONS,
    DURATION_CLASSES,
    EPIDOSE_SYSTEM,
    OBSERVATION_CATEGORY,
    UCUM,
    V3_ACT_CODE,
    coding,
    observation_concept,
)
from fhir_mapping.dosing import DOSE_CLASSES_MG
from fhir_mapping.emit import medication_request
from fhir_mapping.units import CREATININE_UMOL_L_PER_MG_DL, KG_PER_LB
from training.simulator.names import synthetic_name
from training.simulator.patients import resource_uuid
from training.simulator.simulate import ChildRun

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
        "physical_exam_class", "physician_assessment", "behaviour_adverse_effect",
    )
}


def _answer(code: str) -> dict[str, Any]:
    return {"coding": [{"system": EPIDOSE_SYSTEM, "code": code, "display": ANSWER_DISPLAYS[code]}]}


def child_resources(run: ChildRun, *, pending_last: bool = False) -> list[dict[str, Any]]:
    """All resources of one child, Patient first.

    With ``pending_last`` the last visit is still being decided: its observations are written but the
    order in effect is left as it was on arrival (no new order, the previous one not yet superseded).
    """
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
        for key, value in visit.labs.items():
            unit = _LAB_UNITS[key]
            if key == "creatinine" and visit.creatinine_in_umol:
                value, unit = round(value * CREATININE_UMOL_L_PER_MG_DL, 0), "umol/L"
            observation(key, "laboratory", {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}})
        if visit.eeg is not None:
            observation("eeg", "procedure", {"valueCodeableConcept": _answer(visit.eeg)})
        # The order decided at this visit supersedes (or stops) the previous one.
        if pending_last and index == last:
            break
        if previous_order is not None:
            bounds = previous_order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
            bounds["end"] = day
            previous_order["status"] = "completed" if visit.dose_class > 0 else "stopped"
            previous_order = None
        if visit.dose_class > 0 and visit.order_id is not None:
            order = medication_request(
                pid,
                DOSE_CLASSES_MG[visit.dose_class],
                weight_kg=weight,
                age_years=child.age_years(visit.date),
                authored_on=visit.date,
                status="active",
                intent="order",
                resource_id=visit.order_id,
                encounter_id=visit.encounter_id,
            )
            order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": day}
            out.append(order)
            previous_order = order
    return out
