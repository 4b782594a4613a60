"""Random-forest dose model (the second seed document's approach): classify the physician's dose class.

scikit-learn fits the forest; it is then exported as the flat node arrays of its trees
(:class:`training.inference.ForestArrays`) so that serving and reloading need neither scikit-learn
nor pickle. After export the arrays are the model: scores come from the numpy traversal.
"""

from __future__ import annotations

import time

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES
from training.dataset import Transitions
from training.inference import LOG_PROB_FLOOR, ForestArrays
from training.policies.base import Policy, TrainingHistory
from training.policies.config import ForestConfig


class RandomForestPolicy(Policy):
    """Class probabilities of a random forest; chooses the most probable allowed dose."""

    artifact_kind = "forest"

    def __init__(self, config: ForestConfig, n_features: int) -> None:
        self.config = config
        self.n_features = n_features
        self.forest: ForestArrays | None = None
        self.history = TrainingHistory()

    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        from sklearn.ensemble import RandomForestClassifier

        started = time.perf_counter()
        model = RandomForestClassifier(
            n_estimators=self.config.n_estimators, max_depth=self.config.max_depth,
            min_samples_leaf=self.config.min_samples_leaf, random_state=self.config.seed, n_jobs=1,
        )
        model.fit(data.states, data.actions)
        self.forest = forest_arrays(model)
        self.history.seconds += time.perf_counter() - started
        return self.history

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        if self.forest is None:
            raise RuntimeError("forest not fitted")
        return self.forest.probabilities(states)

    def scores(self, states: np.ndarray) -> np.ndarray:
        """log of the forest's class probabilities (floored so that unseen classes stay comparable)."""
        return np.log(self.probabilities(states) + LOG_PROB_FLOOR)

    def export_arrays(self) -> dict[str, np.ndarray]:
        if self.forest is None:
            raise RuntimeError("forest not fitted")
        return self.forest.to_arrays()


def forest_arrays(model: object) -> ForestArrays:
    """Flatten a fitted ``RandomForestClassifier`` into global node arrays over the 12 dose classes."""
    classes = np.asarray(model.classes_, dtype=np.int64)  # type: ignore[attr-defined]
    roots, lefts, rights, features, thresholds, values = [], [], [], [], [], []
    offset = 0
    for estimator in model.estimators_:  # type: ignore[attr-defined]
        tree = estimator.tree_
        n = tree.node_count
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        lefts.append(np.where(left >= 0, left + offset, -1))
        rights.append(np.where(right >= 0, right + offset, -1))
        features.append(np.maximum(tree.feature.astype(np.int64), 0))
        thresholds.append(tree.threshold.astype(np.float64))
        counts = tree.value[:, 0, :].astype(np.float64)
        distribution = np.zeros((n, N_DOSE_CLASSES))
        distribution[:, classes] = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
        values.append(distribution)
        roots.append(offset)
        offset += n
    return ForestArrays(
        roots=np.asarray(roots, dtype=np.int64), left=np.concatenate(lefts), right=np.concatenate(rights),
        feature=np.concatenate(features), threshold=np.concatenate(thresholds), values=np.concatenate(values),
    )
