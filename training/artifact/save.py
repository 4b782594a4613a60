"""Write a model folder (training side) and reload it as a trainable policy.

The folder layout is documented in :mod:`training.inference`, which loads it for serving with numpy
only. Here the torch state is also saved (``torch_state.pt``) and read back with
``torch.load(weights_only=True)``: no pickle is ever executed. Forests have no torch state; they are
reloaded from their exported arrays.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import Transitions
from training.inference import (
    FORMAT_VERSION,
    ArtifactError,
    Coverage,
    ForestArrays,
    feature_schema_hash,
    read_json,
)
from training.policies import Policy, config_from_json, make_policy


def code_version() -> str:
    """``git describe`` of the source tree when available, else the installed package version."""
    try:
        git = shutil.which("git")
        if git is None:
            raise OSError("git not installed")
        result = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "describe", "--always", "--dirty", "--tags"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent, check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return f"git:{result.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"epidose {importlib_metadata.version('epidose')}"
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n", encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_model(
    out_dir: str | Path,
    policy: Policy,
    *,
    imputation: Any,
    train: Transitions,
    metrics: dict[str, Any] | None = None,
    extra_metadata: dict[str, Any] | None = None,
    schema_hash: str | None = None,
) -> Path:
    """Write the model folder: arrays, torch state, config, schema hash, imputation, fingerprint, metrics."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = policy.export_arrays()
    coverage = Coverage.fit(train.states)
    arrays.update(coverage.to_arrays())
    np.savez(folder / "model.npz", **arrays)  # type: ignore[arg-type]
    state = policy.torch_state()
    if state is not None:
        import torch

        torch.save(state, folder / "torch_state.pt")
    created = datetime.now(UTC)
    fingerprint = train.fingerprint()
    config = policy.config.to_json()
    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": policy.artifact_kind,
        "config_name": config["name"],
        "version": f"{config['name']}-{created:%Y%m%dT%H%M%SZ}-{fingerprint[:8]}",
        "created": created.isoformat(),
        "schema_hash": schema_hash or feature_schema_hash(),
        "n_features": int(train.states.shape[1]),
        "n_layers": sum(1 for name in arrays if name.startswith("layer") and name.endswith(".weight")),
        "training_fingerprint": fingerprint,
        "training_visits": len(train),
        "training_transitions": len(train.transition_rows),
        "code_version": code_version(),
        "history": policy.history.to_json(),
    }
    metadata.update(extra_metadata or {})
    write_json(folder / "metadata.json", metadata)
    write_json(folder / "config.json", config)
    write_json(folder / "imputation.json", imputation.to_json())
    write_json(folder / "metrics.json", metrics or {})
    return folder


def load_policy(path: str | Path) -> tuple[Policy, dict[str, Any]]:
    """Reload a model folder as a training-side policy (torch weights with ``weights_only=True``)."""
    folder = Path(path)
    metadata = read_json(folder / "metadata.json")
    config = config_from_json(read_json(folder / "config.json"))
    policy = make_policy(config, int(metadata["n_features"]))
    if metadata["kind"] == "forest":
        with np.load(folder / "model.npz", allow_pickle=False) as npz:
            policy.forest = ForestArrays.from_arrays(npz)  # type: ignore[attr-defined]
    else:
        import torch

        state_path = folder / "torch_state.pt"
        if not state_path.exists():
            raise ArtifactError("model folder lacks torch_state.pt")
        policy.load_torch_state(torch.load(state_path, weights_only=True))
    from training.policies.base import TrainingHistory

    policy.history = TrainingHistory.from_json(metadata.get("history", {}))
    return policy, metadata
