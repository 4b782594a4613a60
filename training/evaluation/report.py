"""Evaluate a model folder on a data folder: metrics.json, report.md and PNG plots.

The model is evaluated through :func:`training.inference.load_inference_model`, the numpy path the
service uses, so the report judges exactly what is served. Patients are split with the seed stored in
the model, and only the held-out test split is scored (``split="all"`` scores every patient, for data
the model never saw).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fhir_mapping.dosing import DOSE_CLASSES_G
from training.artifact import write_json
from training.dataset import LoadedData, Transitions, VisitTable, split_patients, to_transitions, visit_table
from training.evaluation import agreement, ope, plots
from training.evaluation.clinician import clinician_sections, training_divergence
from training.inference import InferenceModel, load_inference_model, masked_argmax
from training.policies.physician import PhysicianPolicy

BEHAVIOUR_ESTIMATE_STEPS = 2000
METRIC_KEYS = ("paper_table", "mean_class_accuracy", "weighted_mae_g", "top1_agreement", "within_one_step",
               "macro_f1", "kappa", "agreement_limit", "ope", "true_value", "safety_violations", "train_seconds",
               "steps")


def published_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json holds exactly the agreed keys; everything else goes to details.json."""
    return {key: metrics.get(key) for key in METRIC_KEYS}


@dataclass
class Evaluated:
    """Rows of one split, imputed with the model's statistics, with the model's choices."""

    table: VisitTable
    data: Transitions
    scores: np.ndarray
    recommended: np.ndarray
    raw: np.ndarray


def score_split(model: InferenceModel, table: VisitTable) -> Evaluated:
    """Impute with the model's training statistics, score, and choose over allowed doses only."""
    data = to_transitions(table, model.imputation)
    scores = model.scores(data.states) if len(data) else np.zeros((0, 12))
    return Evaluated(table, data, scores, masked_argmax(scores, data.masks) if len(data) else np.zeros(0, np.int64),
                     scores.argmax(axis=1) if len(data) else np.zeros(0, np.int64))


def estimated_behaviour(train: Transitions, states: np.ndarray, seed: int) -> np.ndarray:
    """Physician probabilities estimated by behaviour cloning on the training split (when no truth exists)."""
    from training.policies.bc import BehaviourCloning
    from training.policies.config import BCConfig

    clone = BehaviourCloning(BCConfig(steps=BEHAVIOUR_ESTIMATE_STEPS, seed=seed), train.states.shape[1])
    clone.fit(train)
    return clone.probabilities(states)


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
) -> dict[str, Any]:
    """Write REPORT/metrics.json, details.json, report.md and plots for one model; returns all metrics."""
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
    metrics: dict[str, Any] = agreement.agreement_metrics(test.recommended, prescribed)
    metrics["safety_violations"] = agreement.safety_violations(test.recommended, test.data.masks)
    metrics["unmasked_out_of_bounds"] = agreement.safety_violations(test.raw, test.data.masks)
    truth = test.table.behaviour_probs
    metrics["agreement_limit"] = agreement_limit(truth)
    if truth is not None:
        behaviour = PhysicianPolicy(truth, "truth")
    else:
        behaviour = PhysicianPolicy(estimated_behaviour(train.data, test.data.states, seed), "estimated")
    gamma = float(model.config.get("gamma", 0.9))
    q_function = ope.fitted_q_evaluation(train.data, ope.soft_policy(train.recommended, train.data.masks),
                                         gamma=gamma, steps=fqe_steps, seed=seed)
    metrics["ope"] = ope.off_policy_values(test.data, ope.soft_policy(test.recommended, test.data.masks),
                                           behaviour.probabilities, q_function, gamma=gamma, seed=seed,
                                           samples=bootstrap_samples)
    physician_target = behaviour.probabilities
    physician_fqe = ope.fitted_q_evaluation(train.data, _train_behaviour(train, behaviour, truth, seed),
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


def _train_behaviour(train: Evaluated, behaviour: PhysicianPolicy, truth: np.ndarray | None, seed: int) -> np.ndarray:
    """Physician probabilities on the training rows (truth when present, else the same BC estimate)."""
    if train.table.behaviour_probs is not None and truth is not None:
        return train.table.behaviour_probs
    return estimated_behaviour(train.data, train.data.states, seed)


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
              f"Recommendations outside the label bounds: **{metrics['safety_violations']}** (must be 0). "
              f"Unmasked argmax outside the bounds (what clipping would have had to fix): "
              f"{metrics['unmasked_out_of_bounds']}.", "",
              "Plots: `loss_curve.png`, `dose_distribution.png`, `confusion_matrix.png`.", ""]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


DOSE_GRAMS = DOSE_CLASSES_G
