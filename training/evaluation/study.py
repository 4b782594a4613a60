"""The recorded study: train every configuration on one cohort, evaluate each on the held-out patients.

    python -m training.evaluation.study --data COHORT --out DIR [--steps N] [--seed S]

Writes DIR/<config>/ (model folder with report/) for paper, double, conservative, conservative_light,
conservative_ae, bc and forest, and DIR/summary.md + DIR/summary.json comparing them: agreement, off-policy values, true
values (on simulator cohorts, every policy replayed on the same held-out children, with the
physician's), and safety. The patient split is the same for all (seed S), so the comparison is paired.

On simulator cohorts every policy is also replayed under every PD profile (sourced and fitted
exposure–response worlds, same children, same random numbers): DIR/sensitivity.md has, per policy and
profile, the true value, the paired difference with the physician and its 95% interval, the share of
the physician → oracle gap closed, seizure-free visits, adverse effects and label violations, and
whether the policy beats the physician under every profile (lower bound above 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from training.artifact.save import write_json
from training.evaluation.report import evaluate_model
from training.evaluation.simulated import (
    RAILED_BOUND,
    REPORTED_ADVERSE_EFFECT_WEIGHT,
    beats_physician_everywhere,
    cohort_setup,
    sensitivity,
)
from training.inference import InferenceModel, load_inference_model
from training.pipeline import prepare, train_model
from training.policies import named_config

STUDY_CONFIGS = ("paper", "double", "conservative", "conservative_light", "conservative_ae", "bc", "forest")
_PER_CHILD_KEYS = ("returns_by_patient", "values_by_patient")


def run_study(data_dir: str | Path, out_dir: str | Path, *, steps: int | None = None, seed: int = 0,
              configs: tuple[str, ...] = STUDY_CONFIGS, progress: bool = True, reuse: bool = False,
              railed_bound: bool = False) -> dict[str, Any]:
    """Train and evaluate every configuration; returns the summary written to summary.json.

    ``railed_bound`` adds the oracle held to the rails (training.evaluation.railed_bound) to the sensitivity
    rows, and a second gap-closed column against it."""
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(data_dir, seed)
    loaded, table, dataset = prepared
    prepare_seconds = time.perf_counter() - started
    models: dict[str, InferenceModel] = {}
    for name in configs:
        config = named_config(name, seed=seed)
        if steps is not None and name != "forest":
            config = dataclasses.replace(config, steps=steps)
        if reuse and (out / name / "metadata.json").exists():
            models[name] = load_inference_model(out / name)  # trained by an earlier run of the same study
            continue
        folder, _, _ = train_model(data_dir, out / name, config, split_seed=seed, progress=progress, prepared=prepared)
        models[name] = load_inference_model(folder)
    setup = cohort_setup(data_dir) if loaded.is_cohort else None
    by_profile = sensitivity(data_dir, models, dataset.splits["test"], railed_bound=railed_bound) if setup is not None else None
    true_values = None if by_profile is None or setup is None else by_profile[setup[2].pd_profile]
    summary: dict[str, Any] = {"data": str(data_dir), "seed": seed, "steps": steps, "prepare_seconds": prepare_seconds,
                               "splits": {k: len(v) for k, v in dataset.splits.items()}, "policies": {}}
    for name in configs:
        own = None
        if true_values is not None:
            own = {"model": true_values[name], "physician": true_values["physician"], "oracle": true_values["oracle"]}
        metrics = evaluate_model(out / name, loaded, out / name / "report", table=table, true_values=own)
        summary["policies"][name] = {key: metrics[key] for key in (
            "top1_agreement", "within_one_step", "macro_f1", "kappa", "mean_class_accuracy", "weighted_mae_g",
            "agreement_limit", "safety_violations", "unmasked_out_of_bounds", "ope", "mean_predicted_q", "train_seconds",
            "steps", "rare_dose_share_model")}
        summary["agreement_limit"] = metrics["agreement_limit"]
    summary["true_value"] = None if true_values is None else {
        name: {k: v for k, v in row.items() if k not in _PER_CHILD_KEYS} for name, row in true_values.items()}
    if by_profile is not None and setup is not None:
        summary["cohort_pd_profile"] = setup[2].pd_profile
        summary["sensitivity"] = {profile: {name: {k: v for k, v in row.items() if k not in _PER_CHILD_KEYS}
                                            for name, row in rows.items()} for profile, rows in by_profile.items()}
        summary["beats_physician_everywhere"] = {}
        for name in configs:
            passed, bounds = beats_physician_everywhere(by_profile, name)
            summary["beats_physician_everywhere"][name] = {"passed": passed, "ci_low_by_profile": bounds}
        summary["safety_violations"] = {name: summary["policies"][name]["safety_violations"] for name in configs}
    summary["seconds"] = time.perf_counter() - started
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(render_summary(summary), encoding="utf-8")
    if "sensitivity" in summary:
        (out / "sensitivity.md").write_text(render_sensitivity(summary), encoding="utf-8")
    return summary


def render_sensitivity(summary: dict[str, Any]) -> str:
    """Every policy under every PD profile on the same held-out children, paired with the physician."""
    sensitivity_rows = summary["sensitivity"]
    names = list(next(iter(sensitivity_rows.values())))
    railed = RAILED_BOUND in names
    lines = [f"Held-out test split: {summary['splits']['test']} children (cohort simulated under the "
             f"`{summary['cohort_pd_profile']}` profile; the models trained on it), each replayed under every profile.", "",
             "| policy | profile | true value [95% CI] | vs physician, paired [95% CI] | gap closed | "
             + ("gap closed, railed | better than the railed oracle on | " if railed else "") + "seizure-free visits "
             f"| behavioural AE | somnolence | value with AE term (w = {REPORTED_ADVERSE_EFFECT_WEIGHT:g}) | label violations | rail violations (replayed decisions) |",
             "|---|---|---:|---|---:|" + ("---:|---:|" if railed else "") + "---:|---:|---:|---:|---:|---:|"]
    violations = summary.get("safety_violations", {})
    for name in names:
        for profile, rows in sensitivity_rows.items():
            row = rows[name]
            paired = row["paired_vs_physician"]
            versus = "—" if name == "physician" else f"{paired['mean']:+.1f} [{paired['ci_low']:+.1f}, {paired['ci_high']:+.1f}]"
            closed = "—" if name in ("physician", "oracle") else f"{100 * row['gap_closed']:.0f}%"
            label = violations.get(name)
            label_text = f"{label} (held-out visits)" if label is not None else f"{_pct(row['out_of_bounds_share'])} of decisions"
            value, se = row["value"], row["value_se"]
            columns = [f"{_f(value)} [{_f(value - 1.96 * se)}, {_f(value + 1.96 * se)}]", versus, closed]
            if railed:
                mine = name in ("physician", RAILED_BOUND)
                columns.append("—" if mine else f"{100 * row['gap_closed_railed']:.0f}%")
                columns.append("—" if name == RAILED_BOUND else f"{100 * (1 - row['dominated_by_railed_bound']):.1f}% of children")
            columns += [_pct(row["seizure_free_share"]), _pct(row["adverse_effect_rate"]), _pct(row.get("somnolence_rate")),
                        _f(row.get("value_with_adverse_effects")), label_text, str(row.get("rail_violations", "n/a"))]
            lines.append(f"| {name} | {profile} | " + " | ".join(columns) + " |")
    lines += ["", "Beats the physician under every profile (lower 95% bound of the paired difference above 0):"]
    for name, verdict in summary.get("beats_physician_everywhere", {}).items():
        bounds = ", ".join(f"{profile} {bound:+.1f}" for profile, bound in verdict["ci_low_by_profile"].items())
        lines.append(f"- {name}: {'yes' if verdict['passed'] else 'no'} (lower bounds: {bounds})")
    return "\n".join(lines) + "\n"


def _f(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_summary(summary: dict[str, Any]) -> str:
    """A Markdown comparison of every policy on the held-out patients."""
    limit = summary.get("agreement_limit")
    lines = [f"Held-out test split: {summary['splits']['test']} patients (train {summary['splits']['train']}, "
             f"validation {summary['splits']['validation']}), seed {summary['seed']}.", "",
             "| policy | top-1 | within 1 step | macro-F1 | kappa | Table-1 mean acc. | MAE (g) | WIS [95% CI] (ESS) "
             "| WDR [95% CI] | FQE | mean predicted Q | true discounted return | true value (± SE) | seizure-free visits "
             "| adverse effects | safety violations |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    true_values = summary.get("true_value") or {}
    for name, m in summary["policies"].items():
        ope = m["ope"]
        truth = true_values.get(name, {})
        lines.append(
            f"| {name} | {100 * m['top1_agreement']:.1f}% | {100 * m['within_one_step']:.1f}% | {m['macro_f1']:.3f} | "
            f"{m['kappa']:.3f} | {100 * m['mean_class_accuracy']:.1f}% | {m['weighted_mae_g']:.3f} | "
            f"{_f(ope['wis']['value'])} [{_f(ope['wis']['ci_low'])}, {_f(ope['wis']['ci_high'])}] ({_f(ope['wis']['ess'])}) | "
            f"{_f(ope['wdr']['value'])} [{_f(ope['wdr']['ci_low'])}, {_f(ope['wdr']['ci_high'])}] | {_f(ope['fqe']['value'])} | "
            f"{_f(m['mean_predicted_q'])} | {_f(truth.get('discounted_return'))} | {_f(truth.get('value'))} ± "
            f"{_f(truth.get('value_se'))} | {_pct(truth.get('seizure_free_share'))} | "
            f"{_pct(truth.get('adverse_effect_rate'))} | {m['safety_violations']} |")
    for reference in ("physician", "oracle"):
        row = true_values.get(reference)
        if row:
            lines.append(f"| {reference} | — | — | — | — | — | — | — | — | — | — | {_f(row['discounted_return'])} | "
                         f"{_f(row['value'])} ± {_f(row['value_se'])} | {_pct(row['seizure_free_share'])} | "
                         f"{_pct(row['adverse_effect_rate'])} | {_pct(row['out_of_bounds_share'])} out of label |")
    lines += ["", f"Agreement limit (best achievable expected top-1 against the stochastic physician): {_pct(limit)}."]
    best = max(summary["policies"].items(), key=lambda item: item[1]["top1_agreement"])
    if limit:
        lines.append(f"Best-agreeing policy: {best[0]} at {100 * best[1]['top1_agreement']:.1f}% top-1 = "
                     f"{100 * best[1]['top1_agreement'] / limit:.1f}% of the limit.")
    paper = summary["policies"].get("paper")
    if paper and paper.get("mean_predicted_q") is not None and "paper" in true_values:
        gap = paper["mean_predicted_q"] - true_values["paper"]["discounted_return"]
        lines.append(f"The `paper` configuration predicts a mean Q(s₀, π(s₀)) of {paper['mean_predicted_q']:.1f} on first "
                     f"visits against a true discounted return of {true_values['paper']['discounted_return']:.1f}: it "
                     f"{'over' if gap > 0 else 'under'}-estimates by {abs(gap):.1f} (per first dose: "
                     "paper/report/report.md).")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description="Train and evaluate every configuration on one cohort.")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default=",".join(STUDY_CONFIGS))
    parser.add_argument("--reuse", action="store_true", help="evaluate model folders already in OUT instead of retraining")
    args = parser.parse_args()
    summary = run_study(args.data, args.out, steps=args.steps, seed=args.seed, configs=tuple(args.configs.split(",")),
                        reuse=args.reuse)
    print(render_summary(summary))
    if "sensitivity" in summary:
        print(render_sensitivity(summary))


if __name__ == "__main__":
    main()
