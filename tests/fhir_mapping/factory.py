"""Small builders of FHIR R4 resources in the shapes the cohort simulator writes (codes from codes.py)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fhir_mapping import codes
from fhir_mapping.emit import medication_request


def patient(pid: str = "p1", birth: str | None = "2012-05-01", gender: str = "female") -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": gender}
    if birth is not None:
        resource["birthDate"] = birth
    return resource


def encounter(eid: str, day: date, pid: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": codes.V3_ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": f"{day.isoformat()}T09:00:00Z", "end": f"{day.isoformat()}T09:30:00Z"},
    }


def _observation(oid: str, key: str, day: date, pid: str, eid: str | None) -> dict[str, Any]:
    concept = codes.observation_concept(key)
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [codes.coding(concept)]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"{day.isoformat()}T09:10:00Z",
    }
    if eid:
        resource["encounter"] = {"reference": f"Encounter/{eid}"}
    return resource


def quantity(oid: str, key: str, day: date, value: float, unit: str | None = None, pid: str = "p1", eid: str | None = None) -> dict[str, Any]:
    resource = _observation(oid, key, day, pid, eid)
    concept = codes.observation_concept(key)
    code = unit or concept.unit
    resource["valueQuantity"] = {"value": value, "unit": code, "system": codes.UCUM, "code": code}
    return resource


def count(oid: str, day: date, seizures: int, pid: str = "p1", eid: str | None = None) -> dict[str, Any]:
    resource = _observation(oid, "seizure_count_since_last_visit", day, pid, eid)
    resource["valueInteger"] = seizures
    return resource


def flag(oid: str, key: str, day: date, value: bool, pid: str = "p1", eid: str | None = None) -> dict[str, Any]:
    resource = _observation(oid, key, day, pid, eid)
    resource["valueBoolean"] = value
    return resource


def answer(oid: str, key: str, day: date, code: str, pid: str = "p1", eid: str | None = None) -> dict[str, Any]:
    resource = _observation(oid, key, day, pid, eid)
    resource["valueCodeableConcept"] = {"coding": [{"system": codes.EPIDOSE_SYSTEM, "code": code, "display": codes.ANSWER_DISPLAYS[code]}]}
    return resource


def condition(cid: str, onset: date, pid: str = "p1") -> dict[str, Any]:
    concept = codes.CONDITIONS[0]
    return {
        "resourceType": "Condition", "id": cid,
        "code": {"coding": [codes.coding(concept)]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset.isoformat(),
    }


def lev_order(oid: str, mg_per_day: float, start: date, end: date | None = None, *, status: str = "active", weight_kg: float = 30.0, pid: str = "p1") -> dict[str, Any]:
    resource = medication_request(pid, mg_per_day, weight_kg=weight_kg, age_years=9.0, authored_on=start, status=status, intent="order", resource_id=oid)
    bounds: dict[str, str] = {"start": start.isoformat()}
    if end is not None:
        bounds["end"] = end.isoformat()
    resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = bounds
    return resource


def history(pid: str = "p1", visits: int = 4, start: date = date(2020, 1, 6), doses: tuple[float, ...] = (0.0, 500.0, 750.0, 750.0)) -> list[dict[str, Any]]:
    """A simulator-shaped history: Patient, onset, and per visit an Encounter, weight, height,
    creatinine, seizure reports, exam, and a levetiracetam order when the decided dose changes."""
    resources: list[dict[str, Any]] = [patient(pid), condition(f"{pid}-c", start - timedelta(days=30), pid)]
    previous_dose = 0.0
    previous_order: dict[str, Any] | None = None
    for i in range(visits):
        day = start + timedelta(days=91 * i)
        eid = f"{pid}-e{i}"
        resources += [
            encounter(eid, day, pid),
            quantity(f"{pid}-w{i}", "weight", day, 28.0 + i, pid=pid, eid=eid),
            quantity(f"{pid}-h{i}", "height", day, 130.0 + i, pid=pid, eid=eid),
            quantity(f"{pid}-cr{i}", "creatinine", day, 0.5, pid=pid, eid=eid),
            count(f"{pid}-n{i}", day, 2 if i == 0 else 0, pid=pid, eid=eid),
            flag(f"{pid}-m3{i}", "seizure_last_3_months", day, i == 0, pid=pid, eid=eid),
            flag(f"{pid}-m6{i}", "seizure_last_6_months", day, i <= 1, pid=pid, eid=eid),
            answer(f"{pid}-x{i}", "physical_exam_class", day, "good", pid=pid, eid=eid),
            answer(f"{pid}-d{i}", "seizure_duration_class", day, "under-1-min" if i == 0 else "none", pid=pid, eid=eid),
        ]
        dose = doses[i % len(doses)]
        if dose != previous_dose:
            if previous_order is not None:
                previous_order["status"] = "stopped"
                previous_order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"] = day.isoformat()
                previous_order = None
            if dose > 0:
                previous_order = lev_order(f"{pid}-mr{i}", dose, day, weight_kg=28.0 + i, pid=pid)
                resources.append(previous_order)
            previous_dose = dose
    return resources


# --- EHR-shaped records: Conditions, encounter reasons, notes -------------------------------
def coded_condition(cid: str, system: str, code: str, *, onset: date | None = None, recorded: date | None = None,
                    verification: str | None = None, pid: str = "p1", note: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": cid, "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": f"Patient/{pid}"}}
    if onset is not None:
        resource["onsetDateTime"] = onset.isoformat()
    if recorded is not None:
        resource["recordedDate"] = recorded.isoformat()
    if verification is not None:
        resource["verificationStatus"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]}
    if note is not None:
        resource["note"] = [{"text": note}]
    return resource


def document(did: str, day: date, text: str | bytes, *, content_type: str = "text/plain", pid: str = "p1", eid: str | None = None) -> dict[str, Any]:
    """A progress note as a DocumentReference with inline base64 data."""
    import base64

    payload = text if isinstance(text, bytes) else text.encode("utf-8")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": did, "status": "current",
        "type": {"coding": [{"system": codes.LOINC, "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": f"Patient/{pid}"}, "date": f"{day.isoformat()}T10:00:00Z",
        "content": [{"attachment": {"contentType": content_type, "data": base64.b64encode(payload).decode("ascii")}}],
    }
    if eid is not None:
        resource["context"] = {"encounter": [{"reference": f"Encounter/{eid}"}]}
    return resource
