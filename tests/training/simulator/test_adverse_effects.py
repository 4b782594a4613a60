"""Adverse effects: hazards reproduce the paediatric trial shares, depend weakly on exposure, more on
behavioural history, and can enter the reward as an optional term (0 by default, the published reward)."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np

from fhir_mapping.timeline import Visit
from training.reward import visit_reward
from training.simulator.config import (
    DEFAULT_CONFIG,
    TRIAL_AVERAGE_CONCENTRATION_MG_L,
    TRIAL_YEARS,
    with_pd_profile,
)
from training.simulator.environment import Environment
from training.simulator.simulate import behaviour_hazard, somnolence_hazard

HISTORY_SHARE = DEFAULT_CONFIG.behaviour_history_share


def _trial_share(on_drug: bool) -> float:
    """Share of children with a behavioural effect over a trial, averaged over behavioural history."""
    c = TRIAL_AVERAGE_CONCENTRATION_MG_L if on_drug else 0.0
    with_history = 1 - np.exp(-behaviour_hazard(DEFAULT_CONFIG, on_drug, c, True) * TRIAL_YEARS)
    without = 1 - np.exp(-behaviour_hazard(DEFAULT_CONFIG, on_drug, c, False) * TRIAL_YEARS)
    return float(HISTORY_SHARE * with_history + (1 - HISTORY_SHARE) * without)


def test_hazards_reproduce_the_trial_shares() -> None:
    """Aggression or irritability: 1 − 0.90·0.93 ≈ 16.3% on LEV, 1 − 0.95·0.99 ≈ 6.0% on placebo;
    somnolence 13% vs 9% (domain.md §4), each within a point over the ~14-week trial."""
    assert abs(_trial_share(True) - 0.163) < 0.01
    assert abs(_trial_share(False) - 0.0595) < 0.01
    lev = 1 - np.exp(-somnolence_hazard(DEFAULT_CONFIG, True, TRIAL_AVERAGE_CONCENTRATION_MG_L) * TRIAL_YEARS)
    placebo = 1 - np.exp(-somnolence_hazard(DEFAULT_CONFIG, False, 0.0) * TRIAL_YEARS)
    assert abs(lev - 0.13) < 0.005 and abs(placebo - 0.09) < 0.005


def test_dose_relation_is_weak_and_history_is_the_stronger_predictor() -> None:
    """Doubling the trial exposure raises the behavioural hazard by under 20%; a child with a history at a
    low exposure has a higher hazard than one without at twice the trial exposure."""
    trial = behaviour_hazard(DEFAULT_CONFIG, True, TRIAL_AVERAGE_CONCENTRATION_MG_L, False)
    double = behaviour_hazard(DEFAULT_CONFIG, True, 2 * TRIAL_AVERAGE_CONCENTRATION_MG_L, False)
    assert trial < double < 1.2 * trial
    assert behaviour_hazard(DEFAULT_CONFIG, True, 5.0, True) > double


def test_adverse_effect_term_in_the_reward_is_optional() -> None:
    """Weight 0 is the published reward; with weight 0.2 each visit reporting a behavioural effect loses 20,
    in the simulator's rewards and in the training reward read from the visit alike."""
    environment = Environment(25, 3, DEFAULT_CONFIG, state="direct")
    runs = environment.physician_runs()
    weighted = dataclasses.replace(DEFAULT_CONFIG, adverse_effect_weight=0.2)
    for run in runs:
        difference = run.rewards(weighted) - run.rewards(DEFAULT_CONFIG)
        expected = np.array([-20.0 if v.adverse_effect else 0.0 for v in run.visits[1:]])
        assert np.allclose(difference, expected)
    assert any(v.adverse_effect for run in runs for v in run.visits[1:])
    visit = Visit(date(2020, 1, 1), seizure_since_last_visit=True, seizure_last_3_months=True,
                  seizure_last_6_months=True, behaviour_adverse_effect=True)
    assert visit_reward(visit) == -100.0 and visit_reward(visit, 0.2) == -120.0


def test_somnolence_is_recorded_and_more_frequent_on_levetiracetam() -> None:
    """Somnolence (truth only, its own random stream) is reported more often per year on the drug than off
    it. Per year, not per visit: the hazard acts over the interval, and off-drug intervals (watchful
    waiting after a single seizure, the discharge visits) are longer than on-drug ones."""
    environment = Environment(300, 2, with_pd_profile(DEFAULT_CONFIG, "sourced"), state="direct")
    reports = {True: 0, False: 0}
    days = {True: 0, False: 0}
    for run in environment.physician_runs():
        for previous, visit in zip(run.visits, run.visits[1:], strict=False):
            on_drug = visit.average_concentration > 0
            reports[on_drug] += visit.somnolence
            days[on_drug] += (visit.date - previous.date).days
    assert days[True] and days[False] and reports[True] / days[True] > reports[False] / days[False]
