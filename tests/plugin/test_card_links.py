"""What a card points to: override reasons a client can code (ours and the CDS Hooks 3.0 ballot's), links that work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.plugin.fixtures import hook_request, patient_resources

PV_PATH = "/cds-services/epidose-patient-view"
BALLOT_SYSTEM = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
BALLOT_CATEGORIES = {"cds-not-applicable", "cds-suboptimal-context", "recipient-disagrees-evidence",
                     "recipient-concerns-outcomes", "does-not-align-preferences", "not-convenient-feasible"}


def _card(app: Flask, **request_options: Any) -> dict[str, Any]:
    response = app.test_client().post(PV_PATH, json=hook_request("patient-view", patient_resources()), **request_options)
    assert response.status_code == 200
    card: dict[str, Any] = response.get_json()["cards"][0]
    return card


def test_override_reasons_carry_ours_and_the_ballot_categories(make_app: Callable[..., Flask]) -> None:
    """The dose card offers our levetiracetam reasons and the six standard categories, each a Coding with its system."""
    reasons = _card(make_app())["overrideReasons"]
    by_system: dict[str, set[str]] = {}
    for reason in reasons:
        assert reason["display"] and reason["code"]
        by_system.setdefault(reason["system"], set()).add(reason["code"])
    assert by_system[BALLOT_SYSTEM] == BALLOT_CATEGORIES
    assert {"clinical-judgement", "recent-drug-level"} <= by_system["https://epidose.org/fhir/CodeSystem/override-reason"]
    assert len({(r["system"], r["code"]) for r in reasons}) == len(reasons)


@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1:5001", "[::1]:9000"])
def test_links_keep_the_port_the_client_called(make_app: Callable[..., Flask], host: str) -> None:
    """On a loopback bind without a public base URL, links carry the scheme, host and port of the request."""
    card = _card(make_app(), base_url=f"http://{host}")
    assert card["links"][0]["url"] == f"http://{host}/models/current"
    assert card["source"]["url"] == f"http://{host}/models/current"


def test_links_use_the_public_base_url(make_app: Callable[..., Flask]) -> None:
    """With EPIDOSE_PUBLIC_BASE_URL (scheme, host, port and path prefix), links use it whatever the Host header."""
    app = make_app(public_base_url="https://cds.example-hospital.org:8443/epidose")
    card = _card(app, base_url="http://10.0.0.5:8080")
    assert card["links"][0]["url"] == "https://cds.example-hospital.org:8443/epidose/models/current"
