"""Benchmark: in-process CPU time of one hook call, distinct bodies, the response cache off.

Each body (``bench/bodies.py``: the clinical charts and simulated children, every body different) is
posted through the Flask app (auth off, cache size 0, the real SQLite audit store and a real model;
after a first pass, the garbage-collector settings of ``epidose serve``'s workers where the tree has
them), and the process CPU time of the call is measured; so is the benchmark-only constant card with the
same bodies (request parsing + a constant answer). Prints medians per request, and with ``--profile``
a cProfile of the distinct calls.

To compare two trees in one run, interleaved, give them with ``--tree`` (each run in its own
subprocess, from the tree's own copy of ``bench/request_cpu.py`` and ``bench/bodies.py``); the
cards of every body are compared across the trees too (uuids numbered), and any difference fails:

    python bench/request_cpu.py --model MODEL_FOLDER --tree /tmp/main-tree --tree . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalised_cards(response_body: bytes) -> Any:
    """A response's cards with every generated uuid replaced by its order of appearance."""
    seen: dict[bytes, bytes] = {}
    text = UUID.sub(lambda m: seen.setdefault(m.group(0), b"uuid-%d" % len(seen)), response_body)
    return json.loads(text)


def measure(model: Path, children: int, repeat: int, profile: bool, cards_out: Path | None = None) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "bench"))
    from bodies import benchmark_requests, distinct_bodies, service_path

    from plugin import create_app
    from plugin.settings import Settings
    from training.artifact.registry import ModelRegistry

    requests = benchmark_requests(children)
    bodies = distinct_bodies(requests)
    paths = [service_path(r) for r in requests]
    data = Path(tempfile.mkdtemp())
    registry = ModelRegistry(data / "models")
    registry.promote(registry.add(model))
    settings = Settings.from_env({}, auth=False, data_dir=data, model_dir=registry.root, model_check_seconds=0.0,
                                 hash_key="bench-hash-key", response_cache_size=0, bench_constant_card=True)
    client = create_app(settings).test_client()
    answers = []
    for body, path in zip(bodies, paths, strict=True):  # warm, and every call must answer
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code == 200, (path, response.status_code, response.data[:300])
        answers.append(normalised_cards(response.data))
    try:  # the garbage-collector settings of a served worker, where the tree has them
        from plugin.cli.serve import settle_heap
    except ImportError:
        pass
    else:
        settle_heap()
    if cards_out is not None:
        cards_out.write_text(json.dumps(answers, sort_keys=True, indent=0, ensure_ascii=False))

    from fhir_mapping import inputs

    forget = getattr(inputs, "clear_parse_memos", lambda: None)

    passes: dict[str, list[float]] = {"distinct": [], "constant": []}

    def per_call(target: str | None) -> list[float]:
        times = []
        forget()  # each pass sees the bodies as if for the first time: no stamp or reference parsed before
        pass_started = time.process_time()
        for body, path in zip(bodies, paths, strict=True):
            started = time.process_time()
            client.post(target or path, data=body, content_type="application/json")
            times.append(time.process_time() - started)
        settle = getattr(client.application.extensions["epidose"].store, "settle", None)
        if settle is not None:
            settle()  # the audit rows still pending are committed within the pass's CPU
        # The whole process's CPU over the pass per request: what a background thread spends is in it
        # (a per-call median would miss the work done between calls).
        passes["constant" if target else "distinct"].append((time.process_time() - pass_started) / len(bodies))
        return times

    distinct: list[float] = []
    constant: list[float] = []
    for _ in range(repeat):
        constant.extend(per_call("/cds-services/bench-constant"))
        distinct.extend(per_call(None))
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        per_call(None)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
    return {"bodies": len(bodies), "mean_body_kib": statistics.mean(map(len, bodies)) / 1024,
            "distinct_ms": statistics.median(distinct) * 1e3, "constant_ms": statistics.median(constant) * 1e3,
            "distinct_pass_ms": statistics.median(passes["distinct"]) * 1e3,
            "constant_pass_ms": statistics.median(passes["constant"]) * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--children", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cards-out", type=Path, default=None,
                        help="write each body's cards (uuids numbered) to this file, to compare trees")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.tree:
        result = measure(args.model, args.children, args.repeat, args.profile, args.cards_out)
        print(json.dumps(result) if args.json else result)
        return 0
    sys.path.insert(0, str(ROOT / "bench"))
    from trees import run_interleaved, same_outputs

    # Each tree's own copy of this script and of bodies.py (which puts its tree first on sys.path).
    results, dumps = run_interleaved(args.tree, args.rounds, "request_cpu.py",
                                     ["--model", str(args.model), "--children", str(args.children), "--repeat", str(args.repeat)],
                                     "--cards-out")
    if not same_outputs(args.tree, dumps, "cards"):
        return 1
    base = args.tree[0]
    base_distinct = statistics.median(r["distinct_ms"] for r in results[base])
    print(f"{results[base][0]['bodies']} distinct bodies, mean {results[base][0]['mean_body_kib']:.1f} KiB; "
          f"median over {args.rounds} interleaved rounds of the per-request CPU median")
    print("| tree | distinct: CPU ms/request (median) | distinct: whole pass CPU / requests | constant card: median "
          "| constant: pass / requests | distinct vs first tree (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for tree, rows in results.items():
        distinct = statistics.median(r["distinct_ms"] for r in rows)
        constant = statistics.median(r["constant_ms"] for r in rows)
        distinct_pass = statistics.median(r.get("distinct_pass_ms", float("nan")) for r in rows)
        constant_pass = statistics.median(r.get("constant_pass_ms", float("nan")) for r in rows)
        print(f"| {tree} | {distinct:.3f} | {distinct_pass:.3f} | {constant:.3f} | {constant_pass:.3f} "
              f"| {distinct / base_distinct:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
