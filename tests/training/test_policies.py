"""Contract tests for every policy: train a little, save, load (numpy and training loaders), same actions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.artifact.save import load_policy, save_model
from training.evaluation.agreement import safety_violations
from training.inference import load_inference_model, masked_argmax
from training.policies import CONFIGS, DQNConfig, config_from_json, make_policy, named_config

from .synthetic import synthetic_transitions

POLICIES = ("paper", "double", "conservative", "light_bounded", "light_ensemble", "light_nstep", "iql", "bc", "forest")


@pytest.fixture(scope="module")
def toy():
    return synthetic_transitions(n_patients=30, visits=5)


@pytest.mark.parametrize("name", POLICIES)
def test_policy_contract_save_load_same_actions(name, toy, tmp_path):
    """A policy trained a few hundred steps chooses the same doses after a numpy load and a training load."""
    data, imputation = toy
    config = named_config(name, steps=200)
    if name == "forest":
        config = type(config)(n_estimators=10, max_depth=6)
    policy = make_policy(config, data.states.shape[1])
    policy.fit(data)
    before = policy.act(data.states, data.masks)
    save_model(tmp_path / "model", policy, imputation=imputation, train=data)
    served = load_inference_model(tmp_path / "model")
    reloaded, metadata = load_policy(tmp_path / "model")
    assert np.array_equal(masked_argmax(served.scores(data.states), data.masks), before)
    assert np.array_equal(reloaded.act(data.states, data.masks), before)
    assert np.allclose(served.scores(data.states), policy.scores(data.states), atol=1e-3)
    assert served.config_name == config.name and metadata["kind"] == policy.artifact_kind
    assert safety_violations(before, data.masks) == 0


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_respects_label_bounds_when_unmasked_argmax_would_not(name, toy):
    """With only 0 g allowed, every policy recommends 0 g although its scores may prefer another dose."""
    data, _ = toy
    config = named_config(name, steps=50)
    if name == "forest":
        config = type(config)(n_estimators=5, max_depth=4)
    policy = make_policy(config, data.states.shape[1])
    policy.fit(data)
    only_zero = np.zeros_like(data.masks)
    only_zero[:, 0] = True
    assert (policy.scores(data.states).argmax(axis=1) != 0).any()
    assert safety_violations(policy.act(data.states, only_zero), only_zero) == 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configuration_json_round_trip(name):
    """Every configuration survives a JSON round trip unchanged (it is saved inside every model)."""
    config = CONFIGS[name]
    assert config_from_json(json.dumps(config.to_json())) == config


def test_paper_configuration_follows_the_published_method():
    """The paper configuration trains 20,000 iterations on the raw ±100 reward scale without a CQL penalty."""
    paper = CONFIGS["paper"]
    assert isinstance(paper, DQNConfig)
    assert paper.steps == 20_000
    assert paper.reward_scale == 1.0 and paper.cql_alpha == 0.0


def test_double_dqn_target_uses_online_argmax():
    """Double DQN values the online network's best allowed next dose with the target network."""
    import torch

    from training.policies.dqn import DoubleDQN

    policy = DoubleDQN(named_config("double", steps=1), 3)  # type: ignore[arg-type]
    with torch.no_grad():
        for layer in policy.target_network.layers:
            layer.weight.normal_()
    next_states = torch.randn(4, 3)
    masks = torch.ones(4, 12, dtype=torch.bool)
    target = policy.compute_target(torch.zeros(4), next_states, masks, torch.full((4,), 0.9))
    chosen = policy.q_network(next_states).argmax(dim=1)
    expected = 0.9 * policy.target_network(next_states).gather(1, chosen[:, None]).squeeze(1)
    assert torch.allclose(target, expected.detach())


def test_dqn_target_ignores_masked_next_doses():
    """The bootstrap maximum runs over allowed next doses only, so a huge masked Q-value cannot leak in."""
    import torch

    from training.policies.dqn import DQN

    policy = DQN(named_config("paper", steps=1), 3)  # type: ignore[arg-type]
    with torch.no_grad():
        last = policy.target_network.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.arange(12, dtype=torch.float32))
    masks = torch.zeros(2, 12, dtype=torch.bool)
    masks[:, :4] = True
    target = policy.compute_target(torch.zeros(2), torch.randn(2, 3), masks, torch.full((2,), 0.9))
    assert torch.allclose(target, torch.full((2,), 0.9 * 3.0))


def test_conservative_penalty_lowers_unlogged_q_values(toy):
    """The CQL penalty makes Q-values of doses physicians never chose lower than without it."""
    data, _ = toy
    plain = make_policy(named_config("double", steps=300), data.states.shape[1])
    conservative = make_policy(named_config("conservative", steps=300), data.states.shape[1])
    plain.fit(data)
    conservative.fit(data)
    unlogged = np.ones((len(data), 12), bool)
    unlogged[np.arange(len(data)), data.actions] = False
    gap_plain = plain.scores(data.states)[unlogged].mean() - plain.scores(data.states)[~unlogged].mean()
    gap_conservative = (conservative.scores(data.states)[unlogged].mean()
                        - conservative.scores(data.states)[~unlogged].mean())
    assert gap_conservative < gap_plain


def test_conservative_dqn_adds_only_the_penalty_to_the_double_dqn_loss(toy):
    """ConservativeDQN's loss is Double DQN's TD loss plus α·(logsumexp over allowed doses − Q of the logged dose)."""
    import torch

    from training.policies.dqn import ConservativeDQN, DoubleDQN

    data, _ = toy
    config = named_config("conservative", steps=1)
    conservative = make_policy(config, data.states.shape[1])
    assert type(conservative) is ConservativeDQN and isinstance(conservative, DoubleDQN)
    rows = data.transition_rows[:32]
    states = torch.as_tensor(data.states[rows])
    actions = torch.as_tensor(data.actions[rows])
    masks = torch.as_tensor(data.masks[rows])
    batch = (states, actions, torch.as_tensor(data.rewards[rows], dtype=torch.float32) * 0.01,
             torch.as_tensor(data.states[data.next_index[rows]]), masks,
             torch.as_tensor(data.masks[data.next_index[rows]]), torch.full((len(rows),), 0.9))
    loss, _ = conservative.loss(*batch)
    td, _ = DoubleDQN.loss(conservative, *batch)
    q = conservative.q_network(states)
    allowed = masks | torch.nn.functional.one_hot(actions, 12).bool()
    penalty = (torch.logsumexp(q.masked_fill(~allowed, -torch.inf), dim=1) - q.gather(1, actions[:, None]).squeeze(1)).mean()
    assert torch.allclose(loss, td + config.cql_alpha * penalty)  # type: ignore[union-attr]


def test_a_saved_double_configuration_with_a_penalty_reads_as_conservative():
    """Models saved when "conservative" was Double DQN with cql_alpha > 0 rebuild the conservative learner."""
    saved = {**CONFIGS["conservative_light"].to_json(), "algorithm": "double"}
    config = config_from_json(saved)
    assert config == CONFIGS["conservative_light"] and config.algorithm == "conservative"  # type: ignore[union-attr]
    assert config_from_json(CONFIGS["double"].to_json()).algorithm == "double"  # type: ignore[union-attr]


@pytest.mark.parametrize("algorithm, alpha", [("double", 0.5), ("dqn", 1.0), ("conservative", 0.0), ("cql", 1.0)])
def test_a_penalty_without_the_conservative_learner_is_refused(algorithm, alpha):
    """The penalty belongs to "conservative" alone, and "conservative" needs one: no unnamed variant."""
    with pytest.raises(ValueError, match="algorithm"):
        DQNConfig(algorithm=algorithm, cql_alpha=alpha)
