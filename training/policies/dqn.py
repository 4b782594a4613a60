"""Offline deep Q-learning over the 12 dose classes, readable top to bottom (after CleanRL's dqn.py).

Q(s, a) estimates the discounted sum of published rewards (../shared/domain.md §1) after choosing
dose class a in state s. One gradient step on a minibatch of logged transitions (s, a, r, s', done):

    y      = r + γ · (1 − done) · max_{a' allowed in s'} Q_target(s', a')        (Mnih et al. 2015)
    loss   = Huber(Q(s, a) − y)

with the target network copied from the online network every ``target_update_period`` steps.
Doses outside the label bounds of s' are excluded from the max (the safety mask in the target), and
the greedy choice is an argmax over allowed doses only.

Variants change one method each:
* :class:`DoubleDQN` (van Hasselt et al. 2016): y = r + γ(1 − done) Q_target(s', argmax_{a' allowed} Q(s', a'));
* ``cql_alpha > 0`` (Kumar et al. 2020, CQL(H)): adds α·(logsumexp_{a allowed} Q(s, a) − Q(s, a_logged)),
  which pushes down Q-values of doses the physicians did not choose, so the learnt policy stays
  where the data has support.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.dataset import Transitions
from training.policies.base import Policy, TrainingHistory, progress_bar
from training.policies.config import DQNConfig
from training.policies.mlp import MLP, export_mlp


class DQN(Policy):
    """DQN with a target network, Huber loss and Adam; masks in the target and at prediction."""

    artifact_kind = "mlp_q"

    def __init__(self, config: DQNConfig, n_features: int) -> None:
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.q_network = MLP(n_features, config.hidden_sizes)
        self.target_network = copy.deepcopy(self.q_network)
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.learning_rate)
        self.history = TrainingHistory()

    def compute_target(self, rewards: torch.Tensor, next_states: torch.Tensor, next_masks: torch.Tensor,
                       dones: torch.Tensor) -> torch.Tensor:
        """y = r + γ (1 − done) max over allowed a' of Q_target(s', a')."""
        with torch.no_grad():
            next_q = self.target_network(next_states).masked_fill(~next_masks, -torch.inf)
            target_max = next_q.max(dim=1).values
            return rewards + self.config.gamma * target_max * (1.0 - dones)

    def loss(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_states: torch.Tensor,
             masks: torch.Tensor, next_masks: torch.Tensor, dones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Huber TD loss, plus the conservative penalty when ``cql_alpha > 0``; returns (loss, Q(s,a))."""
        td_target = self.compute_target(rewards, next_states, next_masks, dones)
        q_all = self.q_network(states)
        q_taken = q_all.gather(1, actions[:, None]).squeeze(1)
        loss = F.huber_loss(q_taken, td_target, delta=self.config.huber_delta)
        if self.config.cql_alpha > 0:
            # Allowed doses plus the logged one (a physician may have gone beyond the label).
            support = masks | F.one_hot(actions, q_all.shape[1]).bool()
            logsumexp = torch.logsumexp(q_all.masked_fill(~support, -torch.inf), dim=1)
            loss = loss + self.config.cql_alpha * (logsumexp - q_taken).mean()
        return loss, q_taken

    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        config = self.config
        torch.set_num_threads(config.threads)
        rows = data.transition_rows
        if len(rows) == 0:
            raise ValueError("no transitions to learn from (every patient has a single visit)")
        states = torch.as_tensor(data.states[rows])
        next_states = torch.as_tensor(data.next_states(rows))
        actions = torch.as_tensor(data.actions[rows])
        rewards = torch.as_tensor(data.rewards[rows] * config.reward_scale, dtype=torch.float32)
        masks = torch.as_tensor(data.masks[rows])
        next_masks = torch.as_tensor(data.next_masks(rows))
        dones = torch.as_tensor(data.dones[rows])
        generator = torch.Generator().manual_seed(config.seed)
        history = self.history
        window_loss, window_q, window_n = 0.0, 0.0, 0
        started = time.perf_counter()
        bar = progress_bar(config.steps, progress, f"train {config.name}")
        for step in range(1, config.steps + 1):
            batch = torch.randint(len(rows), (config.batch_size,), generator=generator)
            loss, q_taken = self.loss(states[batch], actions[batch], rewards[batch], next_states[batch],
                                      masks[batch], next_masks[batch], dones[batch])
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.q_network.parameters(), config.gradient_clip)
            self.optimizer.step()
            if step % config.target_update_period == 0:
                self.target_network.load_state_dict(self.q_network.state_dict())
            window_loss += float(loss.detach())
            window_q += float(q_taken.detach().mean())
            window_n += 1
            if step % config.log_every == 0 or step == config.steps:
                history.steps.append(history.total_steps + step)
                history.loss.append(window_loss / window_n)
                history.mean_q.append(window_q / window_n / config.reward_scale)
                window_loss, window_q, window_n = 0.0, 0.0, 0
                bar.update(step - bar.n)
        bar.close()
        history.seconds += time.perf_counter() - started
        history.total_steps += config.steps
        return history

    def scores(self, states: np.ndarray) -> np.ndarray:
        """Q-values on the published ±100 reward scale."""
        with torch.no_grad():
            q = self.q_network(torch.as_tensor(np.asarray(states, dtype=np.float32)))
        return q.numpy().astype(np.float64) / self.config.reward_scale

    def export_arrays(self) -> dict[str, np.ndarray]:
        return export_mlp(self.q_network, output_scale=1.0 / self.config.reward_scale)

    def torch_state(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict(), "target_network": self.target_network.state_dict()}

    def load_torch_state(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])


class DoubleDQN(DQN):
    """Double DQN: the online network picks the next dose, the target network values it."""

    def compute_target(self, rewards: torch.Tensor, next_states: torch.Tensor, next_masks: torch.Tensor,
                       dones: torch.Tensor) -> torch.Tensor:
        """y = r + γ (1 − done) Q_target(s', argmax over allowed a' of Q(s', a'))."""
        with torch.no_grad():
            next_actions = self.q_network(next_states).masked_fill(~next_masks, -torch.inf).argmax(dim=1)
            target_q = self.target_network(next_states).gather(1, next_actions[:, None]).squeeze(1)
            return rewards + self.config.gamma * target_q * (1.0 - dones)


def make_dqn(config: DQNConfig, n_features: int) -> DQN:
    """The DQN class the configuration's ``algorithm`` names."""
    if config.algorithm == "double":
        return DoubleDQN(config, n_features)
    if config.algorithm == "dqn":
        return DQN(config, n_features)
    raise ValueError(f"unknown DQN algorithm {config.algorithm!r}")
