"""Simulator-shaped FHIR written to a real FHIR server and read back as searchset Bundles maps the same."""

from __future__ import annotations

from datetime import date

import pytest
import requests

from fhir_mapping.build import build_timeline
from fhir_mapping.features import state_matrix
from fhir_mapping.inputs import collect_resources
from tests.fhir_mapping import factory as f

pytestmark = [pytest.mark.fhir_server, pytest.mark.slow]


def test_timeline_from_server_searchsets_equals_direct_mapping(fhir_server: str) -> None:
    """Searchset Bundles (with server meta, fullUrl and search mode) give the same timeline and states."""
    resources = f.history("srv-1", visits=3, doses=(0.0, 500.0, 750.0))
    transaction = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources],
    }
    headers = {"Content-Type": "application/fhir+json"}
    response = requests.post(fhir_server, json=transaction, headers=headers, timeout=30)
    assert response.ok, response.text[:500]
    prefetch = {"patient": requests.get(f"{fhir_server}/Patient/srv-1", timeout=30).json()}
    for kind in ("Encounter", "Observation", "Condition", "MedicationRequest"):
        reply = requests.get(f"{fhir_server}/{kind}", params={"patient": "srv-1", "_count": "200"}, timeout=30)
        assert reply.ok, reply.text[:500]
        prefetch[kind] = reply.json()
    from_server, problems = collect_resources(prefetch)
    assert problems == []
    as_of = date(2020, 9, 1)
    direct = build_timeline(resources, as_of=as_of)
    served = build_timeline(from_server, "srv-1", as_of=as_of)
    assert served.to_json() == direct.to_json()
    assert [v.lev_mg_per_day for v in served.visits] == [0.0, 500.0, 750.0]
    values, observed = state_matrix(served)
    expected_values, expected_observed = state_matrix(direct)
    assert (observed == expected_observed).all()
    assert ((values == expected_values) | ~observed).all()


def test_ehr_shaped_child_through_the_server_maps_the_same(fhir_server: str) -> None:
    """An ehr-dialect child (notes as DocumentReference with base64 data, seizure Conditions listed as
    encounter diagnoses, the project form as QuestionnaireResponse) stored on and searched from a real
    FHIR server gives the same timeline, provenance included, as the resources mapped directly."""
    from training.simulator.cohort import simulate_cohort
    from training.simulator.fhir import child_resources

    run = next(r for r in simulate_cohort(12, seed=8) if len(r.visits) >= 5)
    resources = child_resources(run, dialect="ehr")
    kinds = {r["resourceType"] for r in resources}
    assert {"DocumentReference", "Condition", "Encounter"} <= kinds
    transaction = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources],
    }
    response = requests.post(fhir_server, json=transaction, headers={"Content-Type": "application/fhir+json"}, timeout=60)
    assert response.ok, response.text[:500]
    pid = run.child.patient_id
    prefetch = {"patient": requests.get(f"{fhir_server}/Patient/{pid}", timeout=30).json()}
    for kind in sorted(kinds - {"Patient"}):
        reply = requests.get(f"{fhir_server}/{kind}", params={"patient": pid, "_count": "500"}, timeout=30)
        assert reply.ok, reply.text[:500]
        prefetch[kind] = reply.json()
    from_server, problems = collect_resources(prefetch)
    assert problems == []
    direct = build_timeline(resources, pid)
    served = build_timeline(from_server, pid)
    assert served.to_json() == direct.to_json()
    assert any(v.provenance.get("seizure_since_last_visit") and v.provenance["seizure_since_last_visit"].kind == "text" for v in served.visits)
