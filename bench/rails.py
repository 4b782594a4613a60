"""Clinical rails and honest confidence over a simulated cohort: violations, abstentions, calibration, true values.

Trains nothing: it takes a model folder (by default it builds the default model, conservative DQN on
1,500 simulated children, seed 0) and replays FRESH simulated children (another cohort seed) in the
counterfactual environment, with the state read through the FHIR mapping as in training, under:

* the model with the one mask (label bounds AND clinical rails), its choice always taken;
* what is served: the model's choice when its confidence is "clear", otherwise the rails' guidance;
* the model with the label bounds only (without clinical rails), and with every rail but the
  watchful waiting after a single seizure (what that one rail costs under the seizure-only reward);
* each child's simulated physician (allowed to break the rails: the breaks are counted).

For each: the true value (discounted mean reward, −100..100, ± SE), label and clinical-rail
violations (by rule), and for the served policy the share of clear / narrow / abstain. The calibration
of "clear" is measured on a smaller written cohort (every allowed dose replayed at sampled visits).

Every policy is replayed under each PD profile of ``--profiles`` on the same children, with its paired
difference from the physician (mean per-child difference of true values and its 95% interval); the
oracle bounds and the calibration of "clear" are measured in the first profile.

Usage: python bench/rails.py [--children 10000] [--seed 1] [--model DIR] [--calibration-children 400]
       [--profiles sourced,fitted]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1, help="cohort seed of the evaluation children (the default model trains on seed 0)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: build the default model)")
    parser.add_argument("--calibration-children", type=int, default=400)
    parser.add_argument("--calibration-points", type=int, default=400)
    parser.add_argument("--oracle-children", type=int, default=1000,
                        help="children for the oracle bounds (direct state: the oracle reads only the mask)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--profiles", default="sourced", help="comma-separated PD profiles (sourced, fitted)")
    args = parser.parse_args()

    from training.evaluation.confidence import calibration_table, decision_points
    from training.evaluation.simulated import (
        ModelPolicy,
        RailLedger,
        ServedPolicy,
        paired_difference,
        summarise_runs,
    )
    from training.inference import load_inference_model
    from training.pipeline import prepare
    from training.simulator.cohort import write_cohort
    from training.simulator.config import DEFAULT_CONFIG, with_pd_profile
    from training.simulator.environment import Environment

    figures: dict[str, Any] = {"children": args.children, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="epidose-rails-") as temporary:
        started = time.perf_counter()
        if args.model is None:
            from training.default_model import build_default_model

            model_dir = build_default_model(Path(temporary) / "model", progress=False)
            figures["default_model_seconds"] = round(time.perf_counter() - started, 1)
        else:
            model_dir = args.model
        model = load_inference_model(model_dir)
        figures["model"] = model.version
        figures["thresholds"] = model.confidence_thresholds.to_json()

        profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
        figures["by_profile"] = {}
        for profile in profiles:
            config = with_pd_profile(DEFAULT_CONFIG, profile)
            environment = Environment(args.children, args.seed, config, state="fhir")
            served = ServedPolicy(model, RailLedger())
            deferring = ServedPolicy(model, RailLedger(), defer_when_silent=True)
            policies: dict[str, ModelPolicy | ServedPolicy] = {
                "model with rails": ModelPolicy(model, ledger=RailLedger()),
                "served (clear model, else guidance)": served,
                # Where the card recommends nothing the clinician goes on without it: the physician decides there.
                "served, the physician deciding where the card is silent": deferring,
                "model without clinical rails": ModelPolicy(model, rails=False, ledger=RailLedger()),
                "model with rails but watchful waiting": ModelPolicy(model, skip=frozenset({"R-NO-START-AFTER-SINGLE-SEIZURE"}),
                                                                      ledger=RailLedger()),
            }
            results: dict[str, Any] = {}
            ledger = RailLedger()
            t = time.perf_counter()
            runs = environment.run(per_child=physician_of(config, ledger))
            physician = summarise_runs(runs, config, ledger)
            physician["seconds"] = round(time.perf_counter() - t, 1)
            print(f"[{profile}] physician: {physician['value']:.2f} ± {physician['value_se']:.2f}, rails {physician['rail_violations']}", flush=True)
            for name, policy in policies.items():
                t = time.perf_counter()
                runs = environment.run(policy, physician_decides_deferred=policy is deferring)
                summary = summarise_runs(runs, config, policy.ledger)
                if policy is deferring:
                    summary["deferred_decisions"] = deferring.deferred
                summary["paired_vs_physician"] = paired_difference(summary, physician)
                summary["seconds"] = round(time.perf_counter() - t, 1)
                results[name] = summary
                paired = summary["paired_vs_physician"]
                print(f"[{profile}] {name}: {summary['value']:.2f} ± {summary['value_se']:.2f}, vs physician "
                      f"{paired['mean']:+.2f} [{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}], label {summary['label_violations']}, "
                      f"rails {summary['rail_violations']} ({summary['seconds']} s)", flush=True)
            results["physician"] = physician
            for row in results.values():
                row.pop("returns_by_patient", None)
                row.pop("values_by_patient", None)
            total = sum(served.levels.values())
            figures["by_profile"][profile] = {
                "policies": results,
                "served_levels": {level: n / total for level, n in served.levels.items()} if total else {},
            }
        first = figures["by_profile"][profiles[0]]
        figures["policies"], figures["served_levels"] = first["policies"], first["served_levels"]

        t = time.perf_counter()
        figures["oracle"] = oracle_bounds(args.oracle_children, args.seed)
        figures["oracle_seconds"] = round(time.perf_counter() - t, 1)

        if args.calibration_children > 0:
            t = time.perf_counter()
            cohort = Path(temporary) / "calibration"
            write_cohort(cohort, args.calibration_children, args.seed + 1000)
            _, table, _ = prepare(cohort, 0)
            points = decision_points(cohort, model, table, table.patient_ids, max_points=args.calibration_points, seed=args.seed)
            figures["calibration"] = calibration_table(points, model, model.confidence_thresholds)
            figures["calibration_seconds"] = round(time.perf_counter() - t, 1)
        figures["seconds"] = round(time.perf_counter() - started, 1)
    print(render(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=float) + "\n", encoding="utf-8")


def physician_of(config: Any, ledger: Any) -> Any:
    """Each child's own simulated physician, recording the rails at every state it saw."""
    from training.evaluation.simulated import RecordingPhysician

    return lambda child: RecordingPhysician(child.physician, config, ledger)


def oracle_rails_policy(child: Any, config: Any, skip: frozenset[str]) -> Any:
    """The environment's oracle (true parameters, remission date), restricted to the one mask minus ``skip``."""
    from fhir_mapping.dosing import DOSE_CLASSES_MG, N_DOSE_CLASSES
    from training.dataset import timeline_rails
    from training.simulator.environment import DEFAULT_ORACLE_TARGET_EFFECT

    def policy(timeline: Any) -> int:
        visit = timeline.visits[-1]
        mask = timeline_rails(timeline, len(timeline.visits) - 1, skip=skip).allowed
        if child.single_seizure or visit.date >= child.remission_date:
            return min(i for i in range(N_DOSE_CLASSES) if mask[i])
        allowed = [c for c in range(1, N_DOSE_CLASSES) if mask[c]]
        if not allowed:
            return 0
        for dose_class in allowed:
            effect = child.drug_effect(child.average_concentration(DOSE_CLASSES_MG[dose_class], visit.date, config), config)
            if effect >= DEFAULT_ORACLE_TARGET_EFFECT:
                return dose_class
        return allowed[-1]

    return policy


def oracle_bounds(children: int, seed: int, profile: str = "sourced", *, clairvoyant: bool = False) -> dict[str, Any]:
    """True values of the oracle with the label bounds only, with every rail, and with every rail but watchful
    waiting, beside the physician: what any policy could reach under each constraint.

    With ``clairvoyant`` it also decomposes the label-bounds oracle's lead over the physician: the same oracle
    not knowing the course (remission, single seizure), the highest allowed dose with no knowledge at all
    (label bounds; every rail), and the clairvoyant search (training.evaluation.railed_bound) within the label
    bounds, every rail but watchful waiting, and every rail (the oracle held to the rails). Each row has its
    paired difference with the physician and the CPU seconds it took."""
    from training.evaluation.railed_bound import CLINICAL_RAIL_IDS
    from training.evaluation.simulated import paired_difference, railed_bound_row, summarise_runs
    from training.simulator.config import DEFAULT_CONFIG, with_pd_profile
    from training.simulator.environment import Environment, oracle_policy

    if children <= 0:
        return {}
    config = with_pd_profile(DEFAULT_CONFIG, profile)
    environment = Environment(children, seed, config, state="direct")
    waiting = frozenset({"R-NO-START-AFTER-SINGLE-SEIZURE"})
    variants: dict[str, Any] = {
        "oracle, label bounds only": lambda: environment.run(per_child=lambda child: oracle_policy(child, config)),
        "oracle with rails": lambda: environment.run(per_child=lambda child: oracle_rails_policy(child, config, frozenset())),
        "oracle with rails but watchful waiting": lambda: environment.run(per_child=lambda child: oracle_rails_policy(child, config, waiting)),
    }
    if clairvoyant:
        variants.update({
            "oracle, label bounds only, not knowing the course": lambda: environment.run(
                per_child=lambda child: oracle_policy(child, config, knows_course=False)),
            "highest allowed dose, label bounds only": lambda: environment.run(highest_dose_policy(CLINICAL_RAIL_IDS)),
            "highest allowed dose, every rail": lambda: environment.run(highest_dose_policy(frozenset())),
            "clairvoyant, label bounds only": lambda: railed_bound_row(environment.children, config, CLINICAL_RAIL_IDS),
            "clairvoyant, every rail but watchful waiting": lambda: railed_bound_row(environment.children, config, waiting),
            "clairvoyant, every rail (the oracle held to the rails)": lambda: railed_bound_row(environment.children, config),
        })
    out: dict[str, Any] = {"children": children, "profile": profile}
    physician = summarise_runs(environment.physician_runs(), config)
    out["physician"] = {"value": physician["value"], "value_se": physician["value_se"]}
    for name, play in variants.items():
        cpu = time.process_time()
        result = play()
        summary = result if isinstance(result, dict) else summarise_runs(result, config)
        out[name] = {"value": summary["value"], "value_se": summary["value_se"],
                     "paired_vs_physician": paired_difference(summary, physician),
                     "cpu_seconds": round(time.process_time() - cpu, 1)}
    return out


def highest_dose_policy(skip: frozenset[str]) -> Any:
    """The highest dose the one mask (minus ``skip``) allows: no knowledge of the child at all."""
    from fhir_mapping.dosing import N_DOSE_CLASSES
    from training.dataset import timeline_rails

    def policy(timeline: Any) -> int:
        mask = timeline_rails(timeline, len(timeline.visits) - 1, skip=skip).allowed
        return max(i for i in range(N_DOSE_CLASSES) if mask[i])

    return policy


def render_decomposition(bounds: dict[str, Any]) -> str:
    """The oracle decomposition of :func:`oracle_bounds` as a Markdown table."""
    lines = [f"{bounds['children']} fresh children (direct state), `{bounds['profile']}` profile:", "",
             "| reference | true value ± SE | vs physician, paired [95% CI] | CPU s |", "|---|---:|---|---:|"]
    for name, row in bounds.items():
        if not isinstance(row, dict):
            continue
        paired = row.get("paired_vs_physician")
        versus = "—" if paired is None else f"{paired['mean']:+.1f} [{paired['ci_low']:+.1f}, {paired['ci_high']:+.1f}]"
        lines.append(f"| {name} | {row['value']:.1f} ± {row['value_se']:.1f} | {versus} | {row.get('cpu_seconds', '—')} |")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render(figures: dict[str, Any]) -> str:
    lines = [f"{figures['children']} fresh simulated children (cohort seed {figures['seed']}), model {figures['model']}.", "",
             "| policy | PD profile | true value ± SE | vs physician, paired [95% CI] | seizure-free visits | decisions | "
             "label violations | rail violations | rails broken |",
             "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for profile, block in figures.get("by_profile", {"sourced": {"policies": figures["policies"]}}).items():
        for name, r in block["policies"].items():
            rules = ", ".join(f"{k} {v}" for k, v in r.get("rail_violations_by_rule", {}).items())
            paired = r.get("paired_vs_physician")
            versus = "—" if paired is None else f"{paired['mean']:+.2f} [{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}]"
            lines.append(f"| {name} | {profile} | {r['value']:.2f} ± {r['value_se']:.2f} | {versus} | {_pct(r['seizure_free_share'])} | "
                         f"{r['decisions']} | {r['label_violations']} | {r['rail_violations']} | {rules} |")
    oracle = figures.get("oracle") or {}
    if oracle:
        lines += ["", f"Bounds on {oracle['children']} other children (direct state): "
                  + "; ".join(f"{k} {v['value']:.2f} ± {v['value_se']:.2f}" for k, v in oracle.items() if isinstance(v, dict)) + "."]
    for profile, block in figures.get("by_profile", {"sourced": {"served_levels": figures.get("served_levels") or {}}}).items():
        levels = block.get("served_levels") or {}
        lines += ["", f"Served policy's confidence over its decisions ({profile}): " + ", ".join(f"{k} {_pct(v)}" for k, v in levels.items())]
    lines.append("")
    calibration = figures.get("calibration")
    if calibration:
        lines += [f"Calibration of \"clear\" ({calibration['points']} decision points of {calibration['children']} other children; best "
                  f"allowed = within {calibration['tie_tolerance']:g} points of the best dose's true value):", "",
                  "| confidence | points | share | choice is a best allowed dose | mean regret |", "|---|---:|---:|---:|---:|"]
        for row in calibration["rows"]:
            regret = "n/a" if row["mean_regret"] is None else f"{row['mean_regret']:.1f}"
            lines.append(f"| {row['level']} | {row['points']} | {_pct(row['share'])} | {_pct(row['best_allowed'])} | {regret} |")
    lines.append(f"\nTotal {figures['seconds']} s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
