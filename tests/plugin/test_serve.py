"""``epidose serve`` under gunicorn over real HTTP: JWT on, a real model, and the loud warning when auth is off."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.plugin.cardspec import check_response
from tests.plugin.fixtures import ISSUER, Signer, hook_request, patient_resources
from tests.support.fhir_server import free_port
from tests.support.service import wait_until_healthy
from training.artifact.registry import ModelRegistry

pytestmark = pytest.mark.slow


@contextmanager
def serving(env: dict[str, str], output: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``epidose serve`` (1 worker) on a free port; its stderr lands in ``output["stderr"]`` after."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    full_env.update(env)
    process = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--port", str(port), "--workers", "1"],
                               env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, base)
        yield base
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
        if output is not None:
            output["stderr"] = err.decode()


def test_serve_with_jwt_and_a_real_model(tmp_path: Path, trained_model: Path) -> None:
    """Under gunicorn, a signed client gets discovery and a valid card from the real model; no token gets 401.

    The gevent worker patches the standard library before anything it uses has taken ssl's classes: no
    MonkeyPatchWarning (the master imports nothing that does, before it forks).
    """
    registry = ModelRegistry(tmp_path / "data" / "models")
    registry.promote(registry.add(trained_model))
    signer = Signer(tmp_path)
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off",
           "EPIDOSE_JWKS": f'{{"{ISSUER}": "{signer.jwks_path}"}}', "EPIDOSE_WORKER_CLASS": "gevent"}
    output: dict[str, str] = {}
    with serving(env, output) as base:
        assert requests.get(base + "/cds-services", timeout=5).status_code == 401
        discovery = requests.get(base + "/cds-services", timeout=5,
                                 headers={"Authorization": "Bearer " + signer.token(base + "/cds-services")})
        assert discovery.status_code == 200 and len(discovery.json()["services"]) == 3
        url = base + "/cds-services/epidose-patient-view"
        response = requests.post(url, json=hook_request("patient-view", patient_resources()), timeout=5,
                                 headers={"Authorization": "Bearer " + signer.token(url)})
        assert response.status_code == 200, response.text
        cards = check_response(response.json())
        # The summary opens with the action against the dose taken ("Raise levetiracetam to …").
        assert "levetiracetam" in cards[0]["summary"].lower()
        assert cards[0]["extension"]["org.epidose.decision"]["action"] in ("start", "raise", "keep", "lower", "taper", "none")
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
        page = requests.get(base + "/models/current", timeout=5)
        assert page.status_code == 200 and "Known limits" in page.text
    assert "Using worker: gevent" in output["stderr"]
    assert "MonkeyPatchWarning" not in output["stderr"], output["stderr"]


def test_serve_with_auth_off_warns_loudly(tmp_path: Path) -> None:
    """EPIDOSE_AUTH=off prints a warning at start; without a model the service is up but not ready."""
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off"}
    output: dict[str, str] = {}
    with serving(env, output) as base:
        assert requests.get(base + "/readyz", timeout=5).status_code == 503
        assert requests.get(base + "/cds-services", timeout=5).status_code == 200
    text = output["stderr"]
    assert text.count("JWT AUTHENTICATION IS DISABLED") == 1, text  # said once by the master, not by every worker
