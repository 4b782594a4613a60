"""The one reward: the dataset (from a recorded visit) and the simulator (from a visit's truth) read it alike."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date

import pytest

from fhir_mapping.timeline import Visit
from training.reward import REWARD_WEIGHTS, reward, visit_reward
from training.simulator.config import DEFAULT_CONFIG
from training.simulator.simulate import VisitTruth, reward_of_truth


def test_the_published_weights_and_scale() -> None:
    """R = 0.5·R1 + 0.4·R2 + 0.1·R3 with ±100 per term and 0 when a term is not reported (domain.md §1)."""
    assert REWARD_WEIGHTS == (0.5, 0.4, 0.1)
    assert reward(False, False, False) == 100.0 and reward(True, True, True) == -100.0
    assert reward(True, False, None) == 0.5 * -100 + 0.4 * 100 + 0.1 * 0
    assert reward(None, None, None) == 0.0


@pytest.mark.parametrize("weight", [0.0, 0.2])
def test_dataset_and_simulator_give_the_same_reward_for_the_same_reports(weight: float) -> None:
    """Every combination of the three seizure reports and an adverse effect: one formula, one value."""
    config = dataclasses.replace(DEFAULT_CONFIG, adverse_effect_weight=weight)
    for since_last, last_3, last_6, adverse in itertools.product((False, True), repeat=4):
        visit = Visit(date(2020, 1, 1), seizure_since_last_visit=since_last, seizure_last_3_months=last_3,
                      seizure_last_6_months=last_6, behaviour_adverse_effect=adverse)
        truth = VisitTruth(date(2020, 1, 1), "e1", 0, 0, None, int(since_last), since_last, last_3, last_6, 0.0, 0.0,
                           adverse, False, 30.0, 130.0, 100.0, (True,) * 12)
        assert visit_reward(visit, weight) == reward_of_truth(truth, config)
    assert reward(False, False, False, adverse_effect=True, adverse_effect_weight=0.2) == 80.0
