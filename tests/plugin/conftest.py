"""Fixtures for the service tests: settings in a temporary folder, a registry with a fake model, apps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from plugin import create_app
from plugin.settings import Settings
from tests.plugin.fixtures import ISSUER, Signer, fake_loader, write_fake_artifact
from training.artifact.registry import ModelRegistry


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """A model registry with one promoted fake model (v-one, with a report)."""
    reg = ModelRegistry(tmp_path / "models")
    version = reg.add(write_fake_artifact(tmp_path / "build-one", "fake-one", report=True))
    reg.promote(version)
    return reg


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(tmp_path)


@pytest.fixture
def make_app(tmp_path: Path, registry: ModelRegistry, signer: Signer) -> Callable[..., Flask]:
    """Build an app with test settings (auth off unless ``auth=True``)."""

    def build(auth: bool = False, **overrides: Any) -> Flask:
        values: dict[str, Any] = {"auth": auth, "data_dir": tmp_path / "data", "model_dir": registry.root,
                                  "jwks": {ISSUER: str(signer.jwks_path)}, "model_check_seconds": 0.0,
                                  "hash_key": "test-hash-key"}
        values.update(overrides)
        settings = Settings.from_env({}, **values)
        app = create_app(settings, loader=fake_loader)
        app.testing = False  # errors must go through the handlers, as in production
        return app

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (small) DQN model folder trained on a small simulated cohort with ``epidose train`` (seconds)."""
    from click.testing import CliRunner

    from plugin.cli import main

    folder = tmp_path_factory.mktemp("trained-model")
    cohort = folder / "cohort"
    runner = CliRunner()
    result = runner.invoke(main, ["cohort", "--patients", "40", "--seed", "2", "--out", str(cohort)])
    assert result.exit_code == 0, result.output
    model = folder / "model"
    result = runner.invoke(main, ["train", "--data", str(cohort), "--out", str(model), "--steps", "200", "--no-progress"])
    assert result.exit_code == 0, result.output
    return model
