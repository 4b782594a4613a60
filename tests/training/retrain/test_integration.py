"""End to end on a real FHIR server: first half of a simulated cohort → first model; second half → retrain.

Shows that only new resources are pulled (by count), that the candidate is promoted or refused with
its reason recorded, and that the running service answers with the newly promoted version without a
restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from plugin import create_app
from plugin.cli import main as cli
from plugin.settings import Settings
from tests.plugin.fixtures import hook_request
from tests.plugin.fixtures import patient_resources as prefetch_for
from tests.training.retrain.data import load, split_cohort_bundles
from training.artifact.registry import ModelRegistry
from training.retrain.job import retrain_once
from training.retrain.records import read_records
from training.retrain.resources import ResourceStore
from training.retrain.settings import RetrainSettings
from training.simulator.cohort import write_cohort

pytestmark = [pytest.mark.fhir_server, pytest.mark.slow]


def _service(registry_root: Path, tmp_path: Path) -> Any:
    settings = Settings.from_env(
        {}, auth=False, data_dir=tmp_path / "service", model_dir=registry_root, model_check_seconds=0.0,
        build_default_model=False, hash_key="test-key",
    )
    return create_app(settings).test_client()


def _served_version(client: Any) -> str:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    return str(ready.get_json()["model"])


def test_retrain_once_after_new_visits(fresh_fhir_server: str, tmp_path: Path) -> None:
    """Second-half visits are pulled alone, a candidate is judged, and the service follows promotions live."""
    write_cohort(tmp_path / "cohort", 40, seed=1)
    first, second, _ = split_cohort_bundles(tmp_path / "cohort")
    load(fresh_fhir_server, first)
    # The server is the data source; the cohort folder only lends its truth (physician probabilities,
    # true values by replaying the held-out children) to the comparison.
    settings = RetrainSettings(
        data_dir=tmp_path / "retrain", registry_dir=tmp_path / "models", fhir_server_url=fresh_fhir_server,
        simulator_dir=tmp_path / "cohort",
        initial_steps=300, behaviour_steps=100, bootstrap_samples=200, holdout_fraction=0.3, page_size=50, retries=1, backoff_base=0.05,
    )

    run1 = retrain_once(settings)
    assert run1.decision == "promoted", run1.reason
    assert run1.pulled_resources == run1.fetched_resources == len(first)
    registry = ModelRegistry(settings.registry_dir)
    assert registry.current_version() == run1.model_version == run1.candidate_version

    client = _service(registry.root, tmp_path)
    first_served = _served_version(client)
    assert first_served == registry.versions()[-1].metadata["metrics"]["version"]
    card = client.post("/cds-services/epidose-patient-view", json=hook_request("patient-view", prefetch_for()))
    assert card.status_code == 200 and f"Model version {first_served}" in json.dumps(card.get_json())

    load(fresh_fhir_server, second)
    watermark = ResourceStore(settings.store_dir).watermark()
    run2 = retrain_once(settings)
    # Only what is new: exactly the second half's resources, nothing of the first half again.
    assert run2.fetched_resources == run2.pulled_resources == len(second)
    assert run2.pull["watermark_before"] == watermark and run2.pull["watermark_after"] > watermark
    assert run2.decision in {"promoted", "refused"}
    assert run2.reason and run2.candidate_version and run2.champion_version == run1.model_version
    assert set(run2.metrics) == {"candidate", "champion"}
    assert {"agreement", "safety", "true_value"} <= set(run2.gate)
    assert run2.metrics["candidate"]["true_value"] is not None and run2.data["simulated"] is True

    if run2.decision == "refused":
        # An operator can still promote the refused candidate; the service follows either way.
        promoted = CliRunner().invoke(cli, ["models", "promote", str(run2.candidate_version)],
                                      env={"EPIDOSE_MODEL_DIR": str(registry.root)})
        assert promoted.exit_code == 0, promoted.output
    assert registry.current_version() == run2.candidate_version
    assert _served_version(client) == run2.metrics["candidate"]["version"] != first_served
    card = client.post("/cds-services/epidose-patient-view", json=hook_request("patient-view", prefetch_for()))
    assert f"Model version {run2.metrics['candidate']['version']}" in json.dumps(card.get_json())

    history = CliRunner().invoke(cli, ["retrain", "--history"], env={"EPIDOSE_RETRAIN_DIR": str(settings.data_dir)})
    assert history.exit_code == 0, history.output
    lines = [json.loads(line) for line in history.output.splitlines()]
    assert [line["decision"] for line in lines] == ["promoted", run2.decision]
    for line in lines:
        assert {"started", "finished", "pulled_resources", "decision", "reason", "model_version", "metrics"} <= set(line)
    assert lines == read_records(settings.runs_file)
