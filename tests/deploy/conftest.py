"""Fixtures for deployment tests: a small simulated cohort and a model trained on it."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from training.simulator.cohort import write_cohort
from training.simulator.config import DEFAULT_CONFIG, ending_on


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-patient simulated cohort folder (NDJSON, bundles, truth) whose follow-up ended last week."""
    folder = tmp_path_factory.mktemp("cohort") / "cohort"
    write_cohort(folder, 60, seed=11, config=ending_on(DEFAULT_CONFIG, date.today() - timedelta(days=7)))
    return folder


@pytest.fixture(scope="session")
def small_model(small_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conservative DQN trained for a few hundred steps on the small cohort (a real model folder)."""
    from training.pipeline import train_model
    from training.policies import named_config

    folder, _, _ = train_model(small_cohort, tmp_path_factory.mktemp("model") / "model",
                               named_config("conservative", steps=200))
    return Path(folder)


def registry_with(model: Path, data_dir: Path) -> str:
    """Put ``model`` into the registry under ``data_dir`` and promote it; return its version."""
    from training.artifact.registry import ModelRegistry

    registry = ModelRegistry(data_dir / "models")
    version = registry.add(model)
    registry.promote(version)
    return version


def recent_patients(cohort: Path, within_days: int = 60) -> list[str]:
    """Patient ids whose latest Encounter lies within ``within_days`` of today (current data)."""
    latest: dict[str, str] = {}
    for line in (cohort / "ndjson" / "Encounter.ndjson").read_text(encoding="utf-8").splitlines():
        encounter = json.loads(line)
        patient = encounter["subject"]["reference"].split("/")[-1]
        latest[patient] = max(latest.get(patient, ""), encounter["period"]["start"])
    cutoff = (date.today() - timedelta(days=within_days)).isoformat()
    return sorted(p for p, day in latest.items() if day >= cutoff)
