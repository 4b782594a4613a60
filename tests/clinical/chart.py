"""Builders of FHIR R4 resources from literal arguments, for the hand-written clinical charts.

Each function turns the facts a clinician would read off a chart (a date, a value, a unit, a code)
into the resource an EHR sends, in the shapes real EHRs use (US Core vital signs, laboratory results,
RxNorm-coded MedicationRequests with doses in mg, mL or tablets, Conditions with onset and clinical
status, ambulatory Encounters with reason codes, progress notes as DocumentReference). Nothing is
random and nothing comes from the simulator: every value is an argument written in ``charts_source``.

Dates are written as of :data:`CHART_DAY`, the day the charts were written; the harness moves every
date by the same number of days so that :data:`CHART_DAY` becomes the day the test runs (ages, data
ages and intervals are kept).
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Any, Final

CHART_DAY: Final = date(2026, 12, 1)  # "today" in every chart

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
EPIDOSE: Final = "https://epidose.org/fhir/CodeSystem/epidose"  # the project CodeSystem (fhir_mapping.codes)
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
MED_REQUEST_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

# RxNorm levetiracetam products (shared/domain.md §5): code → (display, mg per unit, unit of the dose).
LEV_PRODUCTS: Final[dict[str, tuple[str, float, str]]] = {
    "311288": ("levetiracetam 250 MG Oral Tablet", 250.0, "tablet"),
    "311289": ("levetiracetam 500 MG Oral Tablet", 500.0, "tablet"),
    "311290": ("levetiracetam 750 MG Oral Tablet", 750.0, "tablet"),
    "387003": ("levetiracetam 1000 MG Oral Tablet", 1000.0, "tablet"),
    "403884": ("levetiracetam 100 MG/ML Oral Solution", 100.0, "mL"),
    "807832": ("24 HR levetiracetam 500 MG Extended Release Oral Tablet", 500.0, "tablet"),
}

# Conditions as charts record them (shared/domain.md §5; Synthea and encounter-diagnosis usage).
CONDITION_CODES: Final[dict[str, tuple[str, str]]] = {
    "44145005": (SNOMED, "Benign rolandic epilepsy"),
    "84757009": (SNOMED, "Epilepsy"),
    "128613002": (SNOMED, "Seizure disorder"),
    "91175000": (SNOMED, "Seizure"),
    "703151001": (SNOMED, "History of single seizure"),
    "G40.009": (ICD10CM, "Localization-related (focal) (partial) idiopathic epilepsy and epileptic syndromes "
                         "with seizures of localized onset, not intractable, without status epilepticus"),
    "R56.9": (ICD10CM, "Unspecified convulsions"),
    # Out-of-scope diagnoses (SNOMED CT): atrial fibrillation, asthma, acute otitis media.
    "49436004": (SNOMED, "Atrial fibrillation"),
    "195967001": (SNOMED, "Asthma"),
    "65363002": (SNOMED, "Otitis media"),
}

Resource = dict[str, Any]


def ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def patient(pid: str, birth_date: str, gender: str, given: str, family: str) -> Resource:
    return {"resourceType": "Patient", "id": pid,
            "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.1234.1", "value": f"MRN-{pid.upper()}"}],
            "active": True, "name": [{"use": "official", "family": family, "given": [given]}],
            "gender": gender, "birthDate": birth_date}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    shown = {"[lb_av]": "lb", "umol/L": "µmol/L", "ug/mL": "µg/mL"}.get(unit, unit)
    return {"value": value, "unit": shown, "system": UCUM, "code": unit}


def _observation(oid: str, pid: str, category: str, code: tuple[str, str, str], when: str,
                 encounter: str | None, value: dict[str, Any]) -> Resource:
    system, number, display = code
    resource: Resource = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": system, "code": number, "display": display}], "text": display},
        "subject": ref("Patient", pid), "effectiveDateTime": when, **value}
    if encounter:
        resource["encounter"] = ref("Encounter", encounter)
    return resource


def weight(oid: str, pid: str, when: str, value: float, unit: str = "kg", encounter: str | None = None) -> Resource:
    """Body weight, US Core vital signs (LOINC 29463-7), in kg or [lb_av]."""
    return _observation(oid, pid, "vital-signs", (LOINC, "29463-7", "Body weight"), when, encounter,
                        {"valueQuantity": _quantity(value, unit)})


def height(oid: str, pid: str, when: str, value_cm: float, encounter: str | None = None) -> Resource:
    """Body height, US Core vital signs (LOINC 8302-2)."""
    return _observation(oid, pid, "vital-signs", (LOINC, "8302-2", "Body height"), when, encounter,
                        {"valueQuantity": _quantity(value_cm, "cm")})


def creatinine(oid: str, pid: str, when: str, value: float, unit: str = "mg/dL", encounter: str | None = None) -> Resource:
    """Serum creatinine (LOINC 2160-0), in mg/dL or umol/L, with the laboratory's reference range."""
    resource = _observation(oid, pid, "laboratory",
                            (LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"), when, encounter,
                            {"valueQuantity": _quantity(value, unit)})
    low, high = (0.3, 0.7) if unit == "mg/dL" else (27.0, 62.0)  # paediatric laboratory range as printed
    resource["referenceRange"] = [{"low": _quantity(low, unit), "high": _quantity(high, unit)}]
    return resource


def lev_level(oid: str, pid: str, when: str, value: float, unit: str = "mg/L", encounter: str | None = None,
              note: str | None = None) -> Resource:
    """Levetiracetam serum level (LOINC 30471-7), in mg/L or ug/mL."""
    resource = _observation(oid, pid, "laboratory",
                            (LOINC, "30471-7", "Levetiracetam [Mass/volume] in Serum or Plasma"), when, encounter,
                            {"valueQuantity": _quantity(value, unit)})
    if note:
        resource["note"] = [{"text": note}]
    return resource


def seizure_report(prefix: str, pid: str, when: str, encounter: str | None, *, count: int | None,
                   last_3_months: bool | None = None, last_6_months: bool | None = None,
                   duration: str | None = None, exam: str | None = None, assessment: str | None = None,
                   adverse_effect: bool | None = None) -> list[Resource]:
    """The project's follow-up Observations (fhir_mapping.codes, CodeSystem EPIDOSE) for one visit.

    ``duration`` is one of none / under-1-min / 1-to-5-min / over-5-min; ``exam`` good / fair / deficit;
    ``assessment`` improved / stable / worse. ``None`` leaves the item out (not recorded).
    """
    items: list[Resource] = []

    def add(code: str, display: str, value: dict[str, Any]) -> None:
        items.append(_observation(f"{prefix}-{code}", pid, "survey", (EPIDOSE, code, display), when, encounter, value))

    def answer(code: str) -> dict[str, Any]:
        return {"valueCodeableConcept": {"coding": [{"system": EPIDOSE, "code": code}]}}

    if count is not None:
        add("seizure-count-since-last-visit", "Number of seizures since the last visit", {"valueInteger": count})
    if last_3_months is not None:
        add("seizure-last-3-months", "Any seizure within the last 3 months", {"valueBoolean": last_3_months})
    if last_6_months is not None:
        add("seizure-last-6-months", "Any seizure within the last 6 months", {"valueBoolean": last_6_months})
    if duration is not None:
        add("seizure-duration-class", "Longest seizure duration since the last visit (ordinal class)", answer(duration))
    if exam is not None:
        add("physical-exam-class", "Physical and neurological examination class", answer(exam))
    if assessment is not None:
        add("physician-assessment", "Physician assessment of the course since the last visit", answer(assessment))
    if adverse_effect is not None:
        add("behaviour-adverse-effect", "Behavioural adverse effect reported since the last visit",
            {"valueBoolean": adverse_effect})
    return items


def condition(cid: str, pid: str, code: str, *, onset: str | None, recorded: str | None = None,
              status: str | None = "active", category: str = "problem-list-item", encounter: str | None = None,
              note: str | None = None, verification: str = "confirmed") -> Resource:
    """A Condition as a problem list or an encounter diagnosis records it (clinicalStatus, onset, note)."""
    system, display = CONDITION_CODES[code]
    resource: Resource = {
        "resourceType": "Condition", "id": cid,
        "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": verification}]},
        "category": [{"coding": [{"system": CONDITION_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": ref("Patient", pid)}
    if status is not None:  # R4: no clinicalStatus on a refuted or entered-in-error condition
        resource["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": status}]}
    if onset:
        resource["onsetDateTime"] = onset
    if status in ("resolved", "remission", "inactive") and onset:
        resource["abatementString"] = "seizure-free"
    if recorded or onset:
        resource["recordedDate"] = recorded or onset
    if encounter:
        resource["encounter"] = ref("Encounter", encounter)
    if note:
        resource["note"] = [{"text": note}]
    return resource


def encounter(eid: str, pid: str, day: str, *, reason: str | None = None, kind: str = "AMB",
              service: str = "Paediatric neurology follow-up") -> Resource:
    """A finished ambulatory (or emergency, ``kind="EMER"``) Encounter with its reason code."""
    resource: Resource = {
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": ACT_CODE, "code": kind, "display": {"AMB": "ambulatory", "EMER": "emergency"}[kind]},
        "type": [{"text": service}], "subject": ref("Patient", pid),
        "period": {"start": f"{day}T09:30:00Z", "end": f"{day}T10:00:00Z"}}
    if reason:
        system, display = CONDITION_CODES[reason]
        resource["reasonCode"] = [{"coding": [{"system": system, "code": reason, "display": display}], "text": display}]
    return resource


def progress_note(did: str, pid: str, day: str, text: str, encounter: str | None = None, *, rtf: bool = False) -> Resource:
    """A clinician's progress note (LOINC 11506-3) as DocumentReference with inline text/plain, or filed as RTF
    (``rtf``: the text wrapped in an RTF document with a font table, as several EHRs file notes)."""
    document = ""
    if rtf:
        escaped = "".join(ch if ord(ch) < 128 else f"\\u{ord(ch) if ord(ch) < 32768 else ord(ch) - 65536}?" for ch in text)
        document = "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\fswiss Arial;}}\\f0\\fs20 " + escaped.replace("\n", "\\par ") + "\\par}"
    resource: Resource = {
        "resourceType": "DocumentReference", "id": did, "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "11506-3", "display": "Progress note"}]},
        "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                                  "code": "clinical-note"}]}],
        "subject": ref("Patient", pid), "date": f"{day}T10:00:00Z", "description": "Progress note" if rtf else text,
        "content": [{"attachment": {"contentType": "text/rtf", "data": base64.b64encode(document.encode("ascii")).decode("ascii")}}
                    if rtf else {"attachment": {"contentType": "text/plain; charset=utf-8",
                                                "data": base64.b64encode(text.encode("utf-8")).decode("ascii")}}]}
    if encounter:
        resource["context"] = {"encounter": [ref("Encounter", encounter)]}
    return resource


def lev_order(mid: str, pid: str, product: str, amount: float, unit: str, *, per_day: int, authored: str,
              status: str = "active", end: str | None = None, contained: bool = False,
              encounter: str | None = None, days_supply: int | None = 30) -> Resource:
    """A levetiracetam MedicationRequest (RxNorm product); ``unit`` is mg, mL or tablet; ``per_day`` doses a day.

    ``contained`` puts the product in a contained Medication referenced as ``#med`` (as many EHRs do).
    """
    display, _, _ = LEV_PRODUCTS[product]
    code = {"coding": [{"system": RXNORM, "code": product, "display": display}], "text": display}
    quantity = ({"value": amount, "unit": "tablet", "system": UCUM, "code": "{tbl}"} if unit == "tablet"
                else {"value": amount, "unit": unit, "system": UCUM, "code": unit})
    timing_code = {1: "QD", 2: "BID", 3: "TID"}[per_day]
    text = f"{amount:g} {unit}{'s' if unit == 'tablet' and amount != 1 else ''} by mouth {timing_code}"
    bounds: dict[str, Any] = {"start": authored}
    if end:
        bounds["end"] = end
    resource: Resource = {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
        "category": [{"coding": [{"system": MED_REQUEST_CATEGORY, "code": "outpatient"}]}],
        "subject": ref("Patient", pid), "authoredOn": f"{authored}T10:05:00Z",
        "requester": {"reference": "Practitioner/dr-lin", "display": "Dr Mei Lin"},
        "dosageInstruction": [{
            "text": text,
            "timing": {"repeat": {"boundsPeriod": bounds, "frequency": per_day, "period": 1, "periodUnit": "d"},
                       "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                            "code": timing_code}]}},
            "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]},
            "doseAndRate": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                                                  "code": "ordered"}]},
                             "doseQuantity": quantity}]}]}
    if contained:
        resource["contained"] = [{"resourceType": "Medication", "id": "med", "code": code,
                                  "form": {"text": "solution" if product == "403884" else "tablet"}}]
        resource["medicationReference"] = {"reference": "#med", "display": display}
    else:
        resource["medicationCodeableConcept"] = code
    if encounter:
        resource["encounter"] = ref("Encounter", encounter)
    if days_supply:
        resource["dispenseRequest"] = {"expectedSupplyDuration": {"value": days_supply, "unit": "days",
                                                                  "system": UCUM, "code": "d"},
                                       "numberOfRepeatsAllowed": 2}
    return resource


def lev_statement(sid: str, pid: str, product: str, amount: float, unit: str, *, per_day: int, since: str) -> Resource:
    """Levetiracetam recorded as taken (a reconciled home medicine, MedicationStatement), not as an order."""
    display, _, _ = LEV_PRODUCTS[product]
    timing_code = {1: "QD", 2: "BID", 3: "TID"}[per_day]
    quantity = ({"value": amount, "unit": "tablet", "system": UCUM, "code": "{tbl}"} if unit == "tablet"
                else {"value": amount, "unit": unit, "system": UCUM, "code": unit})
    return {"resourceType": "MedicationStatement", "id": sid, "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": product, "display": display}], "text": display},
            "subject": ref("Patient", pid), "effectivePeriod": {"start": since}, "dateAsserted": f"{since}T09:00:00Z",
            "informationSource": {"display": "Parent (medicines reconciliation)"},
            "dosage": [{"text": f"{amount:g} {unit} by mouth {timing_code}",
                        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                        "doseAndRate": [{"doseQuantity": quantity}]}]}


def other_order(mid: str, pid: str, rxnorm: str, display: str, text: str, *, authored: str,
                status: str = "active") -> Resource:
    """A MedicationRequest for another medicine (dose in text only, as many EHRs send it)."""
    return {"resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm, "display": display}],
                                          "text": display},
            "subject": ref("Patient", pid), "authoredOn": f"{authored}T10:05:00Z",
            "dosageInstruction": [{"text": text}]}


def bundle(resources: list[Resource]) -> Resource:
    """A searchset Bundle as a FHIR server answers a prefetch query."""
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def draft(order: Resource) -> Resource:
    """A draftOrders Bundle holding one order in status draft (order-select / order-sign)."""
    resource = {**order, "status": "draft"}
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}


def sandbox_draft(order: Resource) -> Resource:
    """draftOrders as the reference CDS Hooks sandbox sends them (shared/cds-hooks.md, "What real clients
    send"): a Bundle without ``type``, ``category`` as an object rather than an array, doses in ``{pill}``."""
    resource = {**order, "status": "draft", "category": order["category"][0]}
    dosage = dict(resource["dosageInstruction"][0])
    amount = dosage["doseAndRate"][0]["doseQuantity"]["value"]
    dosage["doseAndRate"] = [{"doseQuantity": {"value": amount, "unit": "{pill}"}}]
    resource["dosageInstruction"] = [dosage]
    return {"resourceType": "Bundle", "entry": [{"resource": resource}]}
