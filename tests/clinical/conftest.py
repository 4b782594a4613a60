"""The real service for the clinical charts: the embedded default model, built once per test session.

The model is the one a fresh installation serves (``training.default_model``: conservative DQN trained on
the simulated cohort), registered and promoted through ``training.artifact.registry`` as ``epidose serve`` does
at first start. Building it takes about a minute and a half of CPU (4,000 children). ``EPIDOSE_CLINICAL_MODEL`` may name
an already built model folder to reuse while writing charts; CI always builds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from plugin import create_app
from plugin.settings import Settings
from training.artifact.registry import ModelRegistry


@pytest.fixture(scope="session")
def default_model_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry whose current version is the embedded default model (built for this session)."""
    root = tmp_path_factory.mktemp("clinical-model")
    reuse = os.environ.get("EPIDOSE_CLINICAL_MODEL")
    if reuse and not os.environ.get("CI"):
        folder = Path(reuse)
    else:
        from training.default_model import build_default_model

        folder = build_default_model(root / "build", progress=False)
    registry = ModelRegistry(root / "models")
    registry.promote(registry.add(Path(folder), {"source": "embedded default model (synthetic cohort)"}))
    return registry


@pytest.fixture(scope="session")
def clinical_client(tmp_path_factory: pytest.TempPathFactory, default_model_registry: ModelRegistry) -> Iterator[FlaskClient]:
    """The Flask app as served (authentication off, real model loader), for the whole session."""
    data = tmp_path_factory.mktemp("clinical-data")
    settings = Settings.from_env({}, auth=False, data_dir=data, model_dir=default_model_registry.root,
                                 model_check_seconds=0.0, hash_key="clinical-test-hash-key",
                                 build_default_model=False)
    app = create_app(settings)
    app.testing = False  # errors go through the service's handlers, as in production
    with app.test_client() as client:
        yield client
