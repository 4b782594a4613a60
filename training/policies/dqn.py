"""Offline deep Q-learning over the 12 dose classes, readable top to bottom (after CleanRL's dqn.py).

Q(s, a) estimates the discounted sum of published rewards (../shared/domain.md §1) after choosing
dose class a in state s. One gradient step on a minibatch of logged transitions (s, a, r, s', done):

    y      = r + γ · (1 − done) · max_{a' allowed in s'} Q_target(s', a')        (Mnih et al. 2015)
    loss   = Huber(Q(s, a) − y)

with the target network copied from the online network every ``target_update_period`` steps.
Doses outside the label bounds of s' are excluded from the max (the safety mask in the target), and
the greedy choice is an argmax over allowed doses only.

Variants change one method each:
* :class:`DoubleDQN` (van Hasselt et al. 2016) overrides ``compute_target``:
  y = r + γ(1 − done) Q_target(s', argmax_{a' allowed} Q(s', a'));
* :class:`ConservativeDQN` (Kumar et al. 2020, CQL(H)) is a Double DQN overriding ``loss``: it adds
  α·(logsumexp_{a allowed} Q(s, a) − Q(s, a_logged)), which pushes down Q-values of doses the physicians
  did not choose, so the learnt policy stays where the data has support;
* ``bounded_targets`` clips bootstrapped values and targets to ±100/(1 − γ), the most a discounted sum of
  rewards bounded by ±100 can reach (a larger Q-value is an over-estimate); ``bound_weight`` also
  penalises allowed doses' Q-values beyond it, and ``output_bound`` clamps the scores to it inside the
  exported network (clamp(z, −B, B) = relu(z + B) − relu(z − B) − B, two ReLU layers the numpy forward
  pass of training.inference runs as it is);
* ``n_step`` sums n logged rewards before bootstrapping (0: the logged return to the end of follow-up);
* ``discount_period_days`` discounts by elapsed time (semi-MDP): γ^(Δt / period) for a next visit Δt days on;
* ``ensemble`` K heads: the target takes the lowest head (pessimism where the heads disagree), the
  scores are the heads' mean (exported as one network);
* ``bcq_threshold`` τ (discrete BCQ, Fujimoto et al. 2019): next doses enter the target only when a
  behaviour-cloning model gives them at least τ times the probability of the most probable allowed dose.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fhir_mapping.dosing import N_DOSE_CLASSES
from training.dataset import Transitions
from training.inference import score_bound
from training.policies.base import Policy, TrainingHistory, progress_bar
from training.policies.config import BCConfig, DQNConfig
from training.policies.mlp import MLP, export_mlp

# The clamp head stops this far (on the ±100 scale) inside the bound: its float32 layers round by about
# 1e-4 near ±1000, and the service abstains on any score beyond the bound, however slightly.
CLAMP_MARGIN = 0.01


def n_step_returns(data: Transitions, rows: np.ndarray, n: int, gamma: float,
                   period_days: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(discounted sum of up to n logged rewards, row to bootstrap from, its discount or 0 at the end).

    n = 0 follows every trajectory to its end (the Monte-Carlo return of the logged doses). A trajectory
    cut without a terminal visit (an unreadable dose) bootstraps from the last visit reached. The discount
    is γ per visit, or with ``period_days`` > 0 γ^(Δt / period_days) per transition of Δt days (semi-MDP).
    """
    rows = np.asarray(rows, dtype=np.int64)
    step_discount = transition_discounts(data, gamma, period_days)
    returns = data.rewards[rows].astype(np.float64)
    boot = data.next_index[rows].copy()
    discount = step_discount[rows].copy()
    ended = data.dones[rows] > 0
    limit = n if n > 0 else len(data) + 1
    for _ in range(1, limit):
        going = ~ended & (data.next_index[boot] >= 0)
        if not going.any():
            break
        here = boot[going]
        returns[going] += discount[going] * data.rewards[here]
        discount[going] *= step_discount[here]
        ended[going] = data.dones[here] > 0
        boot[going] = data.next_index[here]
    return returns, boot, np.where(ended, 0.0, discount)


def transition_discounts(data: Transitions, gamma: float, period_days: float = 0.0) -> np.ndarray:
    """The discount of each row's transition: γ, or γ^(Δt / period_days) with Δt the days to the next visit."""
    if period_days <= 0:
        return np.full(len(data), gamma)
    if data.intervals_days is None:
        raise ValueError("a semi-MDP discount needs the days between visits, which these transitions lack")
    return np.where(data.next_index >= 0, gamma ** (np.nan_to_num(data.intervals_days, nan=0.0) / period_days), 0.0)


def clamp_layers(weight: np.ndarray, bias: np.ndarray, index: int, bound: float) -> dict[str, np.ndarray]:
    """Output layer ``index`` (z = W h + b) followed by clamp(z, −bound, bound), as two layers of a ReLU network.

    Layer ``index`` computes [z + bound, z − bound] (ReLU follows), layer ``index + 1`` subtracts them:
    relu(z + B) − relu(z − B) − B is z inside [−B, B], B above and −B below.
    """
    n = weight.shape[0]
    return {f"layer{index}.weight": np.concatenate([weight, weight]).astype(np.float32),
            f"layer{index}.bias": np.concatenate([bias + bound, bias - bound]).astype(np.float32),
            f"layer{index + 1}.weight": np.concatenate([np.eye(n), -np.eye(n)], axis=1).astype(np.float32),
            f"layer{index + 1}.bias": np.full(n, -bound, np.float32)}


def behaviour_filter(log_probs: np.ndarray, masks: np.ndarray, threshold: float) -> np.ndarray:
    """Allowed doses whose behaviour probability is at least ``threshold`` × the best allowed dose's.

    Never empty where something is allowed: the most probable allowed dose always passes.
    """
    allowed_log_probs = np.where(masks, log_probs, -np.inf)
    best = allowed_log_probs.max(axis=1, keepdims=True)
    return masks & (allowed_log_probs >= best + np.log(threshold))


class DQN(Policy):
    """DQN with a target network, Huber loss and Adam; masks in the target and at prediction."""

    artifact_kind = "mlp_q"

    def __init__(self, config: DQNConfig, n_features: int) -> None:
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        if config.ensemble < 1:
            raise ValueError(f"ensemble needs at least one head, got {config.ensemble}")
        self.heads = config.ensemble
        self.q_network = MLP(n_features, config.hidden_sizes, N_DOSE_CLASSES * config.ensemble)
        self.target_network = copy.deepcopy(self.q_network)
        # The reachable range of a Q-value in training units (rewards scaled by reward_scale).
        self.bound = score_bound(config.gamma) * config.reward_scale
        # fused: one kernel over every parameter instead of a Python loop of six ops per tensor (a fifth of
        # a gradient step at batch 256); the same update up to float rounding.
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.learning_rate, fused=True)
        self.history = TrainingHistory()

    def head_values(self, network: MLP, states: torch.Tensor) -> torch.Tensor:
        """Q-values of every head, shape (n, heads, 12)."""
        return network(states).view(states.shape[0], self.heads, N_DOSE_CLASSES)

    def pessimistic(self, network: MLP, states: torch.Tensor) -> torch.Tensor:
        """The lowest head's Q-value per dose (the only head with one head), shape (n, 12)."""
        if self.heads == 1:
            return network(states)  # the minimum of one head is that head: skip the reduction each step
        return self.head_values(network, states).min(dim=1).values

    def online(self, states: torch.Tensor) -> torch.Tensor:
        """The heads' mean Q-value per dose, what the policy chooses by, shape (n, 12)."""
        if self.heads == 1:
            return self.q_network(states)
        return self.head_values(self.q_network, states).mean(dim=1)

    def bounded(self, values: torch.Tensor) -> torch.Tensor:
        """Values clipped to the reachable range when ``bounded_targets`` is set."""
        return values.clamp(-self.bound, self.bound) if self.config.bounded_targets else values

    def compute_target(self, rewards: torch.Tensor, next_states: torch.Tensor, next_masks: torch.Tensor,
                       discounts: torch.Tensor) -> torch.Tensor:
        """y = r + discount · max over allowed a' of Q_target(s', a') (discount γᵏ, 0 at the end of follow-up)."""
        with torch.no_grad():
            next_q = self.pessimistic(self.target_network, next_states).masked_fill(~next_masks, -torch.inf)
            target_max = self.bounded(next_q.max(dim=1).values)
            return self.bounded(rewards + discounts * target_max)

    def td_loss(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_states: torch.Tensor,
                next_masks: torch.Tensor, discounts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Huber TD loss of every head against :meth:`compute_target`; returns (loss, Q(s, ·) per head, Q(s, a) per head)."""
        td_target = self.compute_target(rewards, next_states, next_masks, discounts)
        q_heads = self.head_values(self.q_network, states)
        index = actions[:, None, None].expand(-1, self.heads, 1)
        q_taken = q_heads.gather(2, index).squeeze(2)  # (n, heads)
        loss = F.huber_loss(q_taken, td_target[:, None].expand_as(q_taken), delta=self.config.huber_delta)
        return loss, q_heads, q_taken

    def with_bound_penalty(self, loss: torch.Tensor, q_heads: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``loss`` plus the squared excess of allowed doses' Q-values beyond the bound, when ``bound_weight`` is set."""
        if self.config.bound_weight <= 0:
            return loss
        beyond = torch.relu(q_heads.abs() - self.bound) * masks[:, None, :]
        return loss + self.config.bound_weight * beyond.pow(2).sum(dim=2).mean()

    def loss(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_states: torch.Tensor,
             masks: torch.Tensor, next_masks: torch.Tensor, discounts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Huber TD loss of every head, plus the bound penalty when set; returns (loss, mean Q(s, a) over heads)."""
        loss, q_heads, q_taken = self.td_loss(states, actions, rewards, next_states, next_masks, discounts)
        return self.with_bound_penalty(loss, q_heads, masks), q_taken.mean(dim=1)

    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        config = self.config
        torch.set_num_threads(config.threads)
        rows = data.transition_rows
        if len(rows) == 0:
            raise ValueError("no transitions to learn from (every patient has a single visit)")
        returns, boot, discount = n_step_returns(data, rows, config.n_step, config.gamma, config.discount_period_days)
        bootstrap_masks = data.masks
        if config.bcq_threshold > 0:
            bootstrap_masks = behaviour_filter(self.behaviour_log_probs(data, validation), data.masks, config.bcq_threshold)
        # Every float column of a transition in one matrix and every mask in another, so a minibatch is
        # three row gathers (into buffers reused by every step) instead of seven fresh tensors.
        width = data.states.shape[1]
        floats = torch.as_tensor(np.concatenate(
            [data.states[rows], data.states[boot], (returns * config.reward_scale)[:, None], discount[:, None]],
            axis=1, dtype=np.float32))
        flags = torch.as_tensor(np.concatenate([data.masks[rows], bootstrap_masks[boot]], axis=1))
        actions = torch.as_tensor(data.actions[rows])
        batch_floats = floats.new_empty((config.batch_size, floats.shape[1]))
        batch_flags = flags.new_empty((config.batch_size, flags.shape[1]))
        batch_actions = actions.new_empty(config.batch_size)
        states, next_states = batch_floats[:, :width], batch_floats[:, width:2 * width]
        rewards, discounts = batch_floats[:, 2 * width], batch_floats[:, 2 * width + 1]
        masks, next_masks = batch_flags[:, :N_DOSE_CLASSES], batch_flags[:, N_DOSE_CLASSES:]
        generator = torch.Generator().manual_seed(config.seed)
        parameters = list(self.q_network.parameters())
        history = self.history
        window_loss, window_q, window_n = 0.0, 0.0, 0
        started = time.perf_counter()
        bar = progress_bar(config.steps, progress, f"train {config.name}")
        for step in range(1, config.steps + 1):
            batch = torch.randint(len(rows), (config.batch_size,), generator=generator)
            torch.index_select(floats, 0, batch, out=batch_floats)
            torch.index_select(flags, 0, batch, out=batch_flags)
            torch.index_select(actions, 0, batch, out=batch_actions)
            loss, q_taken = self.loss(states, batch_actions, rewards, next_states, masks, next_masks, discounts)
            for parameter in parameters:  # what zero_grad() does, without its profiler scope on every step
                parameter.grad = None
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.gradient_clip)
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

    def behaviour_log_probs(self, data: Transitions, validation: Transitions | None) -> np.ndarray:
        """log π_b(a | s) of every row from a behaviour-cloning model of the logged doses (BCQ's filter)."""
        from training.policies.bc import BehaviourCloning

        clone = BehaviourCloning(BCConfig(name="behaviour", steps=self.config.behaviour_steps, seed=self.config.seed,
                                          threads=self.config.threads), data.states.shape[1])
        clone.fit(data, validation=validation)
        torch.manual_seed(self.config.seed)
        return clone.scores(data.states)

    def scores(self, states: np.ndarray) -> np.ndarray:
        """Q-values on the published ±100 reward scale (the heads' mean), clamped to the bound with ``output_bound``."""
        with torch.no_grad():
            q = self.online(torch.as_tensor(np.asarray(states, dtype=np.float32)))
            if self.config.output_bound:
                limit = self.bound - CLAMP_MARGIN * self.config.reward_scale
                q = q.clamp(-limit, limit)
        return q.numpy().astype(np.float64) / self.config.reward_scale

    def export_arrays(self) -> dict[str, np.ndarray]:
        arrays = export_mlp(self.q_network, output_scale=1.0 / self.config.reward_scale)
        last = len(self.q_network.layers) - 1
        if self.heads > 1:  # the heads' mean is linear in the last hidden layer: one output layer of 12
            weight, bias = arrays[f"layer{last}.weight"], arrays[f"layer{last}.bias"]
            arrays[f"layer{last}.weight"] = weight.reshape(self.heads, N_DOSE_CLASSES, -1).mean(axis=0)
            arrays[f"layer{last}.bias"] = bias.reshape(self.heads, N_DOSE_CLASSES).mean(axis=0)
        if self.config.output_bound:
            arrays.update(clamp_layers(arrays[f"layer{last}.weight"], arrays[f"layer{last}.bias"], last,
                                       score_bound(self.config.gamma) - CLAMP_MARGIN))
        return arrays

    def torch_state(self) -> dict[str, Any]:
        return {"q_network": self.q_network.state_dict(), "target_network": self.target_network.state_dict()}

    def load_torch_state(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])


class DoubleDQN(DQN):
    """Double DQN: the online network picks the next dose, the target network values it."""

    def compute_target(self, rewards: torch.Tensor, next_states: torch.Tensor, next_masks: torch.Tensor,
                       discounts: torch.Tensor) -> torch.Tensor:
        """y = r + discount · Q_target(s', argmax over allowed a' of Q(s', a'))."""
        with torch.no_grad():
            next_actions = self.online(next_states).masked_fill(~next_masks, -torch.inf).argmax(dim=1)
            target_q = self.pessimistic(self.target_network, next_states).gather(1, next_actions[:, None]).squeeze(1)
            return self.bounded(rewards + discounts * self.bounded(target_q))


class ConservativeDQN(DoubleDQN):
    """Conservative Q-learning on Double DQN targets (Kumar et al. 2020, CQL(H)): only the loss differs.

    loss = TD loss + α·(logsumexp over allowed a of Q(s, a) − Q(s, a_logged)), which pushes down the
    Q-values of doses the physicians did not choose, so the learnt policy stays where the data has support.
    """

    def loss(self, states: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_states: torch.Tensor,
             masks: torch.Tensor, next_masks: torch.Tensor, discounts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The TD loss plus α times the conservative penalty (then the bound penalty when set)."""
        loss, q_heads, q_taken = self.td_loss(states, actions, rewards, next_states, next_masks, discounts)
        # Allowed doses plus the logged one (a physician may have gone beyond the label).
        support = (masks | F.one_hot(actions, N_DOSE_CLASSES).bool())[:, None, :]
        logsumexp = torch.logsumexp(q_heads.masked_fill(~support, -torch.inf), dim=2)
        loss = loss + self.config.cql_alpha * (logsumexp - q_taken).mean()
        return self.with_bound_penalty(loss, q_heads, masks), q_taken.mean(dim=1)


DQN_CLASSES: dict[str, type[DQN]] = {"dqn": DQN, "double": DoubleDQN, "conservative": ConservativeDQN}


def make_dqn(config: DQNConfig, n_features: int) -> DQN:
    """The DQN class the configuration's ``algorithm`` names."""
    cls = DQN_CLASSES.get(config.algorithm)
    if cls is None:
        raise ValueError(f"unknown DQN algorithm {config.algorithm!r}; choose one of {', '.join(DQN_CLASSES)}")
    return cls(config, n_features)
