"""Small synthetic FHIR data for the retraining tests: patients with dated visits, as PUT transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import requests

LOINC = "http://loinc.org"


def patient_resources(patient: str, visits: list[str]) -> list[dict[str, Any]]:
    """A Patient, and per visit date an Encounter and a body-weight Observation."""
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": patient, "birthDate": "2014-05-01", "gender": "female"}]
    for index, date in enumerate(visits):
        encounter = f"{patient}-e{index}"
        resources.append(
            {
                "resourceType": "Encounter",
                "id": encounter,
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": f"Patient/{patient}"},
                "period": {"start": date, "end": date},
            }
        )
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"{encounter}-wt",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
                "subject": {"reference": f"Patient/{patient}"},
                "encounter": {"reference": f"Encounter/{encounter}"},
                "effectiveDateTime": date,
                "valueQuantity": {"value": 25 + index, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            }
        )
    return resources


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that PUTs each resource at its id (so halves can be loaded separately)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ],
    }


def load(base: str, resources: list[dict[str, Any]]) -> None:
    """POST the resources to the server as one transaction; fail the test if the server refuses."""
    response = requests.post(base, json=transaction(resources), headers={"Content-Type": "application/fhir+json"}, timeout=60)
    if response.status_code >= 300:
        raise AssertionError(f"server refused the transaction: {response.status_code} {response.text[:300]}")


EPIDOSE = "https://epidose.org/fhir/CodeSystem/epidose"
RXNORM_LEV_SOLUTION = "403884"  # levetiracetam 100 MG/ML Oral Solution (as in the golden simulator history)
DOSE_STEPS_MG = (0, 250, 500, 750, 1000, 1250, 1500)


def _observation(oid: str, patient: str, encounter: str, day: str, code: str, system: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"}, "encounter": {"reference": f"Encounter/{encounter}"},
        "effectiveDateTime": day, **value,
    }


def _lev_order(oid: str, patient: str, mg_per_day: float, start: str, end: str | None) -> dict[str, Any]:
    ml = mg_per_day / 2 / 100  # twice daily, 100 mg/mL
    bounds = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "MedicationRequest", "id": oid, "status": "completed" if end else "active", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": RXNORM_LEV_SOLUTION}]},
        "subject": {"reference": f"Patient/{patient}"}, "authoredOn": start,
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "boundsPeriod": bounds}},
                               "doseAndRate": [{"doseQuantity": {"value": ml, "system": "http://unitsofmeasure.org", "code": "mL", "unit": "mL"}}]}],
    }


def synthetic_cohort(n_patients: int, seed: int, *, prefix: str = "s") -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """Patients of 4 to 8 quarterly visits: per patient, (visit date, that visit's resources) in order.

    Seizures become rarer as the weight-adjusted dose rises; physicians raise the dose after a
    seizure and otherwise mostly keep it, so doses and outcomes carry a learnable signal.
    """
    import math
    import random
    from datetime import date, timedelta

    rng = random.Random(seed)
    cohort: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for n in range(n_patients):
        patient = f"{prefix}{n:03d}"
        birth = date(2010, 1, 1) + timedelta(days=rng.randrange(0, 4 * 365))
        start = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 365))
        weight = 22.0 + rng.random() * 18
        dose = 0
        seizure = True
        visits: list[tuple[str, list[dict[str, Any]]]] = []
        n_visits = rng.randint(4, 8)
        for index in range(n_visits):
            day = (start + timedelta(days=91 * index)).isoformat()
            encounter = f"{patient}-e{index}"
            resources: list[dict[str, Any]] = []
            if index == 0:
                resources.append({"resourceType": "Patient", "id": patient, "gender": rng.choice(["female", "male"]),
                                  "birthDate": birth.isoformat()})
            resources.append({"resourceType": "Encounter", "id": encounter, "status": "finished",
                              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                              "subject": {"reference": f"Patient/{patient}"}, "period": {"start": day, "end": day}})
            weight += rng.random()
            count = (rng.randint(1, 4) if seizure else 0) if index else 2
            resources += [
                _observation(f"{encounter}-w", patient, encounter, day, "29463-7", LOINC,
                             {"valueQuantity": {"value": round(weight, 1), "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}),
                _observation(f"{encounter}-n", patient, encounter, day, "seizure-count-since-last-visit", EPIDOSE, {"valueInteger": count}),
                _observation(f"{encounter}-m3", patient, encounter, day, "seizure-last-3-months", EPIDOSE, {"valueBoolean": count > 0}),
                _observation(f"{encounter}-m6", patient, encounter, day, "seizure-last-6-months", EPIDOSE, {"valueBoolean": count > 0 or rng.random() < 0.3}),
            ]
            # The physician: up one step after a seizure, sometimes down after a quiet period.
            position = DOSE_STEPS_MG.index(dose)
            if count > 0:
                position = min(position + 1, len(DOSE_STEPS_MG) - 1)
            elif rng.random() < 0.15:
                position = max(position - 1, 0)
            if rng.random() < 0.1:
                position = rng.randrange(len(DOSE_STEPS_MG))
            dose = DOSE_STEPS_MG[position]
            next_day = (start + timedelta(days=91 * (index + 1))).isoformat() if index < n_visits - 1 else None
            resources.append(_lev_order(f"{encounter}-lev", patient, dose, day, next_day))
            # Outcome of this decision, reported at the next visit: fewer seizures at 20-40 mg/kg/day.
            mg_per_kg = dose / weight
            seizure = rng.random() < 1 / (1 + math.exp(-(1.2 - 0.12 * mg_per_kg)))
            visits.append((day, resources))
        cohort[patient] = visits
    return cohort


def split_by_date(cohort: dict[str, list[tuple[str, list[dict[str, Any]]]]], cut: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every resource of visits before ``cut``, and of visits on or after it."""
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for visits in cohort.values():
        for day, resources in visits:
            (before if day < cut else after).extend(resources)
    return before, after


def seizure_probability(mg_per_day: np.ndarray, weight_kg: np.ndarray) -> np.ndarray:
    """The synthetic cohort's outcome model: chance of a seizure before the next visit."""
    return 1 / (1 + np.exp(-(1.2 - 0.12 * mg_per_day / weight_kg)))


def synthetic_true_value(model: Any, table: Any, recommended: np.ndarray) -> float:
    """Expected next-visit reward of the recommended doses under the synthetic outcome model (±100)."""
    from fhir_mapping import features
    from fhir_mapping.dosing import DOSE_CLASSES_MG

    weight = table.values[:, features.FEATURE_SPEC.names.index("weight_kg")]
    doses = np.asarray(DOSE_CLASSES_MG, dtype=np.float64)[recommended]
    p = seizure_probability(doses, weight)
    return float(np.mean(100 * (1 - p) - 100 * p))


def resource_day(resource: dict[str, Any]) -> str | None:
    """The clinical date of a resource (visit, measurement, order, diagnosis), as YYYY-MM-DD."""
    for value in (
        (resource.get("period") or {}).get("start"),
        resource.get("effectiveDateTime"),
        resource.get("authoredOn"),
        resource.get("onsetDateTime"),
        resource.get("recordedDate"),
    ):
        if value:
            return str(value)[:10]
    return None


def split_cohort_bundles(cohort_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Split a simulated cohort's transaction Bundles by date: (first half, second half, cut date).

    The cut is the median Encounter date, so about half the visits fall on each side; undated
    resources (the Patient) and those dated before the patient's first visit (the Condition's onset)
    travel with the first Encounter: the pull follows Encounters, and a patient is charted from the
    first visit on.
    """
    import json

    bundles = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((cohort_dir / "bundles").glob("*.json"))]
    resources = [[entry["resource"] for entry in bundle["entry"]] for bundle in bundles]
    days = sorted(resource_day(r) or "" for group in resources for r in group if r["resourceType"] == "Encounter")
    cut = days[len(days) // 2]
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    for group in resources:
        visits = [resource_day(r) for r in group if r["resourceType"] == "Encounter" and resource_day(r)]
        dated = [resource_day(r) for r in group if resource_day(r)]
        first_visit = min(visits) if visits else min(dated) if dated else cut
        for resource in group:
            day = max(resource_day(resource) or first_visit, first_visit)
            (first if day < cut else second).append(resource)
    return first, second, cut
