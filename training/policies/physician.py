"""The logged physician policy: the behaviour policy for off-policy evaluation and a baseline.

When the data carries the physicians' action probabilities (the simulator's truth files), those are
used as they are; otherwise the physician policy is estimated by behaviour cloning and its
probabilities floored at ``PROBABILITY_FLOOR`` so that importance weights stay finite.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES

PROBABILITY_FLOOR: Final = 1e-3


class PhysicianPolicy:
    """Behaviour probabilities per visit row, with the logged actions as the physician's choices."""

    def __init__(self, probabilities: np.ndarray, source: str) -> None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != N_DOSE_CLASSES:
            raise ValueError("physician probabilities must be (n, 12)")
        floored = np.maximum(probabilities, PROBABILITY_FLOOR) if source == "estimated" else probabilities
        self.probabilities = floored / floored.sum(axis=1, keepdims=True)
        self.source = source  # "truth" or "estimated"

    @classmethod
    def from_truth_or_estimate(cls, truth: np.ndarray | None, estimate: np.ndarray) -> PhysicianPolicy:
        if truth is not None:
            return cls(truth, "truth")
        return cls(estimate, "estimated")

    def probability_of(self, actions: np.ndarray) -> np.ndarray:
        """π_b(a_logged | s) per row."""
        return self.probabilities[np.arange(len(actions)), actions]
