"""Property-based fuzzing of every endpoint: at least 10,000 generated requests per run, none answered 5xx.

Bodies come from six families, drawn together so that one run covers them all: raw bytes, arbitrary
JSON (surrogates, huge and non-finite numbers, deep nesting included), valid hook calls with a few
parts replaced or removed, hook calls whose missing prefetch is fetched from a FHIR server answering
anything (odd JSON, Bundles whose entry or link is not a list, errors, redirects elsewhere), valid and
mutated feedback for a card the service served, and requests to the read-only endpoints with junk
query strings. Each answer's status is counted; a 5xx fails the
example (Hypothesis then shrinks it to the smallest body that does it).

``EPIDOSE_FUZZ_EXAMPLES`` changes the number of examples (10,000 by default).
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.plugin.faulty_fhir import Answer, faulty_fhir_server
from tests.plugin.fixtures import container_paths, draft_bundle, hook_request, lev_order, patient_resources

EXAMPLES = int(os.environ.get("EPIDOSE_FUZZ_EXAMPLES", "10000"))
HOOKS = {"patient-view": "/cds-services/epidose-patient-view",
         "order-sign": "/cds-services/epidose-order-sign",
         "order-select": "/cds-services/epidose-order-select"}
POST_PATHS = [*HOOKS.values(), *(path + "/feedback" for path in HOOKS.values()), "/cds-services/no-such-service",
              "/cds-services"]
GET_PATHS = ["/cds-services", "/healthz", "/readyz", "/metrics", "/models/current", "/models/current/report.md",
             "/models/v0001", "/cds-services/epidose-patient-view", "/fhir/Questionnaire/bect-follow-up"]
ANSWERS: Counter[int] = Counter()

# Every code point, lone surrogates included (Hypothesis leaves them out of text() by default).
any_character = st.characters(codec=None, exclude_categories=())
texts = st.text(any_character, max_size=12) | st.sampled_from(["", "\ud800", "\udfff", "p1", "Bearer", "http://[::1"])
numbers = (st.integers() | st.integers(min_value=10**15, max_value=10**400) | st.floats()
           | st.sampled_from([1e308, -0.0, 10**309, 2**63]))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=24,
)


DEEP_MARK = "deep-nesting-goes-here"


def _encode(value: Any, ascii_only: bool, depth: int = 0) -> bytes:
    """JSON text as a client might send it: escaped (\\ud800) or raw surrogate bytes (ED A0 80).

    A ``DEEP_MARK`` string becomes ``depth`` nested arrays (deeper than json.dumps itself can write).
    """
    text = json.dumps(value, ensure_ascii=ascii_only)
    if depth:
        text = text.replace(f'"{DEEP_MARK}"', "[" * depth + "]" * depth, 1)
    return text.encode("utf-8", "surrogatepass")


def _valid_hook(hook: str) -> dict[str, Any]:
    body = hook_request(hook, patient_resources(n_extra_observations=2))
    if hook != "patient-view":
        body["context"]["draftOrders"] = draft_bundle(lev_order("d1", "p1", 500, date.today()))
    if hook == "order-select":
        body["context"]["selections"] = ["MedicationRequest/d1"]
    return body


def _mutate(data: st.DataObject, body: Any, rounds: int) -> tuple[Any, int]:
    """Replace or delete a few elements anywhere; one may become deep nesting (its depth is returned)."""
    body = copy.deepcopy(body)
    depth = 0
    for _ in range(rounds):
        containers = container_paths(body)
        if not containers:
            break
        target: Any = body
        for step in data.draw(st.sampled_from(containers)):
            target = target[step]
        keys = list(target.keys()) if isinstance(target, dict) else list(range(len(target)))
        key = data.draw(st.sampled_from(keys))
        action = data.draw(st.sampled_from(["replace", "delete", "deepen"]))
        if action == "replace":
            target[key] = data.draw(json_values)
        elif action == "deepen" and not depth:
            target[key] = DEEP_MARK
            depth = data.draw(st.integers(60, 1200))
        elif isinstance(target, dict):
            del target[key]
        else:
            target.pop(key)
    return body, depth


@pytest.fixture(scope="module")
def fhir_answers() -> Any:
    """A FHIR server whose next answer each example chooses (``slot["answer"]``), for the fallback path."""
    slot: dict[str, Any] = {"answer": Answer(body=b"{}")}
    with faulty_fhir_server(lambda path: slot["answer"]) as (base, _):
        slot["base"] = base
        yield slot


def _fhir_answer(data: st.DataObject, ascii_only: bool) -> Answer:
    """Something a FHIR server might send back: any JSON, a Bundle with odd entry/link, an error, a redirect."""
    kind = data.draw(st.sampled_from(["json", "bundle", "status", "redirect"]))
    if kind == "status":
        return Answer(status=data.draw(st.sampled_from([401, 404, 429, 500, 503])), body=b"{}")
    if kind == "redirect":
        target = data.draw(st.sampled_from(["/fhir/elsewhere", "http://127.0.0.2:9/x", "http://[::1", ""]))
        return Answer(status=302, headers={"Location": target})
    if kind == "bundle":
        page = {"resourceType": "Bundle", "entry": data.draw(json_values), "link": data.draw(json_values)}
        return Answer(body=_encode(page, ascii_only))
    return Answer(body=_encode(data.draw(json_values), ascii_only))


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    """One app for the whole run (auth off: the JWT checks are tested on their own)."""
    from plugin import create_app
    from plugin.settings import Settings
    from tests.plugin.fixtures import fake_loader, write_fake_artifact
    from training.artifact.registry import ModelRegistry

    root = tmp_path_factory.mktemp("fuzz")
    registry = ModelRegistry(root / "models")
    registry.promote(registry.add(write_fake_artifact(root / "build", "fake-fuzz", report=True)))
    app: Flask = create_app(Settings.from_env({}, auth=False, data_dir=root / "data", model_dir=registry.root,
                                              model_check_seconds=60.0, hash_key="fuzz-key"), loader=fake_loader)
    app.testing = False
    return app.test_client()


def _served_card(client: FlaskClient) -> str:
    response = client.post(HOOKS["patient-view"], json=hook_request("patient-view", patient_resources()))
    assert response.status_code == 200
    return str(response.get_json()["cards"][0]["uuid"])


@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
@pytest.mark.slow
def test_no_generated_request_is_answered_5xx(fuzz_client: FlaskClient, fhir_answers: Any,
                                              data: st.DataObject) -> None:
    family = data.draw(st.sampled_from(["bytes", "json", "hook", "hook", "fallback", "feedback", "get"]),
                       label="family")
    ascii_only = data.draw(st.booleans(), label="ascii")
    if family == "bytes":
        path = data.draw(st.sampled_from(POST_PATHS))
        body = data.draw(st.binary(max_size=200) | st.sampled_from([b"\xed\xa0\x80", b"[" * 5000, b"{" * 999]))
        response = fuzz_client.post(path, data=body, content_type="application/json")
    elif family == "json":
        path = data.draw(st.sampled_from(POST_PATHS))
        response = fuzz_client.post(path, data=_encode(data.draw(json_values), ascii_only),
                                    content_type="application/json")
    elif family == "hook":
        hook = data.draw(st.sampled_from(list(HOOKS)))
        body, depth = _mutate(data, _valid_hook(hook), data.draw(st.integers(0, 3)))
        response = fuzz_client.post(HOOKS[hook], data=_encode(body, ascii_only, depth),
                                    content_type="application/json")
    elif family == "fallback":
        body = _valid_hook("patient-view")
        for key in data.draw(st.lists(st.sampled_from(sorted(body["prefetch"])), min_size=1, max_size=3, unique=True)):
            del body["prefetch"][key]
        body["fhirServer"] = fhir_answers["base"]
        fhir_answers["answer"] = _fhir_answer(data, ascii_only)
        response = fuzz_client.post(HOOKS["patient-view"], data=_encode(body, ascii_only),
                                    content_type="application/json")
    elif family == "feedback":
        card = data.draw(st.sampled_from(["served", "unknown"]))
        item = {"card": _served_card(fuzz_client) if card == "served" else "no-such-card",
                "outcome": data.draw(st.sampled_from(["accepted", "overridden"])),
                "acceptedSuggestions": [{"id": "s1"}], "outcomeTimestamp": "2026-01-01T00:00:00Z",
                "overrideReason": {"reason": {"system": "http://example.org", "code": "x"}, "userComment": "c"}}
        body, depth = _mutate(data, {"feedback": [item]}, data.draw(st.integers(0, 3)))
        response = fuzz_client.post(HOOKS["patient-view"] + "/feedback", data=_encode(body, ascii_only, depth),
                                    content_type="application/json")
    else:
        path = data.draw(st.sampled_from(GET_PATHS))
        query = data.draw(st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3))
        response = fuzz_client.get(path, query_string=query)
    ANSWERS[response.status_code] += 1
    assert response.status_code < 500, (family, response.status_code, response.get_data(as_text=True)[:300])


def test_fuzz_ran_every_example() -> None:
    """The run above really sent its examples (a broken strategy must not pass by sending nothing)."""
    if not ANSWERS:
        pytest.skip("run together with test_no_generated_request_is_answered_5xx")
    print("fuzz answers by status:", dict(sorted(ANSWERS.items())))
    assert sum(ANSWERS.values()) >= EXAMPLES
    assert ANSWERS[200] > 0 and ANSWERS[400] > 0
