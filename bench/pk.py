"""Benchmark: the individual PK estimate (fhir_mapping.pk_estimate) against the simulator's truth.

For simulated children whose physicians draw levetiracetam levels (the simulator's levels, with the
clock time of the draw and the request's timing note), the charts are written as FHIR and read back
by the mapping, and at every visit with a level the estimate is made as the service makes it
(``estimate_at(timeline, visit day)``). Against each child's true clearance it prints:

- the median absolute % error of CL/F: the typical child's (prior) vs the MAP estimate (posterior);
- how often the 90% posterior interval holds the true CL/F (goal 90 ± 3%), by what the record said
  about the sampling time (recorded time, trough flag, nothing);
- the error of the predicted trough after a dose change (the dose decided at that visit when it
  changed, and twice the current dose), typical vs individual;
- the same in worlds whose variability differs from the priors (misspecification);
- the time per estimate on the service path (timeline already read; median of many), beside the
  time to read the same chart from FHIR (the mapping the service runs anyway) as the baseline.

Run from the repository root:  python bench/pk.py [--children 1500]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_mapping import pharmacokinetics as pk  # noqa: E402
from fhir_mapping import pk_estimate  # noqa: E402
from fhir_mapping.build import build_timeline  # noqa: E402
from fhir_mapping.dosing import DOSE_CLASSES_MG  # noqa: E402
from training.simulator.cohort import simulate_cohort  # noqa: E402
from training.simulator.config import DEFAULT_CONFIG, SimulatorConfig  # noqa: E402
from training.simulator.fhir import child_resources  # noqa: E402

# Worlds. "priors" draws children exactly as the estimate assumes; "simulator" is the cohort's own
# configuration (BSV 30%, residual 17.5%); the misspecified worlds are wider than the priors.
V_CV_OF_PRIORS = math.sqrt(math.expm1(pk_estimate.OMEGA_V**2))
WORLDS: dict[str, dict[str, object]] = {
    "priors (CL 40%, V 29%, residual 20%)": {"cl_bsv_cv": pk_estimate.CL_BSV_CV, "v_bsv_cv": V_CV_OF_PRIORS, "residual_cv": pk_estimate.SIGMA},
    "simulator default (CL 30%, V 20%, residual 17.5%)": {},
    "misspecified: wider (CL 60%, V 40%, residual 30%)": {"cl_bsv_cv": 0.60, "v_bsv_cv": 0.40, "residual_cv": 0.30},
    "misspecified: clearance 30% lower than the priors' typical value": {"cl_reference_l_per_h": 0.7 * pk.CL_REF_L_PER_H},
    "priors, levels drawn at any time (0.5–12 h)": {"cl_bsv_cv": pk_estimate.CL_BSV_CV, "v_bsv_cv": V_CV_OF_PRIORS, "residual_cv": pk_estimate.SIGMA, "level_sampling_hours": (0.5, 12.0)},
}
LEVEL_PROBABILITY = 0.5  # more levels per child than the cohort's 12%, so the figures rest on many


def evaluate(config: SimulatorConfig, children: int, seed: int) -> dict[str, object]:
    runs = simulate_cohort(children, seed, config)
    prior_err, post_err, covered = [], [], []
    by_kind: dict[str, list[bool]] = defaultdict(list)
    trough_change: dict[str, list[float]] = defaultdict(list)
    trough_double: dict[str, list[float]] = defaultdict(list)
    estimate_ms: list[float] = []
    read_ms: list[float] = []
    readings: dict[str, int] = defaultdict(int)
    missed: dict[str, int] = defaultdict(int)
    by_count: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    for run in runs:
        level_visits = [v for v in run.visits if "lev_level" in v.labs]
        if not level_visits:
            continue
        resources = child_resources(run)
        started = time.thread_time()
        timeline = build_timeline(resources)
        read_ms.append((time.thread_time() - started) * 1000)
        for visit in level_visits:
            started = time.thread_time()
            assessment = pk_estimate.estimate_at(timeline, visit.date)
            estimate_ms.append((time.thread_time() - started) * 1000)
            if assessment is None or not assessment.has_estimate or assessment.clearance_l_per_h is None:
                readings["no estimate"] += 1
                continue
            truth = run.child.pk_parameters(visit.date, config)
            true_cl = float(truth.clearance)
            estimate, low, high = assessment.clearance_l_per_h
            typical = assessment.typical_clearance_l_per_h or float("nan")
            prior_err.append(abs(typical / true_cl - 1))
            post_err.append(abs(estimate / true_cl - 1))
            inside = low <= true_cl <= high
            covered.append(inside)
            missed["truth below" if true_cl < low else "truth above" if true_cl > high else "inside"] += 1
            count_key = "one level" if len(assessment.levels) == 1 else "2+ levels"
            by_count[count_key].append((prior_err[-1], post_err[-1], inside))
            kind = assessment.latest.timing.kind if assessment.latest else "?"
            by_kind[kind].append(inside)
            for note in assessment.interpretation:
                key = "within" if note.startswith("the level is within") else "like the earlier levels" if "like this child's earlier" in note else note.split("?")[0] + "?" if "?" in note[:45] else note.split(":")[0]
                readings[key] += 1
            current = assessment.latest.mg_per_day if assessment.latest else 0.0
            decided = DOSE_CLASSES_MG[visit.dose_class] if visit.dose_class >= 0 else 0.0
            targets = [("double", 2 * current)] + ([("change", decided)] if decided > 0 and decided != current else [])
            for label, mg in targets:
                true_trough = float(pk.steady_state_of(mg, truth).trough)
                individual = assessment.individual_trough(mg)
                population = assessment.typical_trough(mg)
                if individual is None or population is None:
                    continue
                store = trough_double if label == "double" else trough_change
                store["prior"].append(abs(population[0] / true_trough - 1))
                store["posterior"].append(abs(individual[0] / true_trough - 1))
                if label == "double":
                    trough_double[f"{count_key} prior"].append(store["prior"][-1])
                    trough_double[f"{count_key} posterior"].append(store["posterior"][-1])
    return {
        "estimates": len(post_err), "prior": _median(prior_err), "posterior": _median(post_err),
        "coverage": float(np.mean(covered)) if covered else float("nan"),
        "coverage_by_kind": {k: (float(np.mean(v)), len(v)) for k, v in sorted(by_kind.items())},
        "trough_change": {k: _median(v) for k, v in trough_change.items()}, "trough_change_n": len(trough_change["posterior"]),
        "trough_double": {k: _median(v) for k, v in trough_double.items()},
        "estimate_ms": statistics.median(estimate_ms) if estimate_ms else float("nan"),
        "read_ms": statistics.median(read_ms) if read_ms else float("nan"), "timings": len(estimate_ms),
        "readings": dict(readings), "missed": dict(missed),
        "by_count": {k: (len(v), _median([a for a, _, _ in v]), _median([b for _, b, _ in v]), float(np.mean([c for _, _, c in v]))) for k, v in sorted(by_count.items())},
    }


def _median(values: list[float]) -> float:
    return 100 * statistics.median(values) if values else float("nan")


def service_path_ms(repeats: int) -> tuple[float, float, float, float]:
    """Median ms of estimate_at (wall and CPU), of level_lines and of reading the same chart (warm).

    The CPU time (this thread's) is the figure to trust on a shared machine: wall time includes the
    waits for a core."""
    config = dataclasses.replace(DEFAULT_CONFIG, level_probability=LEVEL_PROBABILITY)
    run = next(r for r in simulate_cohort(40, 11, config) if sum("lev_level" in v.labs for v in r.visits) >= 2)
    resources = child_resources(run)
    timeline = build_timeline(resources)
    day = [v.date for v in run.visits if "lev_level" in v.labs][-1]
    estimate, cpu, lines, reading = [], [], [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.thread_time()
        assessment = pk_estimate.estimate_at(timeline, day)
        estimate.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        started = time.perf_counter()
        if assessment is not None:
            pk_estimate.level_lines(assessment, 1000.0, 1500.0)
        lines.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        build_timeline(resources)
        reading.append((time.perf_counter() - started) * 1000)
    return statistics.median(estimate), statistics.median(cpu), statistics.median(lines), statistics.median(reading)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    print(f"children per world {args.children}, level probability per treated visit {LEVEL_PROBABILITY}, seed {args.seed}")
    for name, overrides in WORLDS.items():
        config = dataclasses.replace(DEFAULT_CONFIG, level_probability=LEVEL_PROBABILITY, **overrides)  # type: ignore[arg-type]
        started = time.perf_counter()
        result = evaluate(config, args.children, args.seed)
        print(f"\n## {name}  ({time.perf_counter() - started:.0f} s)")
        print(f"estimates {result['estimates']}; median |error| of CL/F: prior {result['prior']:.1f}%, posterior {result['posterior']:.1f}%")
        change, double = result["trough_change"], result["trough_double"]
        kinds = ", ".join(f"{k} {100 * c:.1f}% (n={n})" for k, (c, n) in result["coverage_by_kind"].items())  # type: ignore[attr-defined]
        print(f"90% interval coverage of the true CL/F: {100 * result['coverage']:.1f}%  [{kinds}]")  # type: ignore[operator]
        counts = "; ".join(f"{k} (n={n}): CL/F prior {a:.1f}% → posterior {b:.1f}%, coverage {100 * c:.1f}%, trough at twice the dose "
                           f"prior {double.get(k + ' prior', float('nan')):.1f}% → posterior {double.get(k + ' posterior', float('nan')):.1f}%"  # type: ignore[attr-defined]
                           for k, (n, a, b, c) in result["by_count"].items())  # type: ignore[attr-defined]
        print(f"by levels used: {counts}")
        print(f"trough after the physician's dose change (n={result['trough_change_n']}): prior {change.get('prior', float('nan')):.1f}%, "  # type: ignore[attr-defined]
              f"posterior {change.get('posterior', float('nan')):.1f}%;  at twice the dose: prior {double.get('prior', float('nan')):.1f}%, "  # type: ignore[attr-defined]
              f"posterior {double.get('posterior', float('nan')):.1f}%")  # type: ignore[attr-defined]
        print(f"median CPU time: estimate_at {result['estimate_ms']:.2f} ms over {result['timings']} estimates; reading the chart from FHIR {result['read_ms']:.2f} ms")
        print(f"where the truth fell: {result['missed']}; readings of the latest level: {result['readings']}")
    estimate, cpu, lines, reading = service_path_ms(args.repeats)
    print(f"\nservice path, one chart with 2+ levels, {args.repeats} repeats: estimate_at {estimate:.2f} ms wall ({cpu:.2f} ms CPU), level_lines {lines:.3f} ms, "
          f"build_timeline of the same chart {reading:.2f} ms (estimate / read = {estimate / reading:.2f})")


if __name__ == "__main__":
    main()
