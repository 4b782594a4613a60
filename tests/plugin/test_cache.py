"""The per-worker response cache: identical content reuses the answer with fresh uuids; anything else recomputes."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask

from plugin.cache import ResponseCache
from plugin.runtime import Runtime
from tests.plugin.cardspec import check_response
from tests.plugin.fixtures import hook_request, patient_resources

PV = "/cds-services/epidose-patient-view"


def test_repeated_call_is_served_from_cache_with_fresh_uuids(make_app: Callable[..., Flask]) -> None:
    """The same data with a new hookInstance hits the cache; uuids differ and each card is audited."""
    app = make_app()
    client = app.test_client()
    runtime: Runtime = app.extensions["epidose"]
    prefetch = patient_resources()
    first = check_response(client.post(PV, json=hook_request("patient-view", prefetch)).get_json())
    second = check_response(client.post(PV, json=hook_request("patient-view", prefetch)).get_json())
    assert runtime.cache.hits == 1
    assert first[0]["summary"] == second[0]["summary"] and first[0]["detail"] == second[0]["detail"]
    assert first[0]["uuid"] != second[0]["uuid"]
    assert first[0]["suggestions"][0]["uuid"] != second[0]["suggestions"][0]["uuid"]
    first_id = first[0]["suggestions"][0]["actions"][0]["resource"]["id"]
    assert first_id != second[0]["suggestions"][0]["actions"][0]["resource"]["id"]
    assert runtime.store.audit(first[0]["uuid"]) is not None
    assert runtime.store.audit(second[0]["uuid"]) is not None


def test_changed_data_or_disabled_cache_recomputes(make_app: Callable[..., Flask]) -> None:
    """A different weight misses the cache; size 0 disables it."""
    app = make_app()
    client = app.test_client()
    runtime: Runtime = app.extensions["epidose"]
    light = check_response(client.post(PV, json=hook_request("patient-view", patient_resources(weight_kg=25.0))).get_json())
    heavy = check_response(client.post(PV, json=hook_request("patient-view", patient_resources(weight_kg=40.0))).get_json())
    assert runtime.cache.hits == 0 and light[0]["summary"] != heavy[0]["summary"]
    disabled = make_app(response_cache_size=0)
    other = disabled.test_client()
    for _ in range(2):
        other.post(PV, json=hook_request("patient-view", patient_resources()))
    assert disabled.extensions["epidose"].cache.hits == 0


def test_key_refuses_ambiguous_volatile_values() -> None:
    """A short hookInstance, or one that also occurs elsewhere in the body, is never used to share a key."""
    body = json.dumps({"hookInstance": "abc", "x": "abc"}).encode()
    assert ResponseCache.key(body, ["abc"]) is None
    repeated = json.dumps({"hookInstance": "0123456789abcdef", "id": "0123456789abcdef"}).encode()
    assert ResponseCache.key(repeated, ["0123456789abcdef"]) is None
    one = json.dumps({"hookInstance": "0123456789abcdef", "w": 21}).encode()
    two = json.dumps({"hookInstance": "fedcba9876543210", "w": 21}).encode()
    three = json.dumps({"hookInstance": "fedcba9876543210", "w": 2}).encode()
    assert ResponseCache.key(one, ["0123456789abcdef"]) == ResponseCache.key(two, ["fedcba9876543210"])
    assert ResponseCache.key(two, ["fedcba9876543210"]) != ResponseCache.key(three, ["fedcba9876543210"])
    assert ResponseCache.key(one, ["0123456789abcdef"], "day-1") != ResponseCache.key(one, ["0123456789abcdef"], "day-2")


def test_absent_optional_keys_without_a_fhir_server_are_cached(make_app: Callable[..., Flask]) -> None:
    """Keys left out with no fhirServer to ask give the same answer each time, so it is reused; with a
    fhirServer the absent keys are read from it on every call."""
    app = make_app()
    client = app.test_client()
    runtime: Runtime = app.extensions["epidose"]
    prefetch = {k: v for k, v in patient_resources().items() if k not in ("encounters", "notes", "questionnaires")}
    first = check_response(client.post(PV, json=hook_request("patient-view", prefetch)).get_json())
    second = check_response(client.post(PV, json=hook_request("patient-view", prefetch)).get_json())
    assert runtime.cache.hits == 1 and first[0]["detail"] == second[0]["detail"]
    assert "notes (not prefetched and no fhirServer given)" in first[0]["detail"]
    unreachable = {"fhirServer": "http://127.0.0.1:9/fhir"}
    for _ in range(2):
        client.post(PV, json=hook_request("patient-view", prefetch, **unreachable))
    assert runtime.cache.hits == 1
