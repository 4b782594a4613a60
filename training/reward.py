"""The reward, written once: R = 0.5·R1 + 0.4·R2 + 0.1·R3 (domain.md §1), for the dataset, the simulator and the evaluation.

Each term reads one seizure report of the visit that follows a decision: R1 since the last visit,
R2 within the last 3 months, R3 within the last 6 months; +100 when the report says no seizure, −100
when it says a seizure, 0 when it is not reported. An optional adverse-effect term (not published)
subtracts ``adverse_effect_weight`` × 100 at a visit reporting a behavioural adverse effect; weight 0,
the default, is the published reward.
"""

from __future__ import annotations

from typing import Final

from fhir_mapping.timeline import Visit

REWARD_WEIGHTS: Final = (0.5, 0.4, 0.1)  # domain.md §1: since last visit, last 3 months, last 6 months
REWARD_MAGNITUDE: Final = 100.0  # domain.md §1: +100 no seizure, −100 seizure, 0 unknown


def seizure_term(seizure: bool | None, magnitude: float = REWARD_MAGNITUDE) -> float:
    """+magnitude for a reported seizure-free period, −magnitude for a reported seizure, 0 when not reported."""
    if seizure is None:
        return 0.0
    return -magnitude if seizure else magnitude


def reward(since_last: bool | None, last_3_months: bool | None, last_6_months: bool | None, *,
           adverse_effect: bool | None = None, adverse_effect_weight: float = 0.0,
           weights: tuple[float, float, float] = REWARD_WEIGHTS, magnitude: float = REWARD_MAGNITUDE) -> float:
    """The reward of one visit's seizure reports (and, with a weight above 0, its adverse-effect report).

    >>> reward(False, True, None)
    10.0
    >>> reward(False, None, None, adverse_effect=True, adverse_effect_weight=0.2)
    30.0
    """
    w1, w2, w3 = weights
    value = (w1 * seizure_term(since_last, magnitude) + w2 * seizure_term(last_3_months, magnitude)
             + w3 * seizure_term(last_6_months, magnitude))
    if adverse_effect and adverse_effect_weight:
        value -= adverse_effect_weight * magnitude
    return value


def visit_reward(visit: Visit, adverse_effect_weight: float = 0.0) -> float:
    """The reward read from one visit of a timeline (the outcome of the previous decision).

    >>> from datetime import date
    >>> visit_reward(Visit(date(2020, 1, 1), seizure_since_last_visit=False, seizure_last_3_months=True))
    10.0
    """
    return reward(visit.seizure_since_last_visit, visit.seizure_last_3_months, visit.seizure_last_6_months,
                  adverse_effect=visit.behaviour_adverse_effect, adverse_effect_weight=adverse_effect_weight)
