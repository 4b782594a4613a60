"""What every policy offers the dataset, the artifact and the evaluation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.dataset import Transitions
from training.inference import masked_argmax


@dataclass
class TrainingHistory:
    """Loss curve points (step, mean loss since the last point) and the wall time of training."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mean_q: list[float] = field(default_factory=list)
    seconds: float = 0.0
    total_steps: int = 0
    best_step: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss": self.loss, "mean_q": self.mean_q, "seconds": self.seconds,
                "total_steps": self.total_steps, "best_step": self.best_step}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingHistory:
        return cls(list(data.get("steps", [])), list(data.get("loss", [])), list(data.get("mean_q", [])),
                   float(data.get("seconds", 0.0)), int(data.get("total_steps", 0)), data.get("best_step"))


class Policy(ABC):
    """A dose policy over imputed states: ``scores`` for the 12 classes, ``act`` = masked argmax."""

    artifact_kind: str = "mlp_q"
    config: Any
    history: TrainingHistory

    @abstractmethod
    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        """Train on the transitions (or visits) of the training split (``validation`` for early stopping)."""

    @abstractmethod
    def scores(self, states: np.ndarray) -> np.ndarray:
        """Scores (n, 12): Q-values on the ±100 reward scale, or log-probabilities."""

    def act(self, states: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The chosen class per row, over the allowed classes only (never clipped afterwards)."""
        return masked_argmax(self.scores(states), masks)

    @abstractmethod
    def export_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the numpy forward pass of :mod:`training.inference`."""

    def torch_state(self) -> dict[str, Any] | None:
        """torch state_dict to save next to the arrays (None for policies without torch)."""
        return None

    def load_torch_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`torch_state` (loaded with ``weights_only=True``)."""
        raise NotImplementedError


def progress_bar(total: int, enabled: bool, description: str) -> Any:
    """A tqdm bar on stderr, or a no-op object when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=description, unit="step", mininterval=0.5)
