"""The DQN's gradient-step loop learns what the plain textbook loop learns from the same seed.

The loop gathers a minibatch into reused buffers and uses the fused Adam; the reference below is the
loop written plainly (a fresh tensor per field, the per-tensor Adam, ``zero_grad``). Both draw the same
minibatches, so after the same steps their weights and scores agree up to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.policies import named_config
from training.policies.dqn import DQN, make_dqn, n_step_returns

from .synthetic import synthetic_transitions

STEPS = 300


def reference_fit(policy: DQN, data) -> list[float]:
    config = policy.config
    rows = data.transition_rows
    returns, boot, discount = n_step_returns(data, rows, config.n_step, config.gamma)
    states = torch.as_tensor(data.states[rows])
    next_states = torch.as_tensor(data.states[boot])
    actions = torch.as_tensor(data.actions[rows])
    rewards = torch.as_tensor(returns * config.reward_scale, dtype=torch.float32)
    masks = torch.as_tensor(data.masks[rows])
    next_masks = torch.as_tensor(data.masks[boot])
    discounts = torch.as_tensor(discount, dtype=torch.float32)
    optimizer = torch.optim.Adam(policy.q_network.parameters(), lr=config.learning_rate, foreach=False)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    for step in range(1, config.steps + 1):
        batch = torch.randint(len(rows), (config.batch_size,), generator=generator)
        loss, _ = policy.loss(states[batch], actions[batch], rewards[batch], next_states[batch], masks[batch],
                              next_masks[batch], discounts[batch])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.q_network.parameters(), config.gradient_clip)
        optimizer.step()
        if step % config.target_update_period == 0:
            policy.target_network.load_state_dict(policy.q_network.state_dict())
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("name", ["paper", "conservative_light", "light_ensemble", "light_nstep"])
def test_step_loop_learns_what_the_plain_loop_learns(name):
    data, _ = synthetic_transitions(n_patients=30, visits=5)
    config = named_config(name, steps=STEPS, seed=3)
    fast = make_dqn(config, data.states.shape[1])  # type: ignore[arg-type]
    plain = make_dqn(config, data.states.shape[1])  # type: ignore[arg-type]
    history = fast.fit(data)
    losses = reference_fit(plain, data)
    moved = 0.0
    for (key, ours), theirs in zip(fast.q_network.state_dict().items(), plain.q_network.state_dict().values(), strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=2e-5, err_msg=key)
        moved = max(moved, float((ours - make_dqn(config, data.states.shape[1]).q_network.state_dict()[key]).abs().max()))
    assert moved > 1e-3  # the weights did learn: agreement is not two untouched initialisations
    np.testing.assert_allclose(fast.scores(data.states), plain.scores(data.states), rtol=1e-3, atol=1e-4)
    window = config.log_every  # type: ignore[attr-defined]
    expected = [float(np.mean(losses[i:i + window])) for i in range(0, STEPS, window)]
    np.testing.assert_allclose(history.loss, expected, rtol=1e-4)


def test_the_in_place_relu_gives_the_out_of_place_gradients() -> None:
    """MLP's ReLU works in place; its outputs and every parameter's gradient equal the plain layers' exactly."""
    from training.policies.mlp import MLP

    torch.manual_seed(3)
    network = MLP(20, (32, 16), 12)
    x = torch.randn(64, 20)
    out = network(x)
    (out ** 2).sum().backward()
    ours = [p.grad.clone() for p in network.parameters()]
    network.zero_grad()
    h = x
    for layer in network.layers[:-1]:
        h = torch.relu(layer(h))
    reference = network.layers[-1](h)
    (reference ** 2).sum().backward()
    assert torch.equal(out, reference)
    assert all(torch.equal(a, p.grad) for a, p in zip(ours, network.parameters(), strict=True))
