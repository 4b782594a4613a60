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
