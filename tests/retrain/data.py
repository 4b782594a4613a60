"""Small synthetic FHIR data for the retraining tests: patients with dated visits, as PUT transactions."""

from __future__ import annotations

from typing import Any

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
