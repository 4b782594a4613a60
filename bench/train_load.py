"""Benchmark: loading a cohort for training (``load_data`` + ``visit_table``, as ``epidose train`` does).

Each run is a fresh subprocess of the tree given (``--tree``, repeatable: interleaved rounds), which
prints the wall and CPU time of the load and the process's peak resident memory (``ru_maxrss``).

    python bench/train_load.py --data COHORT_FOLDER [--tree /tmp/main-tree --tree .] [--rounds 2] [--whole-train]

``--whole-train`` also runs a whole ``epidose train`` (default configuration) on the data with each tree,
interleaved, and reports its peak resident memory and CPU time (the training process's ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from training.dataset import load_data, visit_table
wall, cpu = time.perf_counter(), time.process_time()
loaded = load_data(sys.argv[1])
table = visit_table(loaded.timelines, loaded.behaviour)
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children": len(loaded.timelines), "visits": len(table)}))
"""


_WHOLE_TRAIN = """
import json, resource, subprocess, sys, tempfile, time
out = tempfile.mkdtemp(prefix="epidose-train-load-")
wall = time.perf_counter()
subprocess.run([sys.executable, "-m", "plugin.cli", "train", "--data", sys.argv[1], "--out", out + "/model", "--no-progress"],
               check=True, stdout=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--whole-train", action="store_true", help="also a whole epidose train per tree")
    args = parser.parse_args()
    trees = args.tree or [Path(__file__).resolve().parents[1]]
    results: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
            out = subprocess.run([sys.executable, "-c", _CHILD, str(args.data)], env=env, cwd=tree, check=True,
                                 capture_output=True, text=True).stdout
            results[tree].append(json.loads(out.strip().splitlines()[-1]))
    print("| tree | children | visits | load wall s | load CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for tree, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
        print(f"| {tree} | {rows[0]['children']:.0f} | {rows[0]['visits']:.0f} | {med['wall_s']:.1f} | "
              f"{med['cpu_s']:.1f} | {med['peak_rss_mb']:.0f} |")
    if args.whole_train:
        whole: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
        for _ in range(args.rounds):
            for tree in trees:
                env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
                out = subprocess.run([sys.executable, "-c", _WHOLE_TRAIN, str(args.data.resolve())], env=env, cwd=tree,
                                     check=True, capture_output=True, text=True).stdout
                whole[tree].append(json.loads(out.strip().splitlines()[-1]))
        print()
        print("| tree | whole epidose train wall s | CPU s | peak RSS MB |")
        print("|---|---:|---:|---:|")
        for tree, rows in whole.items():
            med = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
            print(f"| {tree} | {med['wall_s']:.1f} | {med['cpu_s']:.1f} | {med['peak_rss_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
