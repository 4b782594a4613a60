"""Models are checked before the pointer moves, and a worker never starts without the last good model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from plugin import create_app
from plugin.cli import main
from plugin.settings import Settings
from training.artifact.check import ModelCheckError, check_model_folder, q_bound
from training.artifact.registry import ModelRegistry


def _env(tmp_path: Path) -> dict[str, str]:
    return {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_MODEL_DIR": str(tmp_path / "models")}


def _copy(model: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(model, target)
    return target


def _corrupt_weights(folder: Path) -> Path:
    (folder / "model.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    return folder


def _scaled_output(folder: Path, factor: float) -> Path:
    """The same network with its output layer multiplied (NaN or huge Q-values, still loadable)."""
    with np.load(folder / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    last = max(int(name[len("layer"):-len(".weight")]) for name in arrays if name.endswith(".weight"))
    arrays[f"layer{last}.weight"] = arrays[f"layer{last}.weight"] * factor
    arrays[f"layer{last}.bias"] = arrays[f"layer{last}.bias"] * factor
    np.savez(folder / "model.npz", **arrays)  # type: ignore[arg-type]
    return folder


def test_reward_bound_is_a_thousand_at_gamma_point_nine() -> None:
    assert q_bound(0.9) == pytest.approx(1000.0)
    with pytest.raises(ModelCheckError):
        q_bound(1.0)


def test_a_trained_model_passes_the_check(trained_model: Path) -> None:
    check = check_model_folder(trained_model)
    assert check.probes > 50 and 0 < check.largest_abs_score <= 1000


def test_models_add_stores_and_promotes_a_trained_folder(tmp_path: Path, trained_model: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["models", "add", str(trained_model)], env=_env(tmp_path))
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "added v0001"
    promoted = runner.invoke(main, ["models", "add", str(trained_model), "--promote"], env=_env(tmp_path))
    assert promoted.output.strip() == "added v0002 and promoted it"
    assert ModelRegistry(tmp_path / "models").current_version() == "v0002"


@pytest.mark.parametrize(("damage", "reason"), [
    ("weights", "cannot load"), ("schema", "schema"), ("nan", "not finite"), ("huge", "beyond the reward"),
])
def test_models_add_refuses_a_folder_the_service_cannot_serve(tmp_path: Path, trained_model: Path, damage: str,
                                                              reason: str) -> None:
    folder = _copy(trained_model, tmp_path, "candidate")
    if damage == "weights":
        _corrupt_weights(folder)
    elif damage == "schema":
        metadata = json.loads((folder / "metadata.json").read_text())
        metadata["schema_hash"] = "0" * 64
        (folder / "metadata.json").write_text(json.dumps(metadata))
    elif damage == "nan":
        _scaled_output(folder, float("nan"))
    else:
        _scaled_output(folder, 1e6)
    result = CliRunner().invoke(main, ["models", "add", str(folder), "--promote"], env=_env(tmp_path))
    assert result.exit_code != 0
    assert reason in result.output
    registry = ModelRegistry(tmp_path / "models")
    assert registry.versions() == [] and registry.current_version() is None


def test_promote_and_rollback_refuse_a_stored_broken_version(tmp_path: Path, trained_model: Path) -> None:
    """A version stored before the checks existed (or damaged on disk) never becomes current."""
    unchecked = ModelRegistry(tmp_path / "models")
    good = unchecked.add(trained_model)
    unchecked.promote(good)
    bad = unchecked.add(_corrupt_weights(_copy(trained_model, tmp_path, "broken")))
    result = CliRunner().invoke(main, ["models", "promote", bad], env=_env(tmp_path))
    assert result.exit_code != 0 and f"model {bad} refused" in result.output
    assert unchecked.current_version() == good


def test_worker_started_on_a_broken_current_model_serves_the_last_good_one(tmp_path: Path,
                                                                           trained_model: Path) -> None:
    """The pointer names a corrupt model (moved without the checks): a new worker serves the previous one."""
    registry = ModelRegistry(tmp_path / "models")
    good = registry.add(trained_model)
    registry.promote(good)
    bad = registry.add(_corrupt_weights(_copy(trained_model, tmp_path, "broken")))
    registry.promote(bad)
    settings = Settings.from_env({}, auth=False, data_dir=tmp_path / "data", model_dir=registry.root,
                                 hash_key="k", build_default_model=False)
    client = create_app(settings).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["model"] == json.loads((trained_model / "metadata.json").read_text())["version"]
    assert f"model {bad} refused" in body["model_problem"] and f"last good version {good}" in body["model_problem"]
