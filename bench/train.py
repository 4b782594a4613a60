"""Benchmark of the DQN update: gradient steps per second on one thread, and a full ``paper`` run.

Study-sized data: ~3,700 transitions (the published study's visits, ../shared/domain.md §1) of the
real state width, synthetic values. Compares ``training.policies.dqn.DQN`` with a plain reference
implementation of the same update (same network, masked max target, Huber loss, Adam, target copies)
written inline below, and reports the ratio (ours / reference; 1.0 means no overhead).

    python bench/train.py            # prints the figures; --steps to shorten
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fhir_mapping import features
from fhir_mapping.dosing import N_DOSE_CLASSES
from training.dataset import Transitions, transitions_from_arrays
from training.policies.config import DQNConfig, named_config
from training.policies.dqn import DQN

STUDY_VISITS = 3700  # domain.md §1: about 3,700 visits in the published study
VISITS_PER_PATIENT = 15


def study_sized_data(seed: int = 0) -> Transitions:
    """Synthetic transitions with the real model-input width and published-scale rewards."""
    rng = np.random.default_rng(seed)
    width = features.Imputation.fit(np.zeros((2, features.FEATURE_SPEC.dimension)),
                                    np.ones((2, features.FEATURE_SPEC.dimension), bool)).output_dimension
    n = STUDY_VISITS
    step = np.arange(n) % VISITS_PER_PATIENT
    last = (step == VISITS_PER_PATIENT - 1) | (np.arange(n) == n - 1)
    masks = np.ones((n, N_DOSE_CLASSES), bool)
    masks[:, 9:] = rng.random((n, 3)) < 0.5
    return transitions_from_arrays(
        rng.normal(size=(n, width)), rng.integers(0, 9, n), masks, rng.choice([-100.0, 0.0, 10.0, 100.0], n),
        np.where(last, -1, np.arange(n) + 1), (step == VISITS_PER_PATIENT - 2).astype(float),
        np.arange(n) // VISITS_PER_PATIENT, step,
    )


def reference_steps_per_second(data: Transitions, config: DQNConfig, steps: int) -> tuple[float, float]:
    """The same update written plainly: no classes, no masking helpers, no logging."""
    torch.manual_seed(config.seed)
    width = data.states.shape[1]
    layers: list[nn.Module] = []
    sizes = (width, *config.hidden_sizes)
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    q_net = nn.Sequential(*layers, nn.Linear(sizes[-1], N_DOSE_CLASSES))
    target_net = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
    rows = data.transition_rows
    s = torch.as_tensor(data.states[rows])
    s2 = torch.as_tensor(data.next_states(rows))
    a = torch.as_tensor(data.actions[rows])
    r = torch.as_tensor(data.rewards[rows])
    m2 = torch.as_tensor(data.next_masks(rows))
    d = torch.as_tensor(data.dones[rows])
    g = torch.Generator().manual_seed(0)
    started, cpu_started = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        i = torch.randint(len(rows), (config.batch_size,), generator=g)
        with torch.no_grad():
            y = r[i] + config.gamma * target_net(s2[i]).masked_fill(~m2[i], -torch.inf).max(1).values * (1 - d[i])
        q = q_net(s[i]).gather(1, a[i, None]).squeeze(1)
        loss = F.huber_loss(q, y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(q_net.parameters(), config.gradient_clip)
        optimizer.step()
        if step % config.target_update_period == 0:
            target_net.load_state_dict(q_net.state_dict())
    return steps / (time.perf_counter() - started), steps / (time.process_time() - cpu_started)


def ours_steps_per_second(data: Transitions, config: DQNConfig, steps: int) -> tuple[float, float]:
    """(wall, CPU) steps per second of the project's DQN: CPU time is robust to other jobs on the machine."""
    policy = DQN(dataclasses.replace(config, steps=steps), data.states.shape[1])
    started, cpu_started = time.perf_counter(), time.process_time()
    policy.fit(data)
    return steps / (time.perf_counter() - started), steps / (time.process_time() - cpu_started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per throughput measurement")
    parser.add_argument("--full-steps", type=int, default=20_000, help="steps of the full paper run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = study_sized_data()
    print(f"data: {len(data.transition_rows)} transitions, {data.states.shape[1]} inputs; torch threads: 1")
    paper = named_config("paper")
    assert isinstance(paper, DQNConfig)
    for batch in (64, 256):
        config = dataclasses.replace(paper, batch_size=batch)
        reference_wall, reference_cpu = reference_steps_per_second(data, config, args.steps)
        ours_wall, ours_cpu = ours_steps_per_second(data, config, args.steps)
        print(f"batch {batch:>3}: ours {ours_cpu:6.0f} steps/s CPU ({ours_wall:6.0f} wall), reference {reference_cpu:6.0f} "
              f"steps/s CPU ({reference_wall:6.0f} wall), ratio {ours_cpu / reference_cpu:.2f} CPU "
              f"({ours_wall / reference_wall:.2f} wall)")
    started, cpu_started = time.perf_counter(), time.process_time()
    DQN(dataclasses.replace(paper, steps=args.full_steps), data.states.shape[1]).fit(data)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"full paper run: {args.full_steps} steps at batch {paper.batch_size} in {seconds:.1f} s wall, "
          f"{cpu_seconds:.1f} s CPU (target < 120 s)")


if __name__ == "__main__":
    main()
