"""The check a model folder passes before the registry's pointer may move to it.

It is loaded with the loader the service uses (so a folder that would make workers answer 503 is
refused here instead), its feature-schema hash is compared with this code's, and its scores are
computed for probe states near the training distribution (every feature missing, the imputation's
means, and the means with one feature moved by ±1 standard deviation). Every score must be finite;
Q-values must lie within what the reward allows, |Q| ≤ max|R| / (1 − γ): with R on the ±100 scale
(R = 0.5·R1 + 0.4·R2 + 0.1·R3, each term ±100 or 0; /work/shared/domain.md, Reward) and γ = 0.9 that is
1000. Log-probabilities (behaviour cloning, forests) must be ≤ 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from fhir_mapping.errors import EpidoseError

DEFAULT_GAMMA: Final = 0.9
LOG_PROB_TOLERANCE: Final = 1e-6


class ModelCheckError(EpidoseError):
    """The model folder must not be served; the message says why."""


@dataclass(frozen=True)
class ModelCheck:
    """What was checked: the model's own version, the probes scored and the largest score magnitude."""

    version: str
    schema_hash: str
    probes: int
    largest_abs_score: float


def q_bound(gamma: float) -> float:
    """The largest |Q| a discounted sum of rewards of magnitude ≤ 100 can reach (the serving side's bound)."""
    from training.inference import score_bound

    try:
        return score_bound(gamma)
    except ValueError as error:
        raise ModelCheckError(str(error)) from None


def probe_states(imputation: Any, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, observed) rows near the training data: every feature missing, the training means, and the
    means with one feature at a time moved by ±1 standard deviation.

    The bound holds for states like those the model learned from; far outside them (every feature at
    +3 sd together) a network extrapolates freely, and refusing it for that would refuse sound models.
    """
    means = np.asarray(getattr(imputation, "means", np.zeros(dimension)), dtype=np.float64)
    stds = np.asarray(getattr(imputation, "stds", np.ones(dimension)), dtype=np.float64)
    rows = [np.full(dimension, np.nan), means]
    for index in range(dimension):
        for sign in (-1.0, 1.0):
            row = means.copy()
            row[index] += sign * stds[index]
            rows.append(row)
    values = np.vstack(rows)
    observed = ~np.isnan(values)
    return values, observed


def check_model_folder(path: Path, loader: Callable[[Path], Any] | None = None) -> ModelCheck:
    """Load ``path`` as the service would and score the probe states; :class:`ModelCheckError` if unfit."""
    from fhir_mapping.dosing import N_DOSE_CLASSES
    from fhir_mapping.features import FEATURE_SPEC
    from training.inference import feature_schema_hash

    if loader is None:
        from training.inference import load_inference_model

        loader = load_inference_model
    try:
        model: Any = loader(Path(path))
    except Exception as error:  # whatever the loader raises, the folder cannot be served
        raise ModelCheckError(f"the service cannot load it: {error}") from None
    expected = feature_schema_hash()
    schema = str(getattr(model, "schema_hash", ""))
    if schema != expected:
        raise ModelCheckError(f"feature schema {schema[:12]!r} differs from this service's {expected[:12]!r}")
    values, observed = probe_states(model.imputation, FEATURE_SPEC.dimension)
    try:
        scores = np.asarray(model.scores(model.model_input(values, observed)), dtype=np.float64)
        single = model.recommend(values[:1], observed[:1], np.ones(N_DOSE_CLASSES, dtype=bool))
    except Exception as error:  # a forward pass that fails would fail on every card
        raise ModelCheckError(f"the forward pass failed: {type(error).__name__}: {error}") from None
    if scores.shape != (len(values), N_DOSE_CLASSES):
        raise ModelCheckError(f"scores have shape {scores.shape}, expected ({len(values)}, {N_DOSE_CLASSES})")
    if not np.isfinite(scores).all() or not np.isfinite(np.asarray(single[1], dtype=np.float64)).all():
        raise ModelCheckError("scores are not finite for some probe states")
    largest = float(np.abs(scores).max())
    if getattr(model, "score_kind", "q") == "q":
        bound = q_bound(float(getattr(model, "config", {}).get("gamma", DEFAULT_GAMMA)))
        if largest > bound:
            raise ModelCheckError(f"Q-values reach {largest:.1f}, beyond the reward's bound of {bound:.0f}")
    elif scores.max() > LOG_PROB_TOLERANCE:
        raise ModelCheckError("log-probabilities above 0")
    return ModelCheck(str(getattr(model, "version", "")), schema, len(values), largest)
