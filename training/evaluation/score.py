"""Scoring a model on held-out visits: one path for the evaluation report and the retraining gate.

- :func:`score_split`: impute with the model's own statistics, score, choose over the allowed doses.
- :func:`behaviour_policies`: the physicians' policy π_b on held-out visits: the probabilities the
  simulator recorded when the data has them, else one behaviour-cloning estimate fitted on the
  training visits through an imputation of its own, so that every model scored on the same visits is
  judged against the same π_b (the champion and the candidate alike, the report and the gate alike).
- :func:`held_out_metrics`: agreement with the physicians, recommendations outside the bounds, and the
  off-policy values with their patient-bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES
from training.dataset import Transitions, VisitTable, to_transitions
from training.evaluation import agreement, ope
from training.inference import InferenceModel, masked_argmax
from training.policies.physician import PhysicianPolicy

BEHAVIOUR_STEPS: Final = 2000  # gradient steps of the behaviour-cloning estimate of π_b (when no truth is recorded)

QFunction = Callable[[np.ndarray], np.ndarray]
"""States → Q̂ (n, 12) for the doubly robust estimator."""


@dataclass
class Evaluated:
    """Rows of one split, imputed with the model's statistics, with the model's choices."""

    table: VisitTable
    data: Transitions
    scores: np.ndarray
    recommended: np.ndarray
    raw: np.ndarray
    """The model's first choice with no mask at all (to count what the masks prevented)."""


def score_split(model: InferenceModel, table: VisitTable) -> Evaluated:
    """Impute with the model's training statistics, score, and choose over allowed doses only."""
    data = to_transitions(table, model.imputation)
    if not len(data):
        empty = np.zeros(0, np.int64)
        return Evaluated(table, data, np.zeros((0, N_DOSE_CLASSES)), empty, empty)
    scores = model.scores(data.states)
    return Evaluated(table, data, scores, masked_argmax(scores, data.masks), scores.argmax(axis=1))


def behaviour_policies(train: VisitTable, tables: Sequence[VisitTable], *, steps: int = BEHAVIOUR_STEPS,
                       seed: int = 0) -> list[PhysicianPolicy]:
    """π_b on the visits of each table: the recorded truth when every table has it, else one BC estimate."""
    if all(table.behaviour_probs is not None for table in tables):
        return [PhysicianPolicy(np.asarray(table.behaviour_probs, dtype=np.float64), "truth") for table in tables]
    from fhir_mapping.features import Imputation
    from training.policies.bc import BehaviourCloning
    from training.policies.config import BCConfig

    imputation = Imputation.fit(train.values, train.observed)
    clone = BehaviourCloning(BCConfig(name="behaviour", steps=steps, seed=seed), imputation.output_dimension)
    clone.fit(to_transitions(train, imputation))
    return [PhysicianPolicy(clone.probabilities(imputation.transform(table.values, table.observed)), "estimated")
            for table in tables]


def zero_q(states: np.ndarray) -> np.ndarray:
    """Q̂ ≡ 0: the doubly robust estimator becomes per-decision weighted importance sampling, with no model to fit."""
    return np.zeros((len(states), N_DOSE_CLASSES))


def held_out_metrics(evaluated: Evaluated, behaviour: np.ndarray, q_function: QFunction = zero_q, *, gamma: float,
                     seed: int, samples: int = ope.BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """Agreement (Table 1 and the honest measures), safety violations and off-policy values on the scored rows."""
    data = evaluated.data
    target = ope.soft_policy(evaluated.recommended, data.masks)
    return {
        "agreement": agreement.agreement_metrics(evaluated.recommended, data.actions),
        "safety_violations": agreement.safety_violations(evaluated.recommended, data.masks),
        "ope": ope.off_policy_values(data, target, behaviour, q_function, gamma=gamma, seed=seed, samples=samples),
    }
