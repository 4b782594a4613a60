"""The README's main command and quick start, run as a new user would: `epidose serve`, then the curl example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import registry_with
from tests.support.fhir_server import free_port

ROOT = Path(__file__).resolve().parents[2]
EPIDOSE = Path(sys.executable).with_name("epidose")


def _serve(data_dir: Path, port: int, *, auth: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EPIDOSE_DATA_DIR": str(data_dir), "EPIDOSE_BUILD_DEFAULT_MODEL": "off",
           "EPIDOSE_AUTH": "on" if auth else "off"}
    command = [str(EPIDOSE) if EPIDOSE.exists() else "epidose", "serve", "--port", str(port), "--workers", "1"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"epidose serve exited: {output}")
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("epidose serve did not become healthy in 60 s")


@pytest.fixture(params=[False, True], ids=["auth-off", "auth-on"])
def served(request: pytest.FixtureRequest, small_model: Path, tmp_path: Path) -> Iterator[tuple[str, bool, str]]:
    """`epidose serve` on a free loopback port with a registered model; yields (base URL, auth, startup output)."""
    auth = bool(request.param)
    registry_with(small_model, tmp_path)
    port = free_port()
    process = _serve(tmp_path, port, auth=auth)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process)
        yield base, auth, ""
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@pytest.mark.slow
def test_quick_start_curl_returns_a_dose_card(served: tuple[str, bool, str]) -> None:
    """With authentication off the README's curl request gets a dose card; with it on (the default) a bare 401."""
    base, auth, _ = served
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
    assert cards[0]["summary"].startswith("Levetiracetam ") and "mg/day" in cards[0]["summary"]
    assert "cannot recommend" not in cards[0]["summary"]  # the example's data is complete and current
    for suggestion in cards[0].get("suggestions", []):  # none when the model keeps the current dose
        assert suggestion["actions"][0]["resource"]["resourceType"] == "MedicationRequest"
    discovery = requests.get(f"{base}/cds-services", timeout=5).json()
    assert {s["id"] for s in discovery["services"]} >= {"epidose-patient-view", "epidose-order-sign"}
    assert json.loads(body)["hook"] == "patient-view"
