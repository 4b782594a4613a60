"""Implicit Q-learning over the 12 dose classes (Kostrikov, Nair and Levine 2022), served as its policy.

Three networks learn from logged transitions (s, a, r, s', discount) only, never asking the value of a
dose the physicians did not give:

    V(s)      ← expectile_τ of Q_target(s, a) over logged a        L = |τ − 1(u < 0)| · u²,  u = Q_target(s, a) − V(s)
    Q(s, a)   ← r + discount · V(s')                               (squared error)
    π(a | s)  ← softmax classifier of the logged a, weighted by exp(β · (Q_target(s, a) − V(s))), capped

The expectile τ > 0.5 makes V an optimistic in-sample maximum (τ → 1: the best logged dose); the
advantage weights make the policy imitate the logged doses that did better than usual. The policy
network is what is saved and served (log-probabilities, ``mlp_logits``); its choice is the most
probable allowed dose.
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
from training.policies.config import IQLConfig
from training.policies.dqn import n_step_returns
from training.policies.mlp import MLP, export_mlp


def expectile_loss(differences: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean asymmetric squared error |τ − 1(u < 0)| · u² of u = target − prediction."""
    weight = torch.where(differences < 0, 1.0 - expectile, expectile)
    return (weight * differences.pow(2)).mean()


class IQL(Policy):
    """Expectile value, in-sample Q and an advantage-weighted policy; the policy is exported."""

    artifact_kind = "mlp_logits"

    def __init__(self, config: IQLConfig, n_features: int) -> None:
        if not 0.0 < config.expectile < 1.0:
            raise ValueError(f"expectile must lie in (0, 1), got {config.expectile}")
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.q_network = MLP(n_features, config.hidden_sizes)
        self.target_network = copy.deepcopy(self.q_network)
        self.value_network = MLP(n_features, config.hidden_sizes, 1)
        self.policy_network = MLP(n_features, config.hidden_sizes)
        self.optimizer = torch.optim.Adam([*self.q_network.parameters(), *self.value_network.parameters(),
                                           *self.policy_network.parameters()], lr=config.learning_rate)
        self.history = TrainingHistory()

    def loss(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_states: torch.Tensor,
             discounts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Value, Q and policy losses summed (each network only moves with its own term); returns (loss, Q(s,a))."""
        config = self.config
        with torch.no_grad():
            q_target = self.target_network(states).gather(1, actions[:, None]).squeeze(1)
        value = self.value_network(states).squeeze(1)
        value_loss = expectile_loss(q_target - value, config.expectile)
        with torch.no_grad():
            y = rewards + discounts * self.value_network(next_states).squeeze(1)
            weights = torch.exp(config.beta * (q_target - value.detach())).clamp(max=config.max_weight)
        q_taken = self.q_network(states).gather(1, actions[:, None]).squeeze(1)
        q_loss = F.mse_loss(q_taken, y)
        log_probs = torch.log_softmax(self.policy_network(states), dim=1).gather(1, actions[:, None]).squeeze(1)
        policy_loss = -(weights * log_probs).mean()
        return value_loss + q_loss + policy_loss, q_taken

    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        config = self.config
        torch.set_num_threads(config.threads)
        rows = data.transition_rows
        if len(rows) == 0:
            raise ValueError("no transitions to learn from (every patient has a single visit)")
        returns, boot, discount = n_step_returns(data, rows, 1, config.gamma)
        states = torch.as_tensor(data.states[rows])
        next_states = torch.as_tensor(data.states[boot])
        actions = torch.as_tensor(data.actions[rows])
        rewards = torch.as_tensor(returns * config.reward_scale, dtype=torch.float32)
        discounts = torch.as_tensor(discount, dtype=torch.float32)
        generator = torch.Generator().manual_seed(config.seed)
        parameters = [*self.q_network.parameters(), *self.value_network.parameters(), *self.policy_network.parameters()]
        window_loss, window_q, window_n = 0.0, 0.0, 0
        started = time.perf_counter()
        bar = progress_bar(config.steps, progress, f"train {config.name}")
        for step in range(1, config.steps + 1):
            batch = torch.randint(len(rows), (config.batch_size,), generator=generator)
            loss, q_taken = self.loss(states[batch], actions[batch], rewards[batch], next_states[batch], discounts[batch])
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.gradient_clip)
            self.optimizer.step()
            if step % config.target_update_period == 0:
                self.target_network.load_state_dict(self.q_network.state_dict())
            window_loss += float(loss.detach())
            window_q += float(q_taken.detach().mean())
            window_n += 1
            if step % config.log_every == 0 or step == config.steps:
                self.history.steps.append(self.history.total_steps + step)
                self.history.loss.append(window_loss / window_n)
                self.history.mean_q.append(window_q / window_n / config.reward_scale)
                window_loss, window_q, window_n = 0.0, 0.0, 0
                bar.update(step - bar.n)
        bar.close()
        self.history.seconds += time.perf_counter() - started
        self.history.total_steps += config.steps
        return self.history

    def scores(self, states: np.ndarray) -> np.ndarray:
        """log π(a | s) of the policy network for the 12 classes."""
        with torch.no_grad():
            logits = self.policy_network(torch.as_tensor(np.asarray(states, dtype=np.float32)))
            return torch.log_softmax(logits, dim=1).numpy().astype(np.float64)

    def q_values(self, states: np.ndarray) -> np.ndarray:
        """Q(s, a) on the ±100 reward scale (meaningful for logged doses only)."""
        with torch.no_grad():
            q = self.q_network(torch.as_tensor(np.asarray(states, dtype=np.float32)))
        return q.numpy().astype(np.float64) / self.config.reward_scale

    def export_arrays(self) -> dict[str, np.ndarray]:
        return export_mlp(self.policy_network)

    def torch_state(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict(), "target_network": self.target_network.state_dict(),
                "value_network": self.value_network.state_dict(), "policy_network": self.policy_network.state_dict()}

    def load_torch_state(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.value_network.load_state_dict(state["value_network"])
        self.policy_network.load_state_dict(state["policy_network"])
