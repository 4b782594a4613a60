"""Off-policy value of a dose policy from logged visits, with uncertainty; never one estimator alone.

The value of a policy π is V(π) = E[Σ_t γ^t r_t] from a patient's first visit, on the published
reward scale. Logged trajectories come from the physicians (behaviour policy π_b). Estimators:

* WIS, weighted (self-normalised) importance sampling over whole trajectories (Precup et al. 2000):
  w_i = Π_t π(a_it|s_it) / π_b(a_it|s_it),  V = Σ_i w_i G_i / Σ_i w_i,  G_i = Σ_t γ^t r_it;
* WDR, weighted doubly robust (Thomas & Brunskill 2016), with per-decision weights normalised over
  patients at each step, ŵ_it = w_i,0:t / Σ_j w_j,0:t, and a fitted Q̂ as control variate:
  V = Σ_i Σ_t γ^t [ŵ_it r_it − (ŵ_it Q̂(s_it, a_it) − ŵ_i,t−1 V̂(s_it))],  V̂(s) = Σ_a π(a|s) Q̂(s, a);
* FQE, fitted Q evaluation (Le et al. 2019): Q̂ regressed on r + γ(1 − done) V̂(s'); V = mean V̂(s_0).

Importance sampling needs π(a|s) > 0 where the physician acted, so a greedy policy is evaluated in its
ε-soft form: (1 − ε) on its choice and ε spread evenly over the allowed doses (ε is reported).
95% intervals come from the bootstrap over patients (resampling whole trajectories); the FQE interval
resamples initial states with Q̂ held fixed (it does not refit). The effective sample size
ESS = (Σ w)² / Σ w² of the trajectory weights says how many patients the estimate really rests on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from fhir_mapping.dosing import N_DOSE_CLASSES
from training.dataset import Transitions

EPSILON: Final = 0.1
BOOTSTRAP_SAMPLES: Final = 500


def soft_policy(greedy: np.ndarray, masks: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """π(a|s): 1 − ε on the greedy class plus ε spread over the allowed classes (rows sum to 1)."""
    masks = np.asarray(masks, dtype=bool)
    allowed = masks.sum(axis=1, keepdims=True).clip(min=1)
    probs = epsilon * masks / allowed
    probs[np.arange(len(greedy)), greedy] += 1.0 - epsilon
    return probs / probs.sum(axis=1, keepdims=True)


@dataclass
class Trajectories:
    """Padded per-patient arrays [patients, steps] of the transitions (False in ``valid`` after the end)."""

    valid: np.ndarray
    rewards: np.ndarray
    ratios: np.ndarray  # π(a|s) / π_b(a|s), 1 where not valid
    q_taken: np.ndarray  # Q̂(s, a_logged), 0 where not valid
    v_state: np.ndarray  # V̂(s) = Σ π(a|s) Q̂(s, a), 0 where not valid
    gamma: float

    @property
    def discounts(self) -> np.ndarray:
        return self.gamma ** np.arange(self.valid.shape[1])


def trajectories(data: Transitions, target_probs: np.ndarray, behaviour_probs: np.ndarray, q_values: np.ndarray,
                 gamma: float) -> Trajectories:
    """Gather the transition rows of every patient into padded arrays (visits in order)."""
    rows = data.transition_rows
    patients, position = np.unique(data.patient[rows], return_inverse=True)
    steps = data.step[rows]
    n_steps = int(steps.max()) + 1 if len(rows) else 1
    shape = (len(patients), n_steps)
    valid = np.zeros(shape, dtype=bool)
    rewards = np.zeros(shape)
    ratios = np.ones(shape)
    q_taken = np.zeros(shape)
    v_state = np.zeros(shape)
    actions = data.actions[rows]
    idx = (position, steps)
    valid[idx] = True
    rewards[idx] = data.rewards[rows]
    behaviour = np.maximum(behaviour_probs[rows, actions], 1e-12)
    ratios[idx] = target_probs[rows, actions] / behaviour
    q_taken[idx] = q_values[rows, actions]
    v_state[idx] = (target_probs[rows] * q_values[rows]).sum(axis=1)
    return Trajectories(valid, rewards, ratios, q_taken, v_state, gamma)


def ess(weights: np.ndarray) -> float:
    """Effective sample size (Σ w)² / Σ w² (Kish)."""
    total = weights.sum()
    squares = (weights**2).sum()
    return float(total**2 / squares) if squares > 0 else 0.0


def wis(t: Trajectories, sample: np.ndarray | None = None) -> tuple[float, float]:
    """(value, ESS) of trajectory-wise weighted importance sampling on the patients in ``sample``."""
    index = np.arange(t.valid.shape[0]) if sample is None else sample
    weights = t.ratios[index].prod(axis=1)
    returns = (t.rewards[index] * t.discounts).sum(axis=1)
    total = weights.sum()
    value = float((weights * returns).sum() / total) if total > 0 else float("nan")
    return value, ess(weights)


def wdr(t: Trajectories, sample: np.ndarray | None = None) -> float:
    """Weighted doubly robust value on the patients in ``sample`` (Thomas & Brunskill 2016, eq. 10)."""
    index = np.arange(t.valid.shape[0]) if sample is None else sample
    ratios, rewards = t.ratios[index], t.rewards[index]
    q_taken, v_state = t.q_taken[index], t.v_state[index]
    cumulative = np.cumprod(ratios, axis=1)
    totals = cumulative.sum(axis=0, keepdims=True)
    normalised = np.divide(cumulative, totals, out=np.zeros_like(cumulative), where=totals > 0)
    previous = np.concatenate([np.full((len(index), 1), 1.0 / len(index)), normalised[:, :-1]], axis=1)
    discounts = t.discounts
    terms = discounts * (normalised * rewards - (normalised * q_taken - previous * v_state))
    return float(terms.sum())


def bootstrap_interval(statistic: Any, n_patients: int, rng: np.random.Generator, samples: int) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic(sample_of_patient_indices)``."""
    values = []
    for _ in range(samples):
        value = statistic(rng.integers(0, n_patients, n_patients))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def fitted_q_evaluation(train: Transitions, target_probs_train: np.ndarray, *, gamma: float, steps: int = 3000,
                        seed: int = 0, reward_scale: float = 0.01, hidden: int = 64) -> Any:
    """Fit Q̂ for a fixed policy on logged transitions; returns a function states -> Q̂ (n, 12), ±100 scale.

    ``target_probs_train`` is π(a|s) for every row of ``train`` (used at the next states).
    """
    import torch
    import torch.nn.functional as F

    from training.policies.mlp import MLP

    torch.set_num_threads(1)  # one thread: reproducible, and no oversubscription on shared cores
    torch.manual_seed(seed)
    rows = train.transition_rows
    states = torch.as_tensor(train.states[rows])
    next_states = torch.as_tensor(train.next_states(rows))
    actions = torch.as_tensor(train.actions[rows])
    rewards = torch.as_tensor(train.rewards[rows] * reward_scale, dtype=torch.float32)
    dones = torch.as_tensor(train.dones[rows])
    next_probs = torch.as_tensor(target_probs_train[train.next_index[rows]], dtype=torch.float32)
    network = MLP(train.states.shape[1], (hidden, hidden))
    target = MLP(train.states.shape[1], (hidden, hidden))
    target.load_state_dict(network.state_dict())
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        batch = torch.randint(len(rows), (128,), generator=generator)
        with torch.no_grad():
            next_value = (target(next_states[batch]) * next_probs[batch]).sum(dim=1)
            y = rewards[batch] + gamma * next_value * (1.0 - dones[batch])
        q = network(states[batch]).gather(1, actions[batch, None]).squeeze(1)
        loss = F.huber_loss(q, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 200 == 0:
            target.load_state_dict(network.state_dict())

    def q_function(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64) / reward_scale

    return q_function


def off_policy_values(
    test: Transitions,
    target_probs: np.ndarray,
    behaviour_probs: np.ndarray,
    q_function: Any,
    *,
    gamma: float,
    seed: int = 0,
    samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, dict[str, float]]:
    """{estimator: {value, ci_low, ci_high, ess}} for WIS, WDR and FQE on the test transitions."""
    if target_probs.shape != (len(test), N_DOSE_CLASSES):
        raise ValueError("target probabilities must be (n_visits, 12)")
    q_values = q_function(test.states)
    traj = trajectories(test, target_probs, behaviour_probs, q_values, gamma)
    n = traj.valid.shape[0]
    rng = np.random.default_rng(seed)
    value, effective = wis(traj)
    low, high = bootstrap_interval(lambda s: wis(traj, s)[0], n, rng, samples)
    results = {"wis": {"value": value, "ci_low": low, "ci_high": high, "ess": effective}}
    low, high = bootstrap_interval(lambda s: wdr(traj, s), n, rng, samples)
    results["wdr"] = {"value": wdr(traj), "ci_low": low, "ci_high": high, "ess": effective}
    first = np.flatnonzero((test.step == 0) & (test.next_index >= 0))
    initial_values = (target_probs[first] * q_values[first]).sum(axis=1)
    low, high = bootstrap_interval(lambda s: float(initial_values[s].mean()), len(first), rng, samples)
    results["fqe"] = {"value": float(initial_values.mean()) if len(first) else float("nan"),
                      "ci_low": low, "ci_high": high, "ess": float(len(first))}
    return results


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started
