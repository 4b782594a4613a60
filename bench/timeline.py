"""Benchmark and equivalence check: the service's mapping steps on the hook benchmark's bodies.

For every body of ``bench/bodies.py`` (the clinical charts and simulated children in both dialects),
the steps the service runs before the model, as ``plugin.decide`` runs them: ``judge_call_scope``
(collect the prefetch, other patients' data, the scope) and ``build_timeline`` (as of today). Prints
the process CPU time per body of each step, medians over the passes (the parse memos cleared before
every pass, as ``bench/request_cpu.py`` does).

With ``--tree`` (twice or more), each tree runs in its own subprocess from its own copy of this script,
interleaved over ``--rounds``; every tree's timelines (``to_json()``, problems, levels, dose history,
levetiracetam taken without an order), scopes and other-patient problems are written out and compared
with the first tree's, and any difference fails:

    python bench/timeline.py --children 200 --rounds 3 --tree /tmp/base-tree --tree .
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _hook_keys() -> dict[str, list[str]]:
    """The prefetch keys of each hook's service definition (what the service gathers)."""
    found = {}
    for path in sorted((ROOT / "hooks").glob("*.json")):
        definition = json.loads(path.read_text())
        found[definition["hook"]] = list(definition.get("prefetch", {}))
    return found


def measure(children: int, passes: int, dump: Path | None) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "bench"))
    from bodies import benchmark_requests

    from fhir_mapping import inputs
    from fhir_mapping.build import build_timeline
    from plugin.decide import judge_call_scope, select_draft
    from plugin.gather import Gathered

    try:
        from fhir_mapping.timeline import jsonable
    except ImportError:  # a tree from before it was public (JSON then turns its int keys into strings the same way)
        from fhir_mapping.timeline import _jsonable as jsonable  # type: ignore[attr-defined,no-redef]

    hook_keys = _hook_keys()
    today = date.today()
    calls = []
    for request in benchmark_requests(children):
        prefetch = request.get("prefetch") or {}
        values = {key: prefetch[key] for key in hook_keys[request["hook"]] if key in prefetch}
        draft = select_draft(request["hook"], request["context"])
        if draft is None:
            continue
        calls.append((request["hook"], Gathered(values=values), request["context"]["patientId"], draft))

    def one_pass(keep: list[Any] | None) -> tuple[list[float], list[float]]:
        inputs.clear_parse_memos()
        scope_times, build_times = [], []
        for hook, gathered, patient_id, draft in calls:
            started = time.process_time()
            call = judge_call_scope(hook, gathered, patient_id, draft, today)
            middle = time.process_time()
            timeline = build_timeline(call.resources, patient_id, as_of=today)
            ended = time.process_time()
            scope_times.append(middle - started)
            build_times.append(ended - middle)
            if keep is not None:
                keep.append({
                    "scope": jsonable(asdict(call.scope)), "answered": call.answered,
                    "others": jsonable([asdict(p) for p in call.others]),
                    "collect_problems": jsonable([asdict(p) for p in call.collect_problems]),
                    "resources": len(call.resources),
                    "timeline": timeline.to_json(),
                    "lev_levels": jsonable([asdict(level) for level in timeline.lev_levels]),
                    "lev_history": jsonable([asdict(span) for span in timeline.lev_history]),
                    "lev_taken_without_order": sorted(timeline.lev_taken_without_order),
                })
        return scope_times, build_times

    kept: list[Any] = []
    one_pass(kept)  # warm, and what the trees are compared on
    if dump is not None:
        dump.write_text(json.dumps(kept, sort_keys=True, indent=0, ensure_ascii=False))
    scope_medians, build_medians, scope_means, build_means = [], [], [], []
    for _ in range(passes):
        scope_times, build_times = one_pass(None)
        scope_medians.append(statistics.median(scope_times))
        build_medians.append(statistics.median(build_times))
        scope_means.append(statistics.mean(scope_times))
        build_means.append(statistics.mean(build_times))
    return {"bodies": len(calls),
            "scope_median_ms": statistics.median(scope_medians) * 1e3, "build_median_ms": statistics.median(build_medians) * 1e3,
            "scope_mean_ms": statistics.median(scope_means) * 1e3, "build_mean_ms": statistics.median(build_means) * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--passes", type=int, default=5, help="timed passes over the bodies per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.tree:
        result = measure(args.children, args.passes, args.dump)
        print(json.dumps(result) if args.json else result)
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from trees import run_interleaved, same_outputs

    results, dumps = run_interleaved(args.tree, args.rounds, "timeline.py",
                                     ["--children", str(args.children), "--passes", str(args.passes)], "--dump")
    if not same_outputs(args.tree, dumps, "timelines and scopes"):
        return 1
    base = args.tree[0]
    print(f"{results[base][0]['bodies']} bodies; {args.rounds} interleaved rounds of {args.passes} passes; CPU ms per body, "
          "median over rounds of the per-pass median (mean)")
    print("| tree | judge_call_scope | build_timeline | both | both vs first tree |")
    print("|---|---:|---:|---:|---:|")
    base_both = None
    for tree, rows in results.items():
        scope = statistics.median(r["scope_median_ms"] for r in rows)
        build = statistics.median(r["build_median_ms"] for r in rows)
        scope_mean = statistics.median(r["scope_mean_ms"] for r in rows)
        build_mean = statistics.median(r["build_mean_ms"] for r in rows)
        both = scope_mean + build_mean
        base_both = base_both or both
        print(f"| {tree} | {scope:.3f} ({scope_mean:.3f}) | {build:.3f} ({build_mean:.3f}) | ({both:.3f}) | {both / base_both:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
