"""Benchmark of ``epidose cohort``: simulate and write N children (default 10,000) on one core.

Times the phases in process (drawing and simulating the children, writing FHIR NDJSON + Bundles +
truth + report) with wall-clock and CPU time (``time.process_time``: user + system of this process,
insensitive to other jobs on the machine), and the counterfactual environment's evaluation of the
physician on 1,000 children through the FHIR path.

    python bench/cohort.py [--patients 10000] [--env-patients 1000]

Target (issue #3): 10,000 children in under a minute on one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.simulator.cohort import simulate_cohort, write_cohort  # noqa: E402
from training.simulator.environment import Environment  # noqa: E402


def _timed(label: str, function, *args):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    print(f"{label}: wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--env-patients", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    runs = _timed(f"simulate {args.patients} children (no output)", simulate_cohort, args.patients, args.seed)
    print(f"  {sum(len(r.visits) for r in runs)} visits")
    with tempfile.TemporaryDirectory() as tmp:
        summary = _timed(f"write_cohort {args.patients} children (simulate + FHIR + truth + report)", write_cohort, Path(tmp), args.patients, args.seed)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        print(f"  {summary.resources} resources, {size / 2**20:.0f} MiB, checks passed {sum(summary.report['checks'].values())}/{len(summary.report['checks'])}")
    if args.env_patients:
        env = Environment(args.env_patients, args.seed)
        value = _timed(f"environment: physician on {args.env_patients} children (FHIR path)", env.evaluate_physician)
        print(f"  mean discounted reward {value.mean_discounted_reward:.1f} ± {value.discounted_reward_se:.1f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
