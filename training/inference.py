"""Load a model folder and recommend doses with numpy only: the service imports this, never torch.

No torch and no scikit-learn import here. Networks are stored as plain arrays (``model.npz``, read
with ``allow_pickle=False``) and evaluated by a numpy forward pass; random forests are stored as the
arrays of their trees and traversed in numpy, so every policy in ``training.policies`` can be served.

Model folder (written by :mod:`training.artifact.save`)::

    metadata.json     kind, config name, schema hash, version, training-data fingerprint, code version
    config.json       the training configuration (dataclass fields)
    model.npz         weights (MLP layers or forest arrays) and coverage statistics
    imputation.json   ``fhir_mapping.features.Imputation`` fitted on the training split
    metrics.json      evaluation metrics (when evaluated)
    confidence.json   the thresholds of :func:`judge_confidence`, chosen on held-out simulated children
                      (absent in older models: :func:`default_thresholds` apply)

An artifact whose feature-schema hash differs from ``fhir_mapping.features.FEATURE_SPEC``'s is
refused with :class:`ArtifactError`: its inputs would be read in the wrong order or meaning.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES
from fhir_mapping.errors import EpidoseError

FORMAT_VERSION: Final = 1
KINDS: Final = ("mlp_q", "mlp_logits", "forest")
LOG_PROB_FLOOR: Final = 1e-6  # forest probabilities of 0 become log(1e-6), so masked argmax stays defined
CONFIDENCE_FILE: Final = "confidence.json"
# The published reward is bounded: |R| = |0.5·R1 + 0.4·R2 + 0.1·R3| ≤ 100 (domain.md §1), so a discounted
# sum of rewards, which a Q-value estimates, lies within ±100/(1 − γ) (±1000 at γ = 0.9).
REWARD_BOUND: Final = 100.0
# Defaults for models saved before thresholds were chosen at training time (project assumptions): a
# child within the central 95% of training states, and a margin of 5% of one visit's reward for Q-values
# (cards.py's earlier reading) or log(2) for log-probabilities (the best dose at least twice as likely).
DEFAULT_MIN_COVERAGE: Final = 0.05
DEFAULT_Q_MARGIN: Final = 5.0
DEFAULT_LOG_PROB_MARGIN: Final = math.log(2.0)


class ArtifactError(EpidoseError):
    """A model folder that cannot be served: missing files, wrong format, or a different feature schema."""


def masked_argmax(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Argmax over the allowed classes only (row-wise); the one selection rule for training and serving.

    A row whose mask allows nothing falls back to class 0 (0 g), which the label mask always allows.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    mask = np.atleast_2d(np.asarray(mask, dtype=bool))
    masked = np.where(mask, scores, -np.inf)
    choice = masked.argmax(axis=1)
    return np.where(mask.any(axis=1), choice, 0)


def score_bound(gamma: float) -> float:
    """The largest |Q| the published reward can produce: 100 / (1 − γ)."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"discount must be in [0, 1), got {gamma!r}")
    return REWARD_BOUND / (1.0 - gamma)


@dataclass(frozen=True)
class ConfidenceThresholds:
    """When a model's choice is offered as a recommendation (see :func:`judge_confidence`).

    ``min_coverage``: the share (0–1) of training states at least as far from the training centre as
    this child (below it: abstain). ``clear_margin``: how much the best allowed score must beat the next
    allowed one (in score units) for "clear". ``score_bound``: the largest |score| the reward can reach
    (Q-values only; None for log-probabilities). ``chosen`` says how the thresholds were chosen, and
    ``calibration`` what they gave on the held-out children they were chosen on.
    """

    min_coverage: float
    clear_margin: float
    score_bound: float | None
    chosen: str = "default"
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not math.isfinite(self.clear_margin):
            data["clear_margin"] = None  # never clear (JSON has no infinity)
        return data

    @classmethod
    def from_json(cls, data: Any) -> ConfidenceThresholds:
        if not isinstance(data, dict):
            raise ValueError("confidence thresholds must be a JSON object")
        margin = data.get("clear_margin")
        bound = data.get("score_bound")
        return cls(float(data["min_coverage"]), math.inf if margin is None else float(margin),
                   None if bound is None else float(bound), str(data.get("chosen", "")), dict(data.get("calibration") or {}))


def default_thresholds(score_kind: str, gamma: float = 0.9) -> ConfidenceThresholds:
    """The thresholds of a model saved without any (older models)."""
    if score_kind == "q":
        return ConfidenceThresholds(DEFAULT_MIN_COVERAGE, DEFAULT_Q_MARGIN, score_bound(gamma), "default (model saved without thresholds)")
    return ConfidenceThresholds(DEFAULT_MIN_COVERAGE, DEFAULT_LOG_PROB_MARGIN, None, "default (model saved without thresholds)")


@dataclass(frozen=True)
class Confidence:
    """How far the model's choice can be trusted: "clear" (offered as recommended), "narrow" (shown, not
    recommended: the next dose scores nearly as well) or "abstain" (the model has no say here)."""

    level: str
    reasons: tuple[str, ...]
    margin: float | None = None
    kinds: tuple[str, ...] = ()  # one code per reason: no-score, out-of-range, coverage-unknown, low-coverage, single-dose, narrow


def score_margin(scores: Any, allowed: Any) -> float | None:
    """Best allowed score minus the second best allowed score; None with fewer than two allowed doses."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    mask = np.asarray(allowed, dtype=bool).ravel()
    chosen = np.sort(values[mask])[::-1]
    if chosen.size < 2:
        return None
    return float(chosen[0] - chosen[1])


def judge_confidence(scores: Any, allowed: Any, coverage: float | None, score_kind: str,
                     thresholds: ConfidenceThresholds) -> Confidence:
    """Clear, narrow or abstain, with the reasons in plain words.

    Abstain when the scores of the allowed doses are not finite or (Q-values) lie outside what the
    reward can reach, when few training children resembled this one (coverage below the threshold, or
    unknown), or when the rails leave a single dose (the guidance applies, not the model). Narrow when the
    best allowed dose beats the next by less than the clear margin. Clear otherwise.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    mask = np.asarray(allowed, dtype=bool).ravel()
    if values.size != N_DOSE_CLASSES or mask.size != N_DOSE_CLASSES:
        raise ValueError(f"expected {N_DOSE_CLASSES} scores and {N_DOSE_CLASSES} allowed flags")
    reasons: list[str] = []
    kinds: list[str] = []
    allowed_scores = values[mask]
    if allowed_scores.size == 0 or not np.isfinite(allowed_scores).all():
        reasons.append("the model gave no usable score for the allowed doses")
        kinds.append("no-score")
    elif score_kind == "q" and thresholds.score_bound is not None:
        worst = float(allowed_scores[np.argmax(np.abs(allowed_scores))])
        if abs(worst) > thresholds.score_bound:
            reasons.append(f"the model's scores (up to {worst:.0f}) lie outside what the reward can reach "
                           f"(±{thresholds.score_bound:.0f})")
            kinds.append("out-of-range")
    if coverage is None or not math.isfinite(coverage):
        reasons.append("how closely training children resembled this one is unknown")
        kinds.append("coverage-unknown")
    elif coverage < thresholds.min_coverage:
        reasons.append(f"few training children resembled this one ({coverage:.0%}; at least {thresholds.min_coverage:.0%} needed)")
        kinds.append("low-coverage")
    margin = score_margin(values, mask) if allowed_scores.size and np.isfinite(allowed_scores).all() else None
    if allowed_scores.size == 1:
        reasons.append("the safety rails leave a single dose: the guidance applies")
        kinds.append("single-dose")
    if reasons:
        return Confidence("abstain", tuple(reasons), margin, tuple(kinds))
    if margin is None or margin < thresholds.clear_margin:
        shown = "n/a" if margin is None else f"{margin:.2f}"
        needed = "never reached by this model" if not math.isfinite(thresholds.clear_margin) else f"{thresholds.clear_margin:.2f}"
        return Confidence("narrow", (f"the next allowed dose scores nearly as well (margin {shown}; clear from {needed})",), margin,
                          ("narrow",))
    return Confidence("clear", (f"the best allowed dose leads by {margin:.2f} (clear from {thresholds.clear_margin:.2f})",), margin)


def feature_schema_hash(spec: Any | None = None) -> str:
    """The version hash of ``fhir_mapping.features.FEATURE_SPEC`` (or of ``spec``)."""
    if spec is None:
        from fhir_mapping import features

        spec = features.FEATURE_SPEC
    for attribute in ("version_hash", "schema_hash", "hash", "version"):
        value = getattr(spec, attribute, None)
        if callable(value):
            value = value()
        if isinstance(value, str) and value:
            return value
    raise ArtifactError("FEATURE_SPEC has no version hash")


def mlp_forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """ReLU multilayer perceptron: h ← relu(h Wᵀ + b) for hidden layers, linear output layer."""
    h = np.asarray(x, dtype=np.float32)
    for i, (weight, bias) in enumerate(layers):
        h = h @ weight.T + bias
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


@dataclass(frozen=True)
class ForestArrays:
    """Every tree of a fitted forest as flat node arrays (global node indices, −1 marks a leaf).

    ``values`` holds each node's class distribution over the 12 dose classes (rows sum to 1 at leaves).
    """

    roots: np.ndarray  # int64 [n_trees]
    left: np.ndarray  # int64 [n_nodes]
    right: np.ndarray  # int64 [n_nodes]
    feature: np.ndarray  # int64 [n_nodes]
    threshold: np.ndarray  # float64 [n_nodes]
    values: np.ndarray  # float64 [n_nodes, 12]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Mean of the trees' leaf distributions (scikit-learn's predict_proba), in numpy."""
        x = np.asarray(x, dtype=np.float32)
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        while True:
            is_leaf = self.left[node] < 0
            if is_leaf.all():
                break
            feature = np.where(is_leaf, 0, self.feature[node])
            go_left = x[rows, feature] <= self.threshold[node]
            node = np.where(is_leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return self.values[node].mean(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f"forest.{k}": getattr(self, k) for k in ("roots", "left", "right", "feature", "threshold", "values")}

    @classmethod
    def from_arrays(cls, arrays: Any) -> ForestArrays:
        return cls(*(np.asarray(arrays[f"forest.{k}"]) for k in ("roots", "left", "right", "feature", "threshold", "values")))


@dataclass(frozen=True)
class Coverage:
    """How typical a state is of the training states: Mahalanobis distance and its training percentile.

    Only the mean, a ridge-regularised precision matrix and 101 quantiles of the training distances
    are stored, never training rows, so the artifact holds no patient's record.
    """

    mean: np.ndarray
    precision: np.ndarray
    quantiles: np.ndarray  # distances at training percentiles 0, 1, ..., 100

    @classmethod
    def fit(cls, states: np.ndarray, ridge: float = 1e-3) -> Coverage:
        states = np.asarray(states, dtype=np.float64)
        mean = states.mean(axis=0)
        centred = states - mean
        covariance = centred.T @ centred / max(1, len(states) - 1)
        covariance += ridge * (np.trace(covariance) / max(1, covariance.shape[0]) + 1e-6) * np.eye(covariance.shape[0])
        precision = np.linalg.inv(covariance)
        coverage = cls(mean, precision, np.zeros(101))
        distances = coverage.distance(states)
        return cls(mean, precision, np.percentile(distances, np.arange(101)))

    def distance(self, states: np.ndarray) -> np.ndarray:
        centred = np.atleast_2d(np.asarray(states, dtype=np.float64)) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0.0))

    def percentile(self, states: np.ndarray) -> np.ndarray:
        """Share (0–100) of training states at least as far from the centre: 100 typical, 0 beyond all."""
        position = np.interp(self.distance(states), self.quantiles, np.arange(101.0), left=0.0, right=100.0)
        return 100.0 - position

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"coverage.mean": self.mean, "coverage.precision": self.precision, "coverage.quantiles": self.quantiles}

    @classmethod
    def from_arrays(cls, arrays: Any) -> Coverage | None:
        if "coverage.mean" not in arrays:
            return None
        return cls(*(np.asarray(arrays[f"coverage.{k}"]) for k in ("mean", "precision", "quantiles")))


@dataclass
class InferenceModel:
    """A loaded model folder: scores (Q-values, or log-probabilities for BC and forests) and masked choice."""

    version: str
    config_name: str
    kind: str
    schema_hash: str
    imputation: Any
    metadata: dict[str, Any]
    config: dict[str, Any]
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    forest: ForestArrays | None = None
    coverage_stats: Coverage | None = None
    saved_thresholds: ConfidenceThresholds | None = None

    @property
    def gamma(self) -> float:
        return float(self.config.get("gamma", 0.9))

    @property
    def confidence_thresholds(self) -> ConfidenceThresholds:
        """The thresholds saved with the model, or the defaults for a model saved without them."""
        if self.saved_thresholds is not None:
            return self.saved_thresholds
        return default_thresholds(self.score_kind, self.gamma)

    def coverage_share(self, values: np.ndarray, observed: np.ndarray) -> float | None:
        """Coverage of one raw state row as a share 0–1 (None when the model has no coverage statistics)."""
        share = float(self.coverage(self.model_input(values, observed))[0])
        return share / 100.0 if math.isfinite(share) else None

    def confidence(self, scores: Any, allowed: Any, coverage: float | None) -> Confidence:
        """:func:`judge_confidence` with this model's score kind and thresholds."""
        return judge_confidence(scores, allowed, coverage, self.score_kind, self.confidence_thresholds)

    @property
    def score_kind(self) -> str:
        """"q" for DQN variants (expected discounted reward, ±100 scale), "log_prob" for BC and forests."""
        return "q" if self.kind == "mlp_q" else "log_prob"

    def scores(self, model_input: np.ndarray) -> np.ndarray:
        """Scores of the 12 dose classes for imputed model inputs, shape (n, 12)."""
        x = np.atleast_2d(np.asarray(model_input, dtype=np.float32))
        if self.kind == "forest":
            if self.forest is None:
                raise ArtifactError("forest artifact without trees")
            return np.log(self.forest.probabilities(x) + LOG_PROB_FLOOR)
        out = mlp_forward(self.layers, x).astype(np.float64)
        if self.kind == "mlp_logits":
            shifted = out - out.max(axis=1, keepdims=True)
            return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return out

    def model_input(self, values: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Raw feature rows (NaN for missing) to the imputed float32 input, with the training statistics."""
        return np.asarray(self.imputation.transform(np.atleast_2d(values), np.atleast_2d(observed)), dtype=np.float32)

    def recommend(self, values: np.ndarray, observed: np.ndarray, allowed_mask: Any) -> tuple[int, np.ndarray, int]:
        """(recommended class among the allowed, the 12 scores, the unmasked argmax) for one visit's row."""
        return self.choose(self.model_input(values, observed), allowed_mask)

    def choose(self, model_input: np.ndarray, allowed_mask: Any) -> tuple[int, np.ndarray, int]:
        """:meth:`recommend` for a row already imputed by :meth:`model_input` (the service imputes once)."""
        scores = self.scores(model_input)[0]
        raw = int(np.argmax(scores))
        choice = int(masked_argmax(scores, np.asarray(allowed_mask, dtype=bool))[0])
        return choice, scores, raw

    def coverage(self, model_input: np.ndarray) -> np.ndarray:
        """Training-data coverage percentile per row (100 typical of training states, 0 beyond all of them)."""
        if self.coverage_stats is None:
            return np.full(np.atleast_2d(model_input).shape[0], np.nan)
        return self.coverage_stats.percentile(model_input)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ArtifactError(f"model folder lacks {path.name}") from error
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path.name} is not valid JSON: {error}") from error


def load_inference_model(path: str | Path, *, check_schema: bool = True) -> InferenceModel:
    """Load a model folder for serving (numpy only). Raises :class:`ArtifactError` when it cannot be served."""
    from fhir_mapping import features

    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(f"no model folder at {folder}")
    metadata = read_json(folder / "metadata.json")
    config = read_json(folder / "config.json")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported model format {metadata.get('format_version')!r}")
    kind = metadata.get("kind")
    if kind not in KINDS:
        raise ArtifactError(f"unknown model kind {kind!r}")
    schema_hash = str(metadata.get("schema_hash", ""))
    if check_schema:
        expected = feature_schema_hash()
        if schema_hash != expected:
            raise ArtifactError(
                f"model feature schema {schema_hash[:12]} differs from this service's {expected[:12]}: retrain the model"
            )
    try:
        imputation = features.Imputation.from_json(read_json(folder / "imputation.json"))
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"imputation statistics unreadable: {error}") from error
    try:
        # Opened here so that a damaged archive cannot leave the file open (np.load does on BadZipFile).
        with (folder / "model.npz").open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ArtifactError(f"weights unreadable: {error}") from error
    model = InferenceModel(
        version=str(metadata.get("version", "")),
        config_name=str(metadata.get("config_name", config.get("name", ""))),
        kind=kind,
        schema_hash=schema_hash,
        imputation=imputation,
        metadata=metadata,
        config=config,
        coverage_stats=Coverage.from_arrays(arrays),
    )
    if (folder / CONFIDENCE_FILE).exists():
        try:
            model.saved_thresholds = ConfidenceThresholds.from_json(read_json(folder / CONFIDENCE_FILE))
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactError(f"{CONFIDENCE_FILE} unreadable: {error}") from error
    if kind == "forest":
        try:
            model.forest = ForestArrays.from_arrays(arrays)
        except KeyError as error:
            raise ArtifactError(f"forest arrays missing: {error}") from error
    else:
        n_layers = int(metadata.get("n_layers", 0))
        try:
            model.layers = [(arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"]) for i in range(n_layers)]
        except KeyError as error:
            raise ArtifactError(f"network weights missing: {error}") from error
        if not model.layers or model.layers[-1][0].shape[0] != N_DOSE_CLASSES:
            raise ArtifactError("network output is not the 12 dose classes")
    return model
