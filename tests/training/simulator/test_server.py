"""The cohort's transaction Bundles load into a real FHIR server and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from training.simulator.cohort import CohortSummary


@pytest.mark.fhir_server
def test_bundles_load_into_a_fhir_server(cohort_50: tuple[Path, CohortSummary], fhir_server: str) -> None:
    """Three patients' Bundles are accepted as transactions; their resources are then searchable by patient."""
    out, _ = cohort_50
    for path in sorted((out / "bundles").iterdir())[:3]:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        response = requests.post(fhir_server, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=60)
        assert response.status_code == 200, response.text[:500]
        reply = response.json()
        assert reply["type"] == "transaction-response" and len(reply["entry"]) == len(bundle["entry"])
        patient_id = path.stem
        assert requests.get(f"{fhir_server}/Patient/{patient_id}", timeout=10).json()["id"] == patient_id
        n_encounters = sum(e["resource"]["resourceType"] == "Encounter" for e in bundle["entry"])
        found = requests.get(f"{fhir_server}/Encounter", params={"subject": f"Patient/{patient_id}", "_summary": "count"}, timeout=10).json()
        assert found["total"] == n_encounters
