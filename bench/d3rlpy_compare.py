"""Benchmark: DQN gradient steps per second against d3rlpy 2.8.1's ``DQN.fit()`` on the same data.

The study-sized synthetic transitions of ``bench/train.py`` (3,700 visits, 15 per child, the real
model-input width), batch 256, torch on one thread, the same network (two hidden layers of 128),
learning rate, discount and target-copy period. d3rlpy runs in its own environment (it pins its own
packages; ``--system-site-packages`` shares this torch) as a subprocess given ``--d3rlpy-python``;
rounds alternate ours and d3rlpy, and medians of CPU steps per second are compared:

    python -m venv --system-site-packages /tmp/d3 && /tmp/d3/bin/pip install "d3rlpy==2.8.1"
    python bench/d3rlpy_compare.py --d3rlpy-python /tmp/d3/bin/python [--steps 3000 --rounds 3]

d3rlpy's figure is its whole ``fit()`` (sampling from its replay buffer, the update, its bookkeeping),
as a user runs it; ours is ``DQN.fit()`` (masked target, the project's checks and history).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 256

_D3RLPY_RUN = """
import json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
import d3rlpy
data = np.load(sys.argv[1])
steps, hidden, lr, gamma, period = int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
dataset = d3rlpy.dataset.MDPDataset(data["observations"], data["actions"], data["rewards"], data["terminals"],
                                    action_space=d3rlpy.constants.ActionSpace.DISCRETE, action_size=12)
dqn = d3rlpy.algos.DQNConfig(batch_size=int(sys.argv[7]), learning_rate=lr, gamma=gamma, target_update_interval=period,
                             encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hidden)).create(device="cpu:0")
dqn.build_with_dataset(dataset)
started, cpu = time.perf_counter(), time.process_time()
dqn.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False, save_interval=10**9,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory())
print(json.dumps({"wall": steps / (time.perf_counter() - started), "cpu": steps / (time.process_time() - cpu),
                  "version": d3rlpy.__version__}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d3rlpy-python", type=Path, required=True, help="python of an environment with d3rlpy 2.8.1")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    from train import ours_steps_per_second, study_sized_data

    from training.policies.config import DQNConfig, named_config

    torch.set_num_threads(1)
    data = study_sized_data()
    paper = named_config("paper")
    assert isinstance(paper, DQNConfig)
    config = dataclasses.replace(paper, batch_size=BATCH)
    # The same visits as episodes: each child's visits in order, the last one terminal.
    ends = np.zeros(len(data), dtype=np.float32)
    ends[np.flatnonzero(data.next_index < 0)] = 1.0
    folder = Path(tempfile.mkdtemp(prefix="epidose-d3rlpy-"))
    np.savez(folder / "data.npz", observations=data.states, actions=data.actions, rewards=data.rewards, terminals=ends)
    ours: list[float] = []
    theirs: list[float] = []
    version = "?"
    for _ in range(args.rounds):
        ours.append(ours_steps_per_second(data, config, args.steps)[1])
        out = subprocess.run([str(args.d3rlpy_python), "-c", _D3RLPY_RUN, str(folder / "data.npz"), str(args.steps),
                              json.dumps(list(config.hidden_sizes)), str(config.learning_rate), str(config.gamma),
                              str(config.target_update_period), str(BATCH)],
                             check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        theirs.append(result["cpu"])
        version = result["version"]
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"data: {len(data.transition_rows)} transitions, {data.states.shape[1]} inputs; batch {BATCH}; torch threads 1; "
          f"{args.rounds} alternating rounds of {args.steps} steps ({time.strftime('%H:%M UTC', time.gmtime())})")
    print("| implementation | CPU steps/s (median) | rounds |")
    print("|---|---:|---|")
    print(f"| epidose DQN.fit | {ours_median:.0f} | {', '.join(f'{x:.0f}' for x in ours)} |")
    print(f"| d3rlpy {version} DQN.fit | {theirs_median:.0f} | {', '.join(f'{x:.0f}' for x in theirs)} |")
    ratio = ours_median / theirs_median
    print(f"ratio epidose / d3rlpy: {ratio:.2f} (target ≥ 3): {'PASS' if ratio >= 3 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
