"""The FHIR fallback path against answers a real server never gives: malformed, huge, redirected, dripping."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from flask import Flask

from plugin.gather import MAX_FETCH_THREADS, FhirFetcher
from tests.plugin.faulty_fhir import Answer, faulty_fhir_server
from tests.plugin.fixtures import bundle, hook_request, observation, patient_resources

TEMPLATE = {"weight": "Observation?patient={{context.patientId}}&code=weight"}
CONTEXT = {"patientId": "p1"}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _gather_one(answer: Callable[[str], Answer], **fetcher_options: Any) -> tuple[Any, dict[str, str], list[str]]:
    with faulty_fhir_server(answer) as (base, seen):
        fetcher = FhirFetcher(**{"timeout_seconds": 1.0, "budget_seconds": 2.0, **fetcher_options})
        gathered = fetcher.gather(TEMPLATE, None, CONTEXT, base, {"access_token": "t0ken", "token_type": "Bearer"})
    return gathered.values.get("weight"), gathered.unobtainable, seen.paths


def test_entry_not_a_list_is_unobtainable() -> None:
    value, unobtainable, _ = _gather_one(lambda path: Answer(body=_json({"resourceType": "Bundle", "entry": {"a": 1}})))
    assert value is None and "entry is not a list" in unobtainable["weight"]


def test_link_not_a_list_is_unobtainable() -> None:
    value, unobtainable, _ = _gather_one(
        lambda path: Answer(body=_json({"resourceType": "Bundle", "entry": [], "link": "next"})))
    assert value is None and "link is not a list" in unobtainable["weight"]


def test_bad_next_links_are_unobtainable() -> None:
    for url in ("http://[::1", 7, None):
        page = {"resourceType": "Bundle", "entry": [], "link": [{"relation": "next", "url": url}]}
        value, unobtainable, _ = _gather_one(lambda path, page=page: Answer(body=_json(page)))
        assert value is None and "next link" in unobtainable["weight"], url


def test_answer_json_beyond_the_bounds_is_unobtainable() -> None:
    for body in (b"[" * 500 + b"]" * 500, b'{"resourceType": "Bundle", "total": 1e309}', b'{"id": "\\ud800"}'):
        value, unobtainable, _ = _gather_one(lambda path, body=body: Answer(body=body))
        assert value is None and "does not accept" in unobtainable["weight"], body[:20]


def test_answer_larger_than_the_cap_is_unobtainable() -> None:
    big = _json({"resourceType": "Bundle", "entry": [{"resource": {"id": "x" * 1000}}] * 3000})  # ~3 MB
    for declare in (True, False):
        value, unobtainable, _ = _gather_one(lambda path, declare=declare: Answer(body=big, declare_length=declare),
                                             max_response_bytes=1_000_000)
        assert value is None and "larger than" in unobtainable["weight"]
    value, unobtainable, _ = _gather_one(lambda path: Answer(body=big), max_response_bytes=4_000_000)
    assert unobtainable == {} and len(value["entry"]) == 3000


def test_cap_counts_decompressed_bytes() -> None:
    """A small gzip answer that inflates past the cap is refused (a compression bomb cannot slip under it)."""
    inflated = _json({"resourceType": "Bundle", "entry": [{"resource": {"id": "0" * 1000}}] * 3000})
    packed = gzip.compress(inflated)
    assert len(packed) < 100_000
    value, unobtainable, _ = _gather_one(
        lambda path: Answer(body=packed, headers={"Content-Encoding": "gzip"}), max_response_bytes=1_000_000)
    assert value is None and "larger than" in unobtainable["weight"]


def test_redirects_are_followed_only_within_the_origin() -> None:
    answer_page = _json(bundle([{"resourceType": "Observation", "id": "w"}]))

    def same_origin(path: str) -> Answer:
        if "moved" in path:
            return Answer(body=answer_page)
        return Answer(status=302, headers={"Location": "/fhir/moved"})

    value, unobtainable, paths = _gather_one(same_origin)
    assert unobtainable == {} and value["entry"][0]["resource"]["id"] == "w"
    assert paths[-1] == "/fhir/moved"

    def elsewhere(path: str) -> Answer:
        return Answer(status=307, headers={"Location": "http://127.0.0.2:9/fhir/Observation"})

    value, unobtainable, paths = _gather_one(elsewhere)
    assert value is None and "another origin" in unobtainable["weight"] and len(paths) == 1


def test_dripping_server_is_cut_at_the_budget_without_piling_up_threads() -> None:
    """20 calls to a server sending one byte every 50 ms: each ends at its budget, threads stay bounded."""
    body = _json(bundle([observation(f"o{i}", "p1", "29463-7", "http://loinc.org", date.today(), {}) for i in range(20)]))
    templates = {f"k{i}": f"Observation?patient={{{{context.patientId}}}}&k={i}" for i in range(4)}
    threads_before = threading.active_count()
    with faulty_fhir_server(lambda path: Answer(body=body, trickle_seconds=0.05)) as (base, seen):
        fetcher = FhirFetcher(timeout_seconds=0.15, budget_seconds=0.3)
        durations = []
        for _ in range(20):
            started = time.monotonic()
            gathered = fetcher.gather(templates, None, CONTEXT, base, None)
            durations.append(time.monotonic() - started)
            assert set(gathered.unobtainable) == set(templates)
        assert max(durations) < 0.3 + 0.2
        threads_after = threading.active_count()
        give_up = time.monotonic() + 2.0
        while seen.open_streams and time.monotonic() < give_up:
            time.sleep(0.05)
        assert seen.open_streams == 0, "a fetch kept reading after its call ended"
    assert threads_after - threads_before <= MAX_FETCH_THREADS + 4  # the fetcher's pool (+ the test server's)


def test_malformed_fallback_answer_is_412_or_a_card_never_500(make_app: Callable[..., Flask]) -> None:
    """Through the service: a Bundle with a non-list entry for every absent key is no 500."""
    prefetch = patient_resources()
    for key in ("weight", "labs", "medications"):
        del prefetch[key]
    with faulty_fhir_server(lambda path: Answer(body=_json({"resourceType": "Bundle", "entry": "x",
                                                            "link": {"relation": "next"}}))) as (base, _):
        client = make_app(fhir_timeout_seconds=1.0, fhir_budget_seconds=2.0).test_client()
        response = client.post("/cds-services/epidose-patient-view",
                               json=hook_request("patient-view", prefetch, fhirServer=base))
    assert response.status_code in (200, 412), response.get_data(as_text=True)
    if response.status_code == 412:
        assert "not a list" in response.get_json()["issue"][0]["diagnostics"]
    else:
        assert "not a list" in json.dumps(response.get_json())
