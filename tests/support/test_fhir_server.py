"""The local FHIR server fixture works: it answers metadata and stores a resource."""

import requests


def test_fhir_server_round_trip(fhir_server: str) -> None:
    """A Patient written to the test server reads back with the same birthDate."""
    created = requests.post(f"{fhir_server}/Patient", json={"resourceType": "Patient", "birthDate": "2015-03-01"}, timeout=10)
    assert created.status_code in (200, 201)
    patient_id = created.json()["id"]
    read = requests.get(f"{fhir_server}/Patient/{patient_id}", timeout=10)
    assert read.json()["birthDate"] == "2015-03-01"
