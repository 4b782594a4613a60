"""The offline-RL variants: bounded Q-values, n-step and Monte-Carlo targets, ensembles, BCQ's filter, IQL."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fhir_mapping import features
from training.dataset import transitions_from_arrays
from training.inference import masked_argmax, score_bound
from training.policies import make_policy, named_config
from training.policies.dqn import DQN, behaviour_filter, n_step_returns
from training.policies.iql import expectile_loss

from .synthetic import synthetic_raw, synthetic_transitions


@pytest.fixture(scope="module")
def always_best():
    """Long follow-ups where every visit earns the reward's maximum: true Q-values approach 100/(1 − γ) from below."""
    values, observed, s = synthetic_raw(n_patients=20, visits=40, seed=1)
    imputation = features.Imputation.fit(values, observed)
    states = imputation.transform(values, observed)
    rewards = np.where(s["next_index"] >= 0, 100.0, 0.0)
    return transitions_from_arrays(states, s["actions"], s["masks"], rewards, s["next_index"], s["dones"], s["patient"], s["step"])


def _beyond(policy, data) -> tuple[float, float]:
    """(share of states with an allowed score beyond ±100/(1 − γ), the largest |allowed score|)."""
    scores = np.where(data.masks, np.abs(policy.scores(data.states)), 0.0).max(axis=1)
    return float(np.mean(scores > score_bound(0.9))), float(scores.max())


@pytest.mark.slow
def test_bounded_targets_keep_q_values_within_what_the_reward_can_reach(always_best):
    """Unclipped double DQN over-estimates far beyond ±1000 on most states, bounded targets only just beyond it where the
    true value approaches the bound itself, and the clamped head never."""
    from training.inference import mlp_forward

    double = named_config("double", steps=3000)
    unbounded = make_policy(double, always_best.states.shape[1])
    unbounded.fit(always_best)
    bounded_config = dataclasses.replace(double, bounded_targets=True, bound_weight=1.0)
    bounded = make_policy(bounded_config, always_best.states.shape[1])
    bounded.fit(always_best)
    share_unbounded, largest_unbounded = _beyond(unbounded, always_best)
    share_bounded, largest_bounded = _beyond(bounded, always_best)
    assert share_unbounded > 0.5 and largest_unbounded > 1.3 * score_bound(0.9)
    assert share_bounded < share_unbounded / 4
    assert largest_bounded - score_bound(0.9) < (largest_unbounded - score_bound(0.9)) / 2
    clamped = make_policy(dataclasses.replace(bounded_config, output_bound=True), always_best.states.shape[1])
    clamped.load_torch_state(bounded.torch_state())
    arrays = clamped.export_arrays()
    layers = [(arrays[f"layer{i}.weight"], arrays[f"layer{i}.bias"]) for i in range(len(arrays) // 2)]
    served = mlp_forward(layers, always_best.states)
    assert np.abs(served).max() <= score_bound(0.9)  # float32 rounding included: the service checks exactly this
    inside = np.abs(bounded.scores(always_best.states)) < score_bound(0.9) - 1.0
    assert np.allclose(served[inside], bounded.scores(always_best.states)[inside], atol=1e-2)  # the clamp changes nothing inside
    assert np.allclose(clamped.scores(always_best.states), served, atol=1e-2)


def test_bounded_target_never_exceeds_the_bound():
    """A target network scoring 5,000 on the ±100 scale bootstraps at most 100/(1 − γ)."""
    policy = DQN(dataclasses.replace(named_config("double", steps=1), bounded_targets=True), 3)  # type: ignore[arg-type]
    with torch.no_grad():
        last = policy.target_network.layers[-1]
        last.weight.zero_()
        last.bias.fill_(50.0)  # 5,000 after the 0.01 reward scale
    target = policy.compute_target(torch.full((2,), 1.0), torch.randn(2, 3), torch.ones(2, 12, dtype=torch.bool),
                                   torch.full((2,), 0.9))
    assert torch.allclose(target, torch.full((2,), score_bound(0.9) * 0.01))


def _chain(rewards, dones):
    """One patient's visits in order: row i leads to row i + 1; the last row has no outcome."""
    n = len(rewards) + 1
    states = np.zeros((n, 2), np.float32)
    next_index = np.append(np.arange(1, n), -1)
    return transitions_from_arrays(states, np.zeros(n, int), np.ones((n, 12), bool), np.append(rewards, 0.0), next_index,
                                   np.append(dones, 0.0), np.zeros(n, int), np.arange(n))


def test_n_step_returns_sum_logged_rewards_then_bootstrap():
    """Two-step targets on a chain of three transitions (the third ends follow-up), and the Monte-Carlo return."""
    data = _chain([10.0, 20.0, 30.0], [0.0, 0.0, 1.0])
    rows = data.transition_rows
    returns, boot, discount = n_step_returns(data, rows, 2, 0.9)
    assert np.allclose(returns, [10 + 0.9 * 20, 20 + 0.9 * 30, 30])
    assert list(boot) == [2, 3, 3]
    assert np.allclose(discount, [0.81, 0.0, 0.0])
    returns, boot, discount = n_step_returns(data, rows, 0, 0.9)
    assert np.allclose(returns, [10 + 0.9 * 20 + 0.81 * 30, 20 + 0.9 * 30, 30])
    assert np.allclose(discount, 0.0)
    one_step, boot, discount = n_step_returns(data, rows, 1, 0.9)
    assert np.allclose(one_step, [10, 20, 30]) and list(boot) == [1, 2, 3] and np.allclose(discount, [0.9, 0.9, 0.0])


def test_n_step_returns_bootstrap_where_a_trajectory_is_cut():
    """A trajectory cut without a terminal visit (an unreadable dose) bootstraps from the last visit reached."""
    data = _chain([10.0, 20.0], [0.0, 0.0])
    returns, boot, discount = n_step_returns(data, data.transition_rows, 0, 0.9)
    assert np.allclose(returns, [10 + 0.9 * 20, 20]) and list(boot) == [2, 2] and np.allclose(discount, [0.81, 0.9])


def test_ensemble_target_takes_the_lowest_head():
    """With three heads scoring 1, 2 and 3 for every dose, the target bootstraps from 1."""
    policy = DQN(dataclasses.replace(named_config("paper", steps=1), ensemble=3), 3)  # type: ignore[arg-type]
    with torch.no_grad():
        last = policy.target_network.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.repeat_interleave(torch.tensor([1.0, 2.0, 3.0]), 12))
    target = policy.compute_target(torch.zeros(2), torch.randn(2, 3), torch.ones(2, 12, dtype=torch.bool), torch.full((2,), 0.9))
    assert torch.allclose(target, torch.full((2,), 0.9))


def test_behaviour_filter_never_keeps_a_dose_below_the_threshold():
    """Every dose the filter keeps is allowed and at least τ times as probable as the best allowed dose; the best is kept."""
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(500, 12))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    masks = rng.random((500, 12)) < 0.6
    masks[:, 0] = True
    kept = behaviour_filter(log_probs, masks, 0.3)
    probs = np.exp(log_probs)
    best = np.where(masks, probs, 0.0).max(axis=1, keepdims=True)
    assert not (kept & ~masks).any()
    assert (probs[kept] >= 0.3 * np.broadcast_to(best, probs.shape)[kept] - 1e-12).all()
    assert kept[np.arange(500), np.where(masks, probs, -1.0).argmax(axis=1)].all()
    chosen = masked_argmax(rng.normal(size=(500, 12)), kept)
    assert (probs[np.arange(500), chosen] >= 0.3 * best[:, 0] - 1e-12).all()
    assert ((~kept) & masks).any()  # the threshold removed something: the test can fail


@pytest.mark.slow
def test_bcq_targets_ignore_doses_the_physicians_rarely_give():
    """A BCQ model's bootstrap never uses a next dose outside its behaviour filter (checked on the training states)."""
    data, _ = synthetic_transitions(n_patients=20, visits=5)
    policy = make_policy(named_config("light_bcq", steps=20), data.states.shape[1])
    assert isinstance(policy, DQN)
    log_probs = policy.behaviour_log_probs(data, None)
    kept = behaviour_filter(log_probs, data.masks, 0.3)
    assert (kept.sum(axis=1) < data.masks.sum(axis=1)).any()
    with torch.no_grad():
        last = policy.target_network.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.arange(12, dtype=torch.float32))
    target = policy.compute_target(torch.zeros(len(data)), torch.as_tensor(data.states), torch.as_tensor(kept),
                                   torch.full((len(data),), 1.0))
    best_kept = np.where(kept, np.arange(12), -1).max(axis=1)
    assert np.allclose(target.numpy(), best_kept)


def test_expectile_loss_is_minimised_at_the_expectile():
    """For the values {0, 1}: τ = 0.5 gives the mean 0.5, τ = 0.9 gives 0.9 (0.9·(1 − m) = 0.1·m)."""
    values = torch.tensor([0.0, 1.0])
    grid = torch.linspace(0.0, 1.0, 1001)
    for expectile, expected in ((0.5, 0.5), (0.9, 0.9), (0.2, 0.2)):
        losses = torch.stack([expectile_loss(values - m, expectile) for m in grid])
        assert float(grid[losses.argmin()]) == pytest.approx(expected, abs=1e-3)
    assert float(expectile_loss(torch.tensor([2.0]), 0.9)) == pytest.approx(0.9 * 4.0)
    assert float(expectile_loss(torch.tensor([-2.0]), 0.9)) == pytest.approx(0.1 * 4.0)


@pytest.mark.slow
def test_iql_chooses_the_better_logged_dose_where_behaviour_cloning_copies_the_usual_one():
    """Physicians give class 6 (reward −100) 60% of the time and class 2 (+100) 40%: BC copies 6, IQL learns 2."""
    rng = np.random.default_rng(5)
    n_patients, visits = 60, 6
    n = n_patients * visits
    states = rng.normal(scale=0.01, size=(n, 4)).astype(np.float32)  # nothing to tell visits apart
    actions = np.where(rng.random(n) < 0.6, 6, 2)
    step = np.tile(np.arange(visits), n_patients)
    last = step == visits - 1
    rewards = np.where(last, 0.0, np.where(actions == 2, 100.0, -100.0))
    data = transitions_from_arrays(states, actions, np.ones((n, 12), bool), rewards, np.where(last, -1, np.arange(n) + 1),
                                   (step == visits - 2).astype(float), np.repeat(np.arange(n_patients), visits), step)
    iql = make_policy(named_config("iql", steps=1500), 4)
    iql.fit(data)
    clone = make_policy(named_config("bc", steps=500), 4)
    clone.fit(data)
    assert np.mean(clone.act(data.states, data.masks) == 6) > 0.9
    assert np.mean(iql.act(data.states, data.masks) == 2) > 0.9


def test_semi_mdp_discount_follows_the_days_between_visits():
    """With a 91-day period, a review after 30 days is discounted by 0.9^(30/91), one after 182 days by 0.81, and the
    n-step products multiply the intervals' discounts; without intervals a semi-MDP configuration refuses to train."""
    from training.policies.dqn import transition_discounts

    data = _chain([10.0, 20.0, 30.0], [0.0, 0.0, 1.0])
    data.intervals_days = np.array([30.0, 182.0, 91.0, np.nan])
    assert np.allclose(transition_discounts(data, 0.9, 91.0)[:3], [0.9 ** (30 / 91), 0.81, 0.9])
    returns, _boot, discount = n_step_returns(data, data.transition_rows, 2, 0.9, 91.0)
    assert np.allclose(returns, [10 + 0.9 ** (30 / 91) * 20, 20 + 0.81 * 30, 30])
    assert np.allclose(discount, [0.9 ** (30 / 91) * 0.81, 0.0, 0.0])
    per_visit = n_step_returns(data, data.transition_rows, 2, 0.9)
    assert np.allclose(per_visit[0], [10 + 0.9 * 20, 20 + 0.9 * 30, 30])  # period 0: the intervals are ignored
    data.intervals_days = None
    with pytest.raises(ValueError, match="days between visits"):
        n_step_returns(data, data.transition_rows, 1, 0.9, 91.0)


def test_visit_table_intervals_reach_the_training_transitions():
    """to_transitions carries the days from each visit to the next (NaN on last visits) from the visit dates."""
    from datetime import date

    from fhir_mapping.timeline import PatientTimeline, Visit
    from training.dataset import to_transitions, visit_table

    visits = [Visit(date=day, encounter_id=f"e{i}", seizure_since_last_visit=False) for i, day in
              enumerate([date(2020, 1, 1), date(2020, 1, 31), date(2020, 7, 31)])]
    timeline = PatientTimeline(patient_id="p", birth_date=date(2012, 1, 1), sex="female", visits=visits)
    table = visit_table([timeline])
    imputation = features.Imputation.fit(table.values, table.observed)
    intervals = to_transitions(table, imputation).intervals_days
    assert intervals is not None
    assert intervals[:2].tolist() == [30.0, 182.0] and np.isnan(intervals[2])
