"""HealthChain's SandboxClient (0.16.x, its own virtual environment) calls patient-view on `epidose serve`.

HealthChain sends no JWT, so the service runs with authentication off on loopback (the only place the
service allows it). Where HealthChain departs from CDS Hooks 2.0 the test pins the departure, as
docs/ehr-integration.md describes it, instead of the service bending to it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import registry_with
from tests.deploy.test_quickstart import serving
from tests.plugin.fixtures import patient_resources

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHAIN_PYTHON = ROOT / ".venv-healthchain" / "bin" / "python"
pytestmark = pytest.mark.skipif(not os.environ.get("CI") and not HEALTHCHAIN_PYTHON.exists(),
                                reason="HealthChain is not installed in .venv-healthchain: run scripts/install.sh dev")
DRIVER = Path(__file__).with_name("healthchain_client.py")
PATIENT = "healthchain-child-1"


@pytest.fixture(scope="module")
def healthchain_run(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The two requests' results: [as HealthChain builds it, with context.patientId set to the prefetch's child]."""
    if not HEALTHCHAIN_PYTHON.exists():
        message = "HealthChain is not installed in .venv-healthchain: run scripts/install.sh dev"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("healthchain")
    registry_with(small_model, work / "data")
    prefetch = work / "prefetch.json"
    prefetch.write_text(json.dumps(patient_resources(PATIENT, weight_kg=28.0, age_years=9.0)), encoding="utf-8")
    with serving(work / "data", auth=False) as base:
        driven = subprocess.run([str(HEALTHCHAIN_PYTHON), str(DRIVER), f"{base}/cds-services/epidose-patient-view",
                                 str(prefetch), PATIENT], capture_output=True, text=True, timeout=120, check=False)
    assert driven.returncode == 0, driven.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(driven.stdout)["results"]
    for result in results:
        result["service"] = base
    yield results


@pytest.mark.slow
def test_healthchain_gets_a_dose_card_for_its_patient(healthchain_run: list[dict[str, Any]]) -> None:
    """With context.patientId naming the prefetch's child, HealthChain receives a dose card with a suggestion."""
    result = healthchain_run[1]
    assert result["patientId"] == PATIENT
    cards = result["response"]["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] in ("info", "warning")
    assert cards[0]["source"]["label"].startswith("epidose")
    assert cards[0]["links"][0]["url"] == result["service"] + "/models/current"  # the port the client called
    assert all(s["actions"][0]["resource"]["resourceType"] == "MedicationRequest" for s in cards[0].get("suggestions", []))


@pytest.mark.slow
def test_our_cards_fit_healthchains_model_except_where_it_departs_from_the_spec(
        healthchain_run: list[dict[str, Any]]) -> None:
    """HealthChain's CDSResponse requires links[].autoLaunchable (optional in CDS Hooks 2.0); nothing else fails."""
    errors = healthchain_run[1]["model_errors"]
    assert errors, "HealthChain now accepts our links: update docs/ehr-integration.md"
    assert {(e["loc"][-1], e["type"]) for e in errors} == {("autoLaunchable", "missing")}


@pytest.mark.slow
def test_healthchains_random_patient_id_gets_no_dose_suggestion(healthchain_run: list[dict[str, Any]]) -> None:
    """HealthChain invents context.patientId beside prefetch for another child: a 200 (SandboxClient returns {}
    on errors) and no card suggests a dose, since the data are not this patient's."""
    result = healthchain_run[0]
    assert result["patientId"] != PATIENT
    assert "cards" in result["response"]
    assert all(not card.get("suggestions") for card in result["response"]["cards"])
