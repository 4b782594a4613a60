"""Faults during a retraining run: the run fails or retries cleanly and the champion keeps serving.

A real server with a champion already trained on the first half of a cohort and the second half
loaded since; each test copies that state, injects one fault through a local proxy, then shows the
next run succeeds. A candidate trained on shuffled rewards is refused by the gate.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plugin import create_app
from plugin.settings import Settings
from tests.support.fhir_server import running_fhir_server, sekmet_available
from tests.training.retrain.data import load, split_by_date, synthetic_cohort, synthetic_true_value
from tests.training.retrain.fault_proxy import Fault, fault_proxy
from training.artifact.registry import ModelRegistry
from training.retrain.job import retrain_once, train_candidate
from training.retrain.resources import ResourceStore
from training.retrain.settings import RetrainSettings

pytestmark = [pytest.mark.fhir_server, pytest.mark.slow]


@dataclass
class Stage:
    server: str
    template: Path
    second_half: int
    champion: str


def _settings(root: Path, server: str, **changes: Any) -> RetrainSettings:
    values: dict[str, Any] = dict(
        data_dir=root / "retrain", registry_dir=root / "models", fhir_server_url=server, initial_config="paper", initial_steps=150,
        behaviour_steps=100, bootstrap_samples=100, holdout_fraction=0.3, page_size=50, retries=0, backoff_base=0.05, backoff_max=2.0, request_timeout=5.0,
    )
    values.update(changes)
    return RetrainSettings(**values)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """Server with both halves loaded; a template folder holding the champion trained on the first half."""
    if not sekmet_available():
        pytest.skip("the FHIR test server is not installed: run scripts/install.sh dev")
    root = tmp_path_factory.mktemp("faults")
    with running_fhir_server(root / "fhir") as server:
        first, second = split_by_date(synthetic_cohort(28, seed=5), "2020-01-01")
        load(server, first)
        record = retrain_once(_settings(root / "template", server), true_value=synthetic_true_value)
        assert record.decision == "promoted", record.reason
        load(server, second)
        yield Stage(server, root / "template", len(second), str(record.model_version))


@pytest.fixture
def workdir(stage: Stage, tmp_path: Path) -> Path:
    """A private copy of the champion state (store, watermark, registry, run records)."""
    shutil.copytree(stage.template, tmp_path / "state")
    return tmp_path / "state"


def _served_version(registry_root: Path, tmp_path: Path) -> str | None:
    settings = Settings.from_env({}, auth=False, data_dir=tmp_path / "service", model_dir=registry_root,
                                 model_check_seconds=0.0, build_default_model=False, hash_key="k")
    ready = create_app(settings).test_client().get("/readyz").get_json()
    return ready["model"]


def _snapshot(settings: RetrainSettings) -> tuple[Any, ...]:
    registry = ModelRegistry(settings.registry_dir)
    store = ResourceStore(settings.store_dir)
    assert store.count() > 0, "the runs' store is not in the default format, NDJSON"
    hidden = sorted(p.name for p in registry.root.iterdir() if p.name.startswith("."))
    return (store.watermark(), store.count(), registry.current_version(),
            [v.version for v in registry.versions()], hidden)


# The second run asks for new Encounters (GET, paged), then for known patients' new resources in batch
# Bundles (POST to the base URL): faults hit both kinds of request.
FAULTS = {
    "server error": ([Fault("status", match="POST /fhir", status=500)], {}),
    "malformed page": ([Fault("malformed", match="GET /fhir/Encounter")], {}),
    "timeout": ([Fault("hang", match="POST /fhir", seconds=1.5)], {"request_timeout": 0.4}),
    "connection dropped": ([Fault("drop", match="_offset=")], {}),
    "rate limited beyond retries": (
        [Fault("status", match="GET /fhir/Encounter", status=429, retry_after="0") for _ in range(2)], {"retries": 1}
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_failed_pull_changes_nothing_and_next_run_succeeds(stage: Stage, workdir: Path, tmp_path: Path, fault: str) -> None:
    """A fault mid-pull fails the run; watermark, store, registry and served model stay; the next run works."""
    faults, changes = FAULTS[fault]
    with fault_proxy(stage.server) as (base, state):
        settings = _settings(workdir, base, **changes)
        before = _snapshot(settings)
        state.faults.extend(faults)
        record = retrain_once(settings, true_value=synthetic_true_value)
        assert record.decision == "failed" and "Fhir" in record.reason
        assert record.model_version == stage.champion
        assert _snapshot(settings) == before
        assert _served_version(settings.registry_dir, tmp_path) is not None
        state.faults.clear()
        retry = retrain_once(settings, true_value=synthetic_true_value)
    assert retry.decision in {"promoted", "refused"}, retry.reason
    assert retry.pulled_resources == stage.second_half
    assert ResourceStore(settings.store_dir).watermark() > before[0]


def test_rate_limit_is_retried_within_the_run(stage: Stage, workdir: Path) -> None:
    """A 429 with Retry-After is waited out and the same run completes."""
    with fault_proxy(stage.server) as (base, state):
        settings = _settings(workdir, base, retries=2)
        state.faults.append(Fault("status", match="/Encounter", status=429, retry_after="1"))
        record = retrain_once(settings, true_value=synthetic_true_value)
        assert any(status == 429 for _, _, status in state.log)
    assert record.decision in {"promoted", "refused"}, record.reason
    assert record.pulled_resources == stage.second_half


def test_training_failure_leaves_no_partial_artifact(stage: Stage, workdir: Path) -> None:
    """A candidate whose training dies half-way is never registered; the champion stays current."""

    def broken_trainer(config: dict[str, Any], table: Any, out_dir: Path, **kwargs: Any) -> Path:
        out_dir.mkdir(parents=True)
        (out_dir / "metadata.json").write_text("{", encoding="utf-8")
        raise MemoryError("out of memory while training")

    settings = _settings(workdir, stage.server)
    before = _snapshot(settings)
    record = retrain_once(settings, trainer=broken_trainer)
    assert record.decision == "failed" and "MemoryError" in record.reason
    after = _snapshot(settings)
    assert after[2:] == before[2:]  # same current version, same versions, no hidden leftovers
    assert after[0] > before[0]  # the pull itself succeeded and is kept for the next run
    assert not list((settings.data_dir / "work").iterdir())


def test_candidate_trained_on_shuffled_rewards_is_refused(stage: Stage, workdir: Path) -> None:
    """A candidate made worse on purpose (rewards shuffled across visits) fails the gate."""
    settings = _settings(workdir, stage.server)
    worse = functools.partial(train_candidate, shuffle_rewards_seed=1)
    record = retrain_once(settings, trainer=worse, true_value=synthetic_true_value)
    assert record.decision == "refused", record.reason
    assert "true value" in record.reason
    assert record.gate["true_value"]["candidate"] < record.gate["true_value"]["champion"]
    registry = ModelRegistry(settings.registry_dir)
    assert registry.current_version() == stage.champion
    refused = next(v for v in registry.versions() if v.version == record.candidate_version)
    assert refused.metadata["promoted"] is False and not refused.current
