"""What the default model needs to beat the simulated physicians under every PD profile.

Writes one simulated cohort (seed 0, the default model's) of the largest size asked for, once, and
trains the default configuration on its first N children (child i is the same child whatever the
cohort's size) for each N and step count asked for; each model is then judged on FRESH children
(another cohort seed), replayed in the counterfactual environment under every PD profile with common
random numbers:

* the model with the rails (the one mask; its choice always taken);
* the served policy (the model when its confidence is clear and it agrees with the guidance, else the
  rails' guidance: what the card offers);

each against the physician who generated the data (acting on the true course: the direct state, which
gives the same doses as the physician reading the ``epidose`` charts), as the paired difference of
per-child true values with its 95% interval. The models read the charts in ``--eval-dialect``.

CPU seconds (``time.process_time``) are printed beside wall seconds for each phase.

Usage: python bench/default_gate.py [--children 1500,3000,6000] [--steps 6000] [--dialect mixed]
       [--eval-children 600] [--eval-seed 1] [--eval-dialect mixed] [--json FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Clock:
    """CPU and wall seconds of a block."""

    def __enter__(self) -> Clock:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu = round(time.process_time() - self.cpu, 1)
        self.wall = round(time.perf_counter() - self.wall, 1)


def judge(model: Any, children: int, seed: int, dialect: str, profiles: list[str]) -> dict[str, Any]:
    """{profile: {policy: paired difference with the physician, true value, violations}, served levels}."""
    from training.evaluation.simulated import (
        ModelPolicy,
        RailLedger,
        ServedPolicy,
        paired_difference,
        summarise_runs,
    )
    from training.simulator.config import DEFAULT_CONFIG, with_pd_profile
    from training.simulator.environment import Environment

    out: dict[str, Any] = {}
    for profile in profiles:
        config = with_pd_profile(DEFAULT_CONFIG, profile)
        physician = summarise_runs(Environment(children, seed, config, state="direct").physician_runs(), config)
        environment = Environment(children, seed, config, state="fhir", dialect=dialect)
        served = ServedPolicy(model, RailLedger())
        rows: dict[str, Any] = {"physician": {"value": physician["value"]}}
        for name, policy in (("model with rails", ModelPolicy(model, ledger=RailLedger())), ("served", served)):
            summary = summarise_runs(environment.run(policy), config, policy.ledger)
            rows[name] = {"value": summary["value"], "paired": paired_difference(summary, physician),
                          "label_violations": summary["label_violations"], "rail_violations": summary["rail_violations"]}
        total = sum(served.levels.values())
        rows["clear_share"] = served.levels["clear"] / total if total else None
        out[profile] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", default="1500,3000,6000")
    parser.add_argument("--steps", default="6000")
    parser.add_argument("--dialect", default="mixed")
    parser.add_argument("--eval-children", type=int, default=600)
    parser.add_argument("--eval-seed", type=int, default=1)
    parser.add_argument("--eval-dialect", default="mixed", help="comma-separated chart dialects the models read")
    parser.add_argument("--profiles", default="sourced,fitted")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from training.dataset import LoadedData
    from training.default_model import DEFAULT_CONFIG as MODEL_CONFIG
    from training.inference import load_inference_model
    from training.pipeline import prepare, train_model
    from training.policies import named_config
    from training.simulator.cohort import write_cohort
    from training.simulator.config import DEFAULT_CONFIG
    from training.simulator.patients import draw_cohort

    sizes = [int(n) for n in args.children.split(",")]
    step_counts = [int(s) for s in args.steps.split(",")]
    profiles = [p for p in args.profiles.split(",") if p]
    figures: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}, "rows": []}
    with tempfile.TemporaryDirectory(prefix="epidose-gate-") as temporary:
        cohort = Path(temporary) / "cohort"
        with Clock() as simulate:
            write_cohort(cohort, max(sizes), 0, dialect=args.dialect)
        from training.dataset import load_data

        with Clock() as load:
            loaded = load_data(cohort)
        figures["simulate"] = {"children": max(sizes), "cpu": simulate.cpu, "wall": simulate.wall}
        figures["load"] = {"children": max(sizes), "cpu": load.cpu, "wall": load.wall}
        print(f"simulate+write {max(sizes)}: {simulate.cpu} s CPU ({simulate.wall} s wall); load {load.cpu} s CPU ({load.wall} s wall)",
              flush=True)
        order = [child.patient_id for child in draw_cohort(max(sizes), 0, DEFAULT_CONFIG)]
        by_id = {t.patient_id: t for t in loaded.timelines}
        for n in sizes:
            wanted = set(order[:n])
            subset = LoadedData([by_id[i] for i in order[:n] if i in by_id], loaded.behaviour, loaded.problems, loaded.source,
                                loaded.is_cohort)
            prepared = prepare(subset, 0)
            for steps in step_counts:
                config = dataclasses.replace(named_config(MODEL_CONFIG, seed=0), steps=steps)
                with Clock() as train:
                    folder, policy, _ = train_model(subset, Path(temporary) / f"model-{n}-{steps}", config, prepared=prepared)
                model = load_inference_model(folder)
                for eval_dialect in args.eval_dialect.split(","):
                    with Clock() as evaluate:
                        verdict = judge(model, args.eval_children, args.eval_seed, eval_dialect, profiles)
                    row = {"children": len(wanted), "steps": steps, "fit_seconds": round(policy.history.seconds, 1),
                           "fit_cpu": json.loads((folder / "metrics.json").read_text()).get("train_cpu_seconds"),
                           "train_and_thresholds_cpu": train.cpu, "eval_dialect": eval_dialect, "evaluate_cpu": evaluate.cpu,
                           "by_profile": verdict}
                    figures["rows"].append(row)
                    print(render_row(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n", encoding="utf-8")


def render_row(row: dict[str, Any]) -> str:
    parts = [f"{row['children']} children, {row['steps']} steps (fit {row['fit_cpu']} s CPU, {row['fit_seconds']} s wall; fit+thresholds {row['train_and_thresholds_cpu']} s "
             f"CPU; judged on {row['eval_dialect']} charts in {row['evaluate_cpu']} s CPU)"]
    for profile, rows in row["by_profile"].items():
        for name in ("model with rails", "served"):
            p = rows[name]["paired"]
            parts.append(f"  [{profile}] {name}: {rows[name]['value']:.2f} vs physician {rows['physician']['value']:.2f}: "
                         f"{p['mean']:+.2f} [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]; label {rows[name]['label_violations']}, "
                         f"rails {rows[name]['rail_violations']}")
        parts.append(f"  [{profile}] clear share {100 * (rows['clear_share'] or 0):.1f}%")
    return "\n".join(parts)


if __name__ == "__main__":
    main()
