"""Benchmark: CPU of the individual PK estimate per chart, as the service calls it, base against this tree.

The request benchmark's bodies (``bench/bodies.py``: the clinical charts and simulated children) are
posted once through the Flask app (auth off, no response cache, a real model), with the estimate's
entry points wrapped to record what each hook call asks of it: ``estimate_at(timeline, day)``, then
every ``individual_trough`` and ``level_lines`` call the service makes on the assessment. Each chart
with a measured level is then replayed, interleaved, against the base tree's ``fhir_mapping/pk_estimate.py``
(from git, loaded beside this tree's) and against this tree's, a few rounds each; every answer is
compared (card lines byte for byte, numbers to the last digit reported). Prints the median CPU per
chart of both, the ratio, and the largest difference between the two MAP estimates.

Run from the repository root:  python bench/pk_cpu.py --model MODEL_FOLDER [--children 200] [--rounds 5] [--base main]
(or ``--simulated N``: the same comparison on every level of N simulated children in three worlds, no model needed)
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


@dataclass
class ChartCalls:
    """What one hook call asked of the estimate: the chart and day, then the calls on its assessment."""

    timeline: Any
    day: date
    calls: list[tuple[Any, ...]] = field(default_factory=list)  # ("trough", mg) | ("lines", current, recommended)


def record(model: Path, children: int) -> list[ChartCalls]:
    """Post every benchmark body once and keep the PK calls of the ones with a measured level."""
    from bodies import benchmark_requests, distinct_bodies, service_path

    from fhir_mapping import pk_estimate
    from plugin import create_app
    from plugin.settings import Settings
    from training.artifact.registry import ModelRegistry

    requests = benchmark_requests(children)
    bodies = distinct_bodies(requests)
    data = Path(tempfile.mkdtemp())
    registry = ModelRegistry(data / "models")
    registry.promote(registry.add(model))
    settings = Settings.from_env({}, auth=False, data_dir=data, model_dir=registry.root, model_check_seconds=0.0,
                                 hash_key="bench-hash-key", response_cache_size=0)
    client = create_app(settings).test_client()
    charts: list[ChartCalls] = []
    current: list[ChartCalls | None] = [None]
    estimate_at, level_lines, individual_trough = pk_estimate.estimate_at, pk_estimate.level_lines, pk_estimate.LevelAssessment.individual_trough

    def recording_estimate(timeline: Any, day: date) -> Any:
        assessment = estimate_at(timeline, day)
        current[0] = ChartCalls(timeline, day) if assessment is not None else None
        if current[0] is not None:
            charts.append(current[0])
        return assessment

    def recording_lines(assessment: Any, current_mg: Any, recommended_mg: Any) -> Any:
        if current[0] is not None:
            current[0].calls.append(("lines", current_mg, recommended_mg))
        return level_lines(assessment, current_mg, recommended_mg)

    def recording_trough(self: Any, mg: float) -> Any:
        if current[0] is not None and sys._getframe(1).f_globals.get("__name__") != pk_estimate.__name__:
            current[0].calls.append(("trough", mg))
        return individual_trough(self, mg)

    pk_estimate.estimate_at, pk_estimate.level_lines = recording_estimate, recording_lines  # type: ignore[assignment]
    pk_estimate.LevelAssessment.individual_trough = recording_trough  # type: ignore[method-assign,assignment]
    try:
        for body, path in zip(bodies, [service_path(r) for r in requests], strict=True):
            current[0] = None
            response = client.post(path, data=body, content_type="application/json")
            assert response.status_code == 200, (path, response.status_code)
    finally:
        pk_estimate.estimate_at, pk_estimate.level_lines = estimate_at, level_lines
        pk_estimate.LevelAssessment.individual_trough = individual_trough  # type: ignore[method-assign]
    return charts


def simulated(children: int) -> list[ChartCalls]:
    """Every visit with a level of ``children`` simulated children in each of three worlds (the simulator's,
    levels drawn at any time of the interval, wider variability), half the treated visits with a level:
    the estimate at that visit, then the calls a card makes at two doses."""
    import dataclasses

    from fhir_mapping.build import build_timeline
    from training.simulator.cohort import simulate_cohort
    from training.simulator.config import DEFAULT_CONFIG
    from training.simulator.fhir import child_resources

    worlds: list[dict[str, Any]] = [{}, {"level_sampling_hours": (0.5, 12.0)}, {"cl_bsv_cv": 0.6, "v_bsv_cv": 0.4}]
    charts: list[ChartCalls] = []
    for seed, world in enumerate(worlds, start=7):
        config = dataclasses.replace(DEFAULT_CONFIG, level_probability=0.5, **world)
        for run in simulate_cohort(children, seed, config):
            days = [visit.date for visit in run.visits if "lev_level" in visit.labs]
            timeline = build_timeline(child_resources(run)) if days else None
            charts.extend(ChartCalls(timeline, day, [("trough", 500.0), ("lines", 750.0, 1500.0), ("lines", 1000.0, None)]) for day in days)
    return charts


def base_module(revision: str) -> ModuleType:
    """The base revision's pk_estimate.py, loaded as its own module beside this tree's."""
    source = subprocess.run(["git", "show", f"{revision}:fhir_mapping/pk_estimate.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "pk_estimate_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pk_estimate_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def replay(module: ModuleType, chart: ChartCalls) -> tuple[float, list[Any]]:
    """CPU seconds of the chart's calls on ``module``, and their answers."""
    started = time.thread_time()
    assessment = module.estimate_at(chart.timeline, chart.day)
    answers: list[Any] = []
    for call in chart.calls:
        if call[0] == "trough":
            answers.append(assessment.individual_trough(call[1]))
        else:
            answers.append(module.level_lines(assessment, call[1], call[2]))
    elapsed = time.thread_time() - started
    return elapsed, [_numbers(assessment), *answers]


def _numbers(assessment: Any) -> tuple[Any, ...]:
    return (assessment.clearance_l_per_h, assessment.volume_l, assessment.typical, assessment.latest_percentile,
            assessment.own_percentile, assessment.volume_informed, assessment.interpretation,
            tuple(p.message for p in assessment.problems))


def _largest_difference(a: Any, b: Any) -> float:
    """Largest relative difference between the numbers of two answers (0 where they are equal)."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list) and len(a) == len(b):
        return max((_largest_difference(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float) and isinstance(b, float):
        return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b), 1e-300)
    return 0.0 if a == b else math.inf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="the model the service runs (for the request bodies)")
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--base", default="main", help="git revision of the baseline pk_estimate.py")
    parser.add_argument("--simulated", type=int, default=0,
                        help="instead of the request bodies: every level of this many simulated children in each of three worlds")
    args = parser.parse_args()
    from fhir_mapping import pk_estimate

    if not args.simulated and args.model is None:
        parser.error("--model is needed unless --simulated")
    charts = simulated(args.simulated) if args.simulated else record(args.model, args.children)
    base = base_module(args.base)
    modules = {"base": base, "candidate": pk_estimate}
    times: dict[str, list[list[float]]] = {name: [[] for _ in charts] for name in modules}
    lines_differ, largest_map, largest_other = 0, 0.0, 0.0
    for round_ in range(args.rounds):
        for index, chart in enumerate(charts):
            answers = {}
            for name, module in (modules.items() if round_ % 2 == 0 else reversed(modules.items())):
                elapsed, answers[name] = replay(module, chart)
                times[name][index].append(elapsed)
            if round_ == 0:
                old, new = answers["base"], answers["candidate"]
                lines_differ += sum(a != b for a, b in zip(old, new, strict=True) if isinstance(a, list))
                largest_map = max(largest_map, _largest_difference(old[0][:2], new[0][:2]))
                largest_other = max(largest_other, _largest_difference([old[0][2:], *old[1:]], [new[0][2:], *new[1:]]))
    per_chart = {name: [statistics.median(t) * 1e3 for t in chart_times] for name, chart_times in times.items()}
    calls = sum(len(c.calls) for c in charts)
    where = (f"estimates at the levels of {args.simulated} simulated children in each of three worlds" if args.simulated else
             f"charts with a measured level among the bodies of {args.children} children and the clinical charts")
    print(f"{len(charts)} {where}; {calls} calls on their assessments (individual_trough, level_lines); {args.rounds} rounds, interleaved")
    for name in modules:
        values = per_chart[name]
        print(f"{name:>9}: median {statistics.median(values):.3f} ms CPU per chart, mean {statistics.mean(values):.3f}, "
              f"max {max(values):.3f}")
    ratios = [b / c for b, c in zip(per_chart["base"], per_chart["candidate"], strict=True)]
    print(f"base / candidate: {statistics.median(per_chart['base']) / statistics.median(per_chart['candidate']):.2f}x on the medians, "
          f"per chart median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}x)")
    levels = [len(getattr(pk_estimate.estimate_at(chart.timeline, chart.day), "levels", ())) for chart in charts]
    for label, chosen in (("one level", [n == 1 for n in levels]), ("2+ levels", [n > 1 for n in levels])):
        picked = [i for i, keep in enumerate(chosen) if keep]
        if picked:
            base_ms = statistics.median(per_chart["base"][i] for i in picked)
            new_ms = statistics.median(per_chart["candidate"][i] for i in picked)
            print(f"  {label} ({len(picked)} charts): base {base_ms:.3f} ms, candidate {new_ms:.3f} ms, {base_ms / new_ms:.2f}x")
    print(f"card lines that differ: {lines_differ}; largest relative difference of the MAP CL/F and V/F (with their "
          f"intervals): {largest_map:.1e}; of every other number: {largest_other:.1e}")
    return 1 if lines_differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
