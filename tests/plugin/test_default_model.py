"""The embedded default model: built once into the registry at first start, never rebuilt when one is promoted."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest

from plugin.cli.serve import ensure_default_model
from plugin.settings import Settings
from training.artifact.registry import ModelRegistry


@pytest.mark.slow
def test_default_model_is_built_once_and_promoted(tmp_path: Path, trained_model: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With an empty registry the builder runs (with its progress bar on) and its folder becomes current; then never again."""
    calls: list[bool] = []

    def build_default_model(out_dir: Path, *, progress: bool = True) -> Path:
        calls.append(progress)
        shutil.copytree(trained_model, out_dir)
        return Path(out_dir)

    monkeypatch.setitem(sys.modules, "training.default_model",
                        types.SimpleNamespace(build_default_model=build_default_model))
    settings = Settings.from_env({}, data_dir=tmp_path / "data")
    version = ensure_default_model(settings, isolate=False)  # in this process, where the stand-in builder is
    registry = ModelRegistry(settings.models_root)
    assert version is not None and registry.current_version() == version
    assert (registry.current_path() / "model.npz").exists()  # type: ignore[operator]
    assert ensure_default_model(settings) == version
    assert calls == [True]
    assert not (settings.data_dir / ".default-model-build").exists()


def test_no_default_build_when_disabled(tmp_path: Path) -> None:
    """EPIDOSE_BUILD_DEFAULT_MODEL=off leaves an empty registry empty."""
    settings = Settings.from_env({"EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_DATA_DIR": str(tmp_path)})
    assert ensure_default_model(settings) is None
