"""Evaluate a model folder on a data folder: metrics.json, report.md and PNG plots.

The model is evaluated through :func:`training.inference.load_inference_model`, the numpy path the
service uses, so the report judges exactly what is served. Patients are split with the seed stored in
the model, and only the held-out test split is scored (``split="all"`` scores every patient, for data
the model never saw).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fhir_mapping.dosing import DOSE_CLASSES_G
from training.artifact.save import write_json
from training.dataset import LoadedData, VisitTable, split_patients, visit_table
from training.evaluation import agreement, ope, plots
from training.evaluation.clinician import clinician_sections, training_divergence
from training.evaluation.score import Evaluated, behaviour_policies, held_out_metrics, score_split
from training.inference import InferenceModel, load_inference_model

METRIC_KEYS = ("paper_table", "mean_class_accuracy", "weighted_mae_g", "top1_agreement", "within_one_step",
               "macro_f1", "kappa", "agreement_limit", "ope", "true_value", "safety_violations", "train_seconds",
               "steps")


def published_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json holds exactly the agreed keys; everything else goes to details.json."""
    return {key: metrics.get(key) for key in METRIC_KEYS}


def agreement_limit(behaviour_truth: np.ndarray | None) -> float | None:
    """Best achievable expected top-1 agreement with a stochastic physician: mean over visits of max_a π_b(a|s)."""
    if behaviour_truth is None or len(behaviour_truth) == 0:
        return None
    return float(np.mean(behaviour_truth.max(axis=1)))


def mean_predicted_value(model: InferenceModel, evaluated: Evaluated) -> float | None:
    """Mean Q(s₀, π(s₀)) over first visits: what a DQN believes its policy is worth (None for non-Q models)."""
    if model.score_kind != "q":
        return None
    first = np.flatnonzero(evaluated.data.step == 0)
    if len(first) == 0:
        return None
    return float(evaluated.scores[first, evaluated.recommended[first]].mean())


def overestimation_by_first_dose(model: InferenceModel, evaluated: Evaluated,
                                 true_returns: dict[str, float] | None) -> list[dict[str, Any]] | None:
    """Where a DQN over-estimates: predicted Q(s₀, π(s₀)) against the true return, by its first recommended dose."""
    if model.score_kind != "q" or not true_returns:
        return None
    first = np.flatnonzero(evaluated.data.step == 0)
    ids = [evaluated.table.patient_ids[int(p)] for p in evaluated.data.patient[first]]
    rows = []
    for k in np.unique(evaluated.recommended[first]):
        members = [i for i, row in enumerate(first) if evaluated.recommended[row] == k and ids[i] in true_returns]
        if not members:
            continue
        predicted = float(evaluated.scores[first[members], k].mean())
        true = float(np.mean([true_returns[ids[i]] for i in members]))
        rows.append({"dose_g": float(DOSE_CLASSES_G[int(k)]), "children": len(members), "predicted_q": predicted,
                     "true_value": true, "overestimate": predicted - true})
    return rows


def evaluate_model(
    model_dir: str | Path,
    loaded: LoadedData,
    out_dir: str | Path,
    *,
    split: str = "test",
    table: VisitTable | None = None,
    true_values: dict[str, Any] | None = None,
    bootstrap_samples: int = ope.BOOTSTRAP_SAMPLES,
    fqe_steps: int = 2000,
    calibration_points: int | None = None,
) -> dict[str, Any]:
    """Write REPORT/metrics.json, details.json, report.md and plots for one model; returns all metrics.

    ``calibration_points`` (default :data:`training.evaluation.confidence.DEFAULT_POINTS`; 0 skips it)
    held-out decision points are judged against the simulator's truth for the calibration table.
    """
    started = time.perf_counter()
    model = load_inference_model(model_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = table if table is not None else visit_table(loaded.timelines, loaded.behaviour)
    seed = int(model.metadata.get("split_seed", 0))
    splits = split_patients(table.patient_ids, seed)
    test_ids = table.patient_ids if split == "all" else splits["test"]
    train_ids = splits["train"]
    test = score_split(model, table.subset(test_ids))
    train = score_split(model, table.subset(train_ids))
    prescribed = test.data.actions
    confidence = confidence_metrics(model, loaded, table, test.table, test_ids, calibration_points)
    behaviour, train_behaviour = behaviour_policies(train.table, [test.table, train.table], seed=seed)
    gamma = float(model.config.get("gamma", 0.9))
    q_function = ope.fitted_q_evaluation(train.data, ope.soft_policy(train.recommended, train.data.masks),
                                         gamma=gamma, steps=fqe_steps, seed=seed)
    scored = held_out_metrics(test, behaviour.probabilities, q_function, gamma=gamma, seed=seed,
                              samples=bootstrap_samples)
    metrics: dict[str, Any] = dict(scored["agreement"])
    metrics["safety_violations"] = scored["safety_violations"]
    metrics["unmasked_out_of_bounds"] = agreement.safety_violations(test.raw, test.data.masks)
    metrics["rail_violations_held_out"] = {
        "model": rail_violation_counts(test.recommended, test.table),
        "model without any mask": rail_violation_counts(test.raw, test.table),
        "physician (logged)": rail_violation_counts(prescribed, test.table),
    }
    metrics["confidence"] = confidence
    metrics["agreement_limit"] = agreement_limit(test.table.behaviour_probs)
    metrics["ope"] = scored["ope"]
    physician_target = behaviour.probabilities
    physician_fqe = ope.fitted_q_evaluation(train.data, train_behaviour.probabilities,
                                            gamma=gamma, steps=fqe_steps, seed=seed)
    metrics["ope_physician"] = ope.off_policy_values(test.data, physician_target, behaviour.probabilities,
                                                     physician_fqe, gamma=gamma, seed=seed, samples=bootstrap_samples)
    metrics["ope_settings"] = {"epsilon": ope.EPSILON, "gamma": gamma, "bootstrap_samples": bootstrap_samples,
                               "behaviour_policy": behaviour.source, "patients": len(test_ids)}
    metrics["mean_predicted_q"] = mean_predicted_value(model, test)
    own_returns = (true_values or {}).get("model", {}).get("returns_by_patient")
    metrics["overestimation_by_first_dose"] = overestimation_by_first_dose(model, test, own_returns)
    details = dict(true_values or {})
    metrics["true_value"] = {name: detail["value"] for name, detail in details.items()}
    metrics["true_value_detail"] = details
    history = model.metadata.get("history", {})
    metrics["training_divergence"] = training_divergence(history, gamma)
    metrics["train_seconds"] = float(history.get("seconds", 0.0))
    metrics["steps"] = int(history.get("total_steps", 0))
    metrics["model"] = {"version": model.version, "config_name": model.config_name, "kind": model.kind,
                        "schema_hash": model.schema_hash}
    metrics["split"] = {"name": split, "seed": seed, "patients": len(test_ids), "visits": len(test.data)}
    metrics["evaluation_seconds"] = time.perf_counter() - started
    plots.loss_curve(history, out / "loss_curve.png", f"{model.config_name}: training loss")
    plots.dose_distribution(prescribed, test.recommended, out / "dose_distribution.png")
    plots.confusion(agreement.confusion_matrix(test.recommended, prescribed), out / "confusion_matrix.png")
    write_json(out / "metrics.json", published_metrics(metrics))
    write_json(out / "details.json", {k: v for k, v in metrics.items() if k not in METRIC_KEYS})
    (out / "report.md").write_text(render_report(metrics), encoding="utf-8")
    return metrics


def rail_violation_counts(actions: np.ndarray, table: VisitTable) -> dict[str, int]:
    """Visits whose dose is outside the label bounds, and inside them but outside the clinical rails."""
    rows = np.arange(len(actions))
    combined = np.asarray(table.masks, dtype=bool)[rows, actions] if len(actions) else np.zeros(0, bool)
    label_masks = table.label_masks if table.label_masks is not None else table.masks
    label = np.asarray(label_masks, dtype=bool)[rows, actions] if len(actions) else np.zeros(0, bool)
    return {"visits": len(actions), "label_violations": int((~label).sum()), "rail_violations": int((label & ~combined).sum())}


def confidence_metrics(model: InferenceModel, loaded: LoadedData, table: VisitTable, test_table: VisitTable,
                       test_ids: list[str], points: int | None) -> dict[str, Any]:
    """The model's thresholds, its abstentions on the held-out visits and, on simulated data, the calibration of "clear"."""
    from training.evaluation import confidence

    thresholds = model.confidence_thresholds
    result: dict[str, Any] = {"thresholds": thresholds.to_json(), "held_out": confidence.abstention_summary(model, test_table)}
    n_points = confidence.DEFAULT_POINTS if points is None else points
    if n_points > 0:
        decision_points = confidence.decision_points(loaded.source, model, table, test_ids, max_points=n_points)
        result["calibration"] = confidence.calibration_table(decision_points, model, thresholds)
    return result


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_report(metrics: dict[str, Any]) -> str:
    """The Markdown report: the clinicians' opening (clinician.py), honest agreement, off-policy and true values, safety."""
    model = metrics["model"]
    lines = [
        f"# Evaluation of {model['config_name']} ({model['version']})",
        "",
        f"Split: {metrics['split']['name']} (seed {metrics['split']['seed']}), "
        f"{metrics['split']['patients']} patients, {metrics['split']['visits']} visits. "
        f"Trained {metrics['steps']} steps in {metrics['train_seconds']:.1f} s.",
        "",
        *clinician_sections(metrics),
        "## Honest agreement",
        "",
        "| measure | model |",
        "|---|---:|",
        f"| top-1 agreement | {100 * metrics['top1_agreement']:.1f}% |",
        f"| within one dose step | {100 * metrics['within_one_step']:.1f}% |",
        f"| macro-F1 | {metrics['macro_f1']:.3f} |",
        f"| Cohen's kappa | {metrics['kappa']:.3f} |",
        f"| best achievable top-1 (agreement limit) | {_pct(metrics['agreement_limit'])} |",
        f"| rare-dose recommendations (model / physician) | {100 * metrics['rare_dose_share_model']:.1f}% / "
        f"{100 * metrics['rare_dose_share_physician']:.1f}% |",
        "",
        "## Value of the policy",
        "",
        f"Off-policy estimates on the held-out patients (behaviour policy: {metrics['ope_settings']['behaviour_policy']}; "
        f"evaluated policy ε-soft with ε = {metrics['ope_settings']['epsilon']}; γ = {metrics['ope_settings']['gamma']}; "
        "95% bootstrap intervals over patients; ESS = effective number of patients behind the weights).",
        "",
        "| estimator | model | 95% CI | ESS | physician |",
        "|---|---:|---|---:|---:|",
    ]
    for name in ("wis", "wdr", "fqe"):
        row = metrics["ope"][name]
        physician = metrics.get("ope_physician", {}).get(name, {})
        lines.append(f"| {name.upper()} | {_fmt(row['value'], 1)} | [{_fmt(row['ci_low'], 1)}, {_fmt(row['ci_high'], 1)}] | "
                     f"{_fmt(row['ess'], 1)} | {_fmt(physician.get('value'), 1)} |")
    true_value = metrics.get("true_value") or {}
    if true_value:
        details = metrics.get("true_value_detail") or {}
        lines += ["", "True outcomes in the simulator's counterfactual environment (the same held-out children replayed",
                  "under each policy, state read through the FHIR mapping). True value = per child the discounted mean",
                  "reward Σγᵗr/Σγᵗ (−100..100; not inflated by longer follow-up), averaged over children; discounted",
                  "return Σγᵗr is the quantity Q-values and the off-policy estimators above target.", "",
                  "| policy | true value (± SE) | discounted return | reward/visit | seizure-free visits | adverse effects "
                  "| out of bounds |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, value in true_value.items():
            d = details.get(name, {})
            lines.append(f"| {name} | {_fmt(value, 1)} ± {_fmt(d.get('value_se'), 1)} | {_fmt(d.get('discounted_return'), 1)} | "
                         f"{_fmt(d.get('mean_reward_per_visit'), 1)} | "
                         f"{_pct(d.get('seizure_free_share'))} | {_pct(d.get('adverse_effect_rate'))} | "
                         f"{_pct(d.get('out_of_bounds_share'))} |")
        served, physician = true_value.get("model"), true_value.get("physician")
        if served is not None and physician is not None:
            verdict = "at least" if served >= physician else "below"
            lines += ["", f"With the one mask (label bounds and clinical rails) the model's true value is {served:.1f}, "
                      f"**{verdict} the physician's** {physician:.1f}."]
    predicted = metrics.get("mean_predicted_q")
    if predicted is not None:
        lines += ["", "## Over-estimation", "",
                  f"Mean predicted Q(s₀, π(s₀)) on first visits: **{predicted:.1f}**; "
                  f"FQE of the same policy: {_fmt(metrics['ope']['fqe']['value'], 1)}."]
        own = (metrics.get("true_value_detail") or {}).get("model", {}).get("discounted_return")
        if own is not None:
            gap = predicted - own
            verdict = "over-estimates" if gap > 0 else "under-estimates"
            lines.append(f"True discounted return of the same policy: {own:.1f}. The model **{verdict} its own value "
                         f"by {abs(gap):.1f}** (reward scale ±100 per visit, discounted with γ = "
                         f"{metrics['ope_settings']['gamma']}).")
        where = metrics.get("overestimation_by_first_dose")
        if where:
            lines += ["", "By the dose the model recommends at the first visit (where the over-estimation sits):", "",
                      "| first dose (g/day) | children | predicted Q | true value | over-estimate |", "|---:|---:|---:|---:|---:|"]
            lines += [f"| {r['dose_g']:g} | {r['children']} | {r['predicted_q']:.1f} | {r['true_value']:.1f} | "
                      f"{r['overestimate']:+.1f} |" for r in where]
    lines += ["", "## Safety", "",
              f"Recommendations outside the one mask (label bounds and clinical rails): **{metrics['safety_violations']}** "
              f"(must be 0). Unmasked argmax outside it (what the mask had to prevent): "
              f"{metrics['unmasked_out_of_bounds']}.", ""]
    lines += render_violations(metrics)
    lines += render_confidence(metrics.get("confidence"))
    lines += ["", "Plots: `loss_curve.png`, `dose_distribution.png`, `confusion_matrix.png`.", ""]
    return "\n".join(lines)


def render_violations(metrics: dict[str, Any]) -> list[str]:
    """Label and clinical-rail violations per policy: held-out visits and the simulated replay."""
    lines = ["### Label and clinical-rail violations", "",
             "Decisions outside the label bounds, and within them but against a clinical rail (fhir_mapping/rails.py),",
             "counted on the state each policy saw. The served model must have 0 of both; the physician may not.", "",
             "| policy | where | decisions | label violations | rail violations | rails broken |", "|---|---|---:|---:|---:|---|"]
    for name, row in (metrics.get("rail_violations_held_out") or {}).items():
        lines.append(f"| {name} | held-out visits | {row['visits']} | {row['label_violations']} | {row['rail_violations']} | |")
    for name, detail in (metrics.get("true_value_detail") or {}).items():
        if "decisions" not in detail:
            continue
        rules = ", ".join(f"{rule} {n}" for rule, n in detail.get("rail_violations_by_rule", {}).items())
        lines.append(f"| {name} | simulated replay | {detail['decisions']} | {detail['label_violations']} | "
                     f"{detail['rail_violations']} | {rules} |")
    return lines


def render_confidence(confidence: dict[str, Any] | None) -> list[str]:
    """Thresholds, abstentions and the calibration table of "clear"."""
    if not confidence:
        return []
    thresholds = confidence["thresholds"]
    margin = thresholds.get("clear_margin")
    bound = thresholds.get("score_bound")
    lines = ["", "## Honest confidence", "",
             f"Thresholds ({thresholds.get('chosen', '')}): coverage at least {100 * thresholds['min_coverage']:.0f}% of training "
             f"states; clear when the best allowed score leads the next by at least "
             f"{'∞ (never)' if margin is None else f'{margin:.2f}'}; scores must lie within "
             f"{'n/a' if bound is None else f'±{bound:.0f}'} (100/(1−γ)).", ""]
    held = confidence.get("held_out") or {}
    if held.get("visits"):
        lines += [f"On the {held['visits']} held-out visits: clear {_pct(held.get('clear_share'))}, narrow "
                  f"{_pct(held.get('narrow_share'))}, abstain {_pct(held.get('abstain_share'))}.", ""]
        reasons = held.get("abstain_reasons") or {}
        if reasons:
            lines += ["| reason for abstaining | visits |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
            lines.append("")
    calibration = confidence.get("calibration")
    if calibration:
        lines += [f"Calibration on {calibration['points']} held-out simulated decision points ({calibration['children']} children):",
                  "every allowed dose replayed in the simulator (physician's doses before, the served policy after);",
                  f"\"best allowed\" = within {calibration['tie_tolerance']:g} points of the best dose's discounted mean reward.", "",
                  "| confidence | points | share | choice is a best allowed dose | mean regret |", "|---|---:|---:|---:|---:|"]
        for row in calibration["rows"]:
            lines.append(f"| {row['level']} | {row['points']} | {_pct(row['share'])} | {_pct(row['best_allowed'])} | "
                         f"{_fmt(row['mean_regret'], 1)} |")
        lines.append(f"| all | {calibration['points']} | 100.0% | {_pct(calibration['choice_is_best_allowed'])} | |")
    return lines


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


DOSE_GRAMS = DOSE_CLASSES_G
