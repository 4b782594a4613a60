"""The README's main command and quick start, run as a new user would: `epidose serve`, then the curl example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import registry_with
from tests.support.fhir_server import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
EPIDOSE = Path(sys.executable).with_name("epidose")


@contextmanager
def serving(data_dir: Path, *, auth: bool, port: int | None = None,
            env: Mapping[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """`epidose serve` (one worker) on a loopback port, healthy; yields its base URL, then stops it.

    ``env`` adds EPIDOSE_* variables; ``port`` is free_port() when not given; ``log`` receives the output.
    """
    port = port or free_port()
    env = {**os.environ, "EPIDOSE_DATA_DIR": str(data_dir), "EPIDOSE_BUILD_DEFAULT_MODEL": "off",
           "EPIDOSE_AUTH": "on" if auth else "off", **(env or {})}
    command = [str(EPIDOSE) if EPIDOSE.exists() else "epidose", "serve", "--port", str(port), "--workers", "1"]
    sink = log.open("wb") if log is not None else subprocess.PIPE
    process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(base):
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else log.read_text() if log else ""
                raise AssertionError(f"epidose serve exited: {output}")
            if time.monotonic() > deadline:
                raise AssertionError("epidose serve did not become healthy in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        stop_process(process)
        if process.stdout:
            process.stdout.close()
        if log is not None and sink is not subprocess.PIPE:
            sink.close()  # type: ignore[union-attr]


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(params=[False, True], ids=["auth-off", "auth-on"])
def served(request: pytest.FixtureRequest, small_model: Path, tmp_path: Path) -> Iterator[tuple[str, bool]]:
    """`epidose serve` with a registered model, authentication off or on; yields (base URL, auth)."""
    auth = bool(request.param)
    registry_with(small_model, tmp_path)
    with serving(tmp_path, auth=auth) as base:
        yield base, auth


@pytest.mark.slow
def test_quick_start_curl_returns_a_dose_card(served: tuple[str, bool]) -> None:
    """With authentication off the README's curl request gets a dose card; with it on (the default) a bare 401."""
    base, auth = served
    body = (ROOT / "docs" / "examples" / "patient-view.json").read_bytes()
    response = requests.post(f"{base}/cds-services/epidose-patient-view", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    if auth:
        assert response.status_code == 401
        assert "cards" not in response.text
        return
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert len(cards) == 1
    # The summary opens with the action against the dose taken ("Raise levetiracetam to …").
    assert "levetiracetam" in cards[0]["summary"].lower() and "mg/day" in cards[0]["summary"]
    assert "cannot recommend" not in cards[0]["summary"]  # the example's data is complete and current
    assert cards[0]["extension"]["org.epidose.decision"]["action"] != "no-recommendation"
    for suggestion in cards[0].get("suggestions", []):  # none when the dose taken is kept
        assert suggestion["actions"][0]["resource"]["resourceType"] == "MedicationRequest"
    discovery = requests.get(f"{base}/cds-services", timeout=5).json()
    assert {s["id"] for s in discovery["services"]} >= {"epidose-patient-view", "epidose-order-sign"}
    assert json.loads(body)["hook"] == "patient-view"
