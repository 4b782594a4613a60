"""Evaluation measures: the published Table 1, honest agreement, and the off-policy estimators."""

from __future__ import annotations

import numpy as np

from tests.training.synthetic import synthetic_transitions
from training.evaluation import agreement, ope


def test_paper_table_one_vs_rest_accuracy_and_error_in_grams():
    """Per class: (TP+TN)/N over all visits and mean |rec − presc| in g over visits prescribed the class."""
    prescribed = np.array([0, 0, 4, 5])
    recommended = np.array([0, 4, 4, 4])
    table = agreement.paper_table(recommended, prescribed)
    assert table[0]["accuracy"] == 0.75 and table[0]["n"] == 2 and table[0]["error_g"] == 0.25
    assert table[4]["accuracy"] == 0.5 and table[4]["error_g"] == 0.0
    assert table[5]["error_g"] == 0.25 and table[11]["error_g"] is None and table[11]["accuracy"] == 1.0
    assert agreement.weighted_mae_g(recommended, prescribed) == (0 + 0.5 + 0 + 0.25) / 4


def test_unweighted_mean_accuracy_is_inflated_by_rare_classes():
    """Always recommending the commonest class scores high on the published mean, low on kappa."""
    prescribed = np.array([5] * 60 + [6] * 30 + [1, 2, 3, 8, 9, 10, 11, 0, 4, 7])
    recommended = np.full(len(prescribed), 5)
    metrics = agreement.agreement_metrics(recommended, prescribed)
    assert metrics["mean_class_accuracy"] > 0.8
    assert metrics["kappa"] == 0.0
    assert metrics["top1_agreement"] == 0.6


def test_kappa_and_macro_f1_are_one_for_perfect_agreement():
    """Perfect agreement gives kappa 1 and macro-F1 1; within-one-step counts neighbours."""
    prescribed = np.array([0, 1, 2, 3, 4, 5])
    assert agreement.cohen_kappa(prescribed, prescribed) == 1.0
    assert agreement.macro_f1(prescribed, prescribed) == 1.0
    assert agreement.agreement_metrics(prescribed + 1, prescribed)["within_one_step"] == 1.0


def test_safety_violations_count_out_of_bounds_choices():
    """A recommendation outside its visit's mask counts as one violation."""
    masks = np.array([[True, False], [True, True]])
    assert agreement.safety_violations(np.array([1, 1]), masks) == 1


def test_weighted_estimators_recover_the_behaviour_value_on_policy():
    """Evaluating the behaviour policy itself, WIS equals the mean discounted return and WDR agrees."""
    data, _ = synthetic_transitions(n_patients=30, visits=5)
    behaviour = ope.soft_policy(data.actions, data.masks, epsilon=0.2)
    traj = ope.trajectories(data, behaviour, behaviour, np.zeros((len(data), 12)), gamma=0.9)
    returns = (traj.rewards * traj.discounts).sum(axis=1)
    value, effective = ope.wis(traj)
    assert np.isclose(value, returns.mean())
    assert np.isclose(effective, 30.0)
    assert np.isclose(ope.wdr(traj), returns.mean())


def test_off_policy_values_report_intervals_and_ess_for_three_estimators():
    """WIS, WDR and FQE each come with a 95% interval containing the estimate and an ESS."""
    data, _ = synthetic_transitions(n_patients=30, visits=5)
    behaviour = ope.soft_policy(data.actions, data.masks, epsilon=0.3)
    target = ope.soft_policy(np.zeros(len(data), np.int64), data.masks)
    q = ope.fitted_q_evaluation(data, target, gamma=0.9, steps=100)
    results = ope.off_policy_values(data, target, behaviour, q, gamma=0.9, samples=50)
    assert set(results) == {"wis", "wdr", "fqe"}
    for row in results.values():
        assert row["ci_low"] <= row["ci_high"]
        assert row["ess"] > 0
