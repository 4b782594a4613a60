"""True values on simulator data: replay the held-out children under each policy (counterfactual).

The simulator's cohort folder records its seed and configuration (``calibration.json``); every child
is deterministic for that seed, with common random numbers per visit, so any policy can be replayed
on exactly the children of the test split. The true value is the same quantity the off-policy
estimators target: the discounted return from the first visit, Σ_t γ^t r_t, with r_t the published
reward of the visit after decision t (the simulator knows every seizure, so no term is unknown).

The replay is the simulator's counterfactual environment (``training.simulator.environment``); this
module adapts a model folder to its ``policy(timeline) -> int`` interface and restricts it to the
held-out children. :func:`replay` (direct timelines, no FHIR round trip) is kept for quick checks.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fhir_mapping import features
from fhir_mapping.rails import RailOutcome
from fhir_mapping.timeline import PatientTimeline
from training.dataset import timeline_bounds, timeline_rails
from training.inference import InferenceModel
from training.simulator.physician import SimulatedPhysician

TimelinePolicy = Callable[[PatientTimeline], int]
# The adverse-effect weight at which the penalised true value is reported beside the published one
# (the conservative_ae configuration trains with it).
REPORTED_ADVERSE_EFFECT_WEIGHT = 0.2
# The row of the clairvoyant search within the one mask (training.evaluation.railed_bound).
RAILED_BOUND = "oracle held to the rails"


class RailLedger:
    """The label mask and the rails of every state a policy was asked about, keyed by (patient, visit date).

    Filled while the policy plays (on the very timeline it saw), read afterwards against the dose it
    chose, so the violations counted are those of the state the policy acted on.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[tuple[bool, ...], RailOutcome]] = {}

    def record(self, timeline: PatientTimeline) -> RailOutcome:
        index = len(timeline.visits) - 1
        bounds = timeline_bounds(timeline, index)
        outcome = timeline_rails(timeline, index)
        self.entries[(timeline.patient_id, timeline.visits[index].date.isoformat())] = (bounds.allowed, outcome)
        return outcome

    def violations(self, runs: Sequence[Any]) -> dict[str, Any]:
        """Decisions outside the label bounds, and inside them but outside the clinical rails (by rule)."""
        decisions = label = rails = 0
        by_rule: dict[str, int] = {}
        for run in runs:
            for visit in run.visits:
                entry = self.entries.get((run.child.patient_id, visit.date.isoformat()))
                if entry is None or visit.dose_class < 0:
                    continue
                label_mask, outcome = entry
                decisions += 1
                if not label_mask[visit.dose_class]:
                    label += 1
                elif not outcome.allowed[visit.dose_class]:
                    rails += 1
                    for fired in outcome.fired:
                        if visit.dose_class in fired.removed_classes:
                            by_rule[fired.rule_id] = by_rule.get(fired.rule_id, 0) + 1
        return {"decisions": decisions, "label_violations": label, "rail_violations": rails,
                "rail_violations_by_rule": dict(sorted(by_rule.items()))}


class ModelPolicy:
    """A model folder as ``policy(timeline) -> dose class``: the last visit's state, masked choice.

    The mask is the one the service uses (label bounds AND clinical rails); ``rails=False`` keeps only
    the label bounds and ``skip`` lifts the named rails, to measure what the clinical rails cost or gain.
    Violations are always counted against all the rails.
    """

    def __init__(self, model: InferenceModel, *, rails: bool = True, skip: frozenset[str] = frozenset(),
                 ledger: RailLedger | None = None) -> None:
        self.model = model
        self.rails = rails
        self.skip = skip
        self.ledger = ledger

    def __call__(self, timeline: PatientTimeline) -> int:
        index = len(timeline.visits) - 1
        values, observed = features.state_row(timeline, index)
        outcome = self.ledger.record(timeline) if self.ledger is not None else timeline_rails(timeline, index)
        if self.skip:
            outcome = timeline_rails(timeline, index, skip=self.skip)
        mask = outcome.allowed if self.rails else timeline_bounds(timeline, index).allowed
        choice, _, _ = self.model.recommend(values, observed, mask)
        return choice


def guidance_class(outcome: RailOutcome, current_mg_per_day: float | None) -> int:
    """The dose class the rails' guidance points to: its dose, 0 for "none", else the current dose kept
    (or the highest allowed dose below it when the bounds no longer allow it)."""
    from fhir_mapping.dosing import dose_class_of

    guidance = outcome.guidance
    if guidance is not None and guidance.mg_per_day is not None:
        return dose_class_of(guidance.mg_per_day)
    if guidance is not None and guidance.action == "none":
        return 0
    current = dose_class_of(current_mg_per_day or 0.0)
    return max(i for i in range(current + 1) if outcome.allowed[i])


class ServedPolicy:
    """What the service offers as recommended: the model's choice when its confidence is clear and it points
    the way the guidance does (:func:`fhir_mapping.rails.agrees_with_guidance`, as the cards apply it),
    otherwise the label/practice guidance of the rails (kept dose when the guidance names none). Tallies
    the levels; a clear choice against the guidance counts as abstained, as on the card."""

    def __init__(self, model: InferenceModel, ledger: RailLedger | None = None, *, defer_when_silent: bool = False) -> None:
        """``defer_when_silent``: where the card recommends nothing (no clear choice and the guidance cannot say),
        return :data:`training.simulator.simulate.DEFER_TO_CLINICIAN` so that the child's physician decides, as a
        clinician does when the card is silent; those decisions are the physician's, not counted as the card's
        (they leave the ledger) and tallied as ``deferred``."""
        self.model = model
        self.ledger = ledger
        self.defer_when_silent = defer_when_silent
        self.levels: dict[str, int] = {"clear": 0, "narrow": 0, "abstain": 0}
        self.deferred = 0

    def __call__(self, timeline: PatientTimeline) -> int:
        from fhir_mapping.dosing import DOSE_CLASSES_MG
        from fhir_mapping.rails import agrees_with_guidance, facts_at

        index = len(timeline.visits) - 1
        values, observed = features.state_row(timeline, index)
        outcome = self.ledger.record(timeline) if self.ledger is not None else timeline_rails(timeline, index)
        choice, scores, _ = self.model.recommend(values, observed, outcome.allowed)
        confidence = self.model.confidence(scores, outcome.allowed, self.model.coverage_share(values, observed))
        facts = facts_at(timeline, index)
        level = confidence.level
        if level == "clear" and not agrees_with_guidance(facts, outcome.guidance, DOSE_CLASSES_MG[choice]):
            level = "abstain"
        self.levels[level] += 1
        if level == "clear":
            return choice
        if self.defer_when_silent and (outcome.guidance is None or outcome.guidance.action == "no-recommendation"):
            from training.simulator.simulate import DEFER_TO_CLINICIAN

            self.deferred += 1
            if self.ledger is not None:
                self.ledger.entries.pop((timeline.patient_id, timeline.visits[index].date.isoformat()), None)
            return DEFER_TO_CLINICIAN
        return guidance_class(outcome, facts.current_mg_per_day)


class RecordingPhysician(SimulatedPhysician):
    """The simulated physician, unchanged (it may go against the clinical rails), with its states recorded."""

    def __init__(self, traits: Any, config: Any, ledger: RailLedger) -> None:
        super().__init__(traits, config)
        self.ledger = ledger

    def probabilities(self, timeline: PatientTimeline, mask: tuple[bool, ...] | None = None) -> np.ndarray:
        self.ledger.record(timeline)
        return super().probabilities(timeline, mask)


def recording(policy: TimelinePolicy, ledger: RailLedger) -> TimelinePolicy:
    """Any timeline policy, with the states it is asked about recorded in ``ledger``."""

    def recorded(timeline: PatientTimeline) -> int:
        ledger.record(timeline)
        return policy(timeline)

    return recorded


def cohort_setup(data_dir: str | Path) -> tuple[int, int, Any] | None:
    """(seed, patients, simulator config) of a cohort folder, or None when it is not a simulator cohort."""
    folder = Path(data_dir)
    calibration = folder / "calibration.json"
    patients_file = folder / "truth" / "patients.jsonl"
    if not calibration.exists() or not patients_file.exists():
        return None
    from training.simulator.config import SimulatorConfig

    report = json.loads(calibration.read_text(encoding="utf-8"))
    config = SimulatorConfig.from_json(report["config"]) if "config" in report else SimulatorConfig()
    with patients_file.open(encoding="utf-8") as lines:
        n_patients = sum(1 for line in lines if line.strip())
    return int(report.get("seed", 0)), n_patients, config


def discounted_return(rewards: np.ndarray, gamma: float) -> float:
    return float((np.asarray(rewards) * gamma ** np.arange(len(rewards))).sum())


def replay(children: Sequence[Any], config: Any, policy: TimelinePolicy | None, gamma: float) -> dict[str, Any]:
    """Run each child under ``policy`` (None: its own physician) and summarise the true outcomes."""
    from training.simulator.physician import SimulatedPhysician
    from training.simulator.simulate import run_child

    returns: list[float] = []
    by_patient: dict[str, float] = {}
    rewards: list[float] = []
    seizure_free: list[bool] = []
    adverse: list[bool] = []
    outside: list[bool] = []
    visits = 0
    for child in children:
        acting = policy if policy is not None else SimulatedPhysician(child.physician, config)
        run = run_child(child, config, acting, record_probabilities=False)
        r = run.rewards(config)
        returns.append(discounted_return(r, gamma))
        by_patient[child.patient_id] = returns[-1]
        rewards.extend(r.tolist())
        seizure_free.extend(not v.seizure_since_last_visit for v in run.visits[1:])
        adverse.extend(v.adverse_effect for v in run.visits[1:])
        outside.extend(not v.allowed[v.dose_class] for v in run.visits)
        visits += len(run.visits)
    return {
        "value": float(np.mean(returns)),
        "mean_reward_per_visit": float(np.mean(rewards)) if rewards else float("nan"),
        "seizure_free_share": float(np.mean(seizure_free)) if seizure_free else float("nan"),
        "adverse_effect_rate": float(np.mean(adverse)) if adverse else float("nan"),
        "out_of_bounds_share": float(np.mean(outside)) if outside else float("nan"),
        "visits_per_child": visits / max(1, len(children)),
        "returns_by_patient": by_patient,
    }


def true_values_for_models(
    data_dir: str | Path,
    models: dict[str, InferenceModel],
    patient_ids: Sequence[str],
    *,
    gamma: float = 0.9,
    include_physician: bool = True,
    include_oracle: bool = True,
    without_rails: bool = False,
    lifted_rails: Sequence[str] = (),
    state: str = "fhir",
    dialect: str = "epidose",
    pd_profile: str | None = None,
    railed_bound: bool = False,
) -> dict[str, dict[str, Any]] | None:
    """{policy name: true outcomes} for the models, the physician and the oracle on the given children, or None.

    Uses the simulator's counterfactual :class:`training.simulator.environment.Environment` with the
    state built by ``fhir_mapping.build`` from the FHIR emitted so far (``state="fhir"``), the same
    path the training data took, so the models see at replay exactly what they were trained on;
    ``dialect`` is the simulator's FHIR dialect that state is read from (training.simulator.fhir). Each
    policy's label and clinical-rail violations are counted on the states it saw; ``without_rails``
    adds each model restricted by the label bounds only ("NAME without clinical rails"), and each id in
    ``lifted_rails`` the model with every rail but that one ("NAME without RULE-ID"), to show its cost.
    ``pd_profile`` replays the same children in another exposure–response world (the cohort's own by default).
    ``railed_bound`` adds :data:`RAILED_BOUND` ("oracle held to the rails"): each child's best dose sequence
    within the one mask, found by the clairvoyant search of :mod:`training.evaluation.railed_bound` on the
    direct state of the same children (about 0.1 s of CPU per child).
    """
    setup = cohort_setup(data_dir)
    if setup is None:
        return None
    from training.simulator.environment import Environment, oracle_policy

    seed, n_patients, config = setup
    if pd_profile is not None:
        from training.simulator.config import with_pd_profile

        config = with_pd_profile(config, pd_profile)
    if abs(config.gamma - gamma) > 1e-12:
        config = dataclasses.replace(config, gamma=gamma)
    environment = Environment(n_patients, seed, config, state=state, dialect=dialect)
    wanted = set(patient_ids)
    environment.children = [child for child in environment.children if child.patient_id in wanted]
    if not environment.children:
        return None
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        ledger = RailLedger()
        results[name] = summarise_runs(environment.run(ModelPolicy(model, ledger=ledger)), config, ledger)
        if without_rails:
            ledger = RailLedger()
            results[f"{name} without clinical rails"] = summarise_runs(
                environment.run(ModelPolicy(model, rails=False, ledger=ledger)), config, ledger)
        for rule_id in lifted_rails:
            ledger = RailLedger()
            results[f"{name} without {rule_id}"] = summarise_runs(
                environment.run(ModelPolicy(model, skip=frozenset({rule_id}), ledger=ledger)), config, ledger)
    if include_physician:
        ledger = RailLedger()
        results["physician"] = summarise_runs(
            environment.run(per_child=lambda child: RecordingPhysician(child.physician, config, ledger)), config, ledger)
    if include_oracle:
        ledger = RailLedger()
        results["oracle"] = summarise_runs(
            environment.run(per_child=lambda child: recording(oracle_policy(child, config), ledger)), config, ledger)
    if railed_bound:
        results[RAILED_BOUND] = railed_bound_row(environment.children, config)
    return results


def railed_bound_row(children: Sequence[Any], config: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The true outcomes of each child's best dose sequence within the one mask (minus ``skip``), replayed
    on the direct state with its rails recorded, so its violations are counted like any policy's."""
    from training.evaluation.railed_bound import best_plan, rails_mask
    from training.simulator.simulate import run_child

    mask_of = rails_mask(skip)
    ledger = RailLedger()
    runs = []
    for child in children:
        plan = best_plan(child, config, mask_of)
        runs.append(run_child(child, config, recording(planned_doses(plan.actions), ledger)))
    return summarise_runs(runs, config, ledger)


def planned_doses(actions: Sequence[int]) -> TimelinePolicy:
    """A policy that gives a planned dose sequence, the visit's index choosing the dose."""

    def policy(timeline: PatientTimeline) -> int:
        return int(actions[len(timeline.visits) - 1])

    return policy


def summarise_runs(runs: Sequence[Any], config: Any, ledger: RailLedger | None = None) -> dict[str, Any]:
    """The environment's PolicyValue of finished runs, each child's discounted return, and (with the
    ledger of the states the policy saw) its label and clinical-rail violations."""
    from training.simulator.environment import value_of_runs

    value = value_of_runs(runs, config).to_json()
    by_patient = {run.child.patient_id: discounted_return(run.rewards(config), config.gamma)
                  for run in runs if len(run.visits) > 1}
    values_by_patient = {run.child.patient_id: float(np.average(run.rewards(config), weights=config.gamma ** np.arange(len(run.visits) - 1)))
                         for run in runs if len(run.visits) > 1}
    weighted = value_of_runs(runs, dataclasses.replace(config, adverse_effect_weight=REPORTED_ADVERSE_EFFECT_WEIGHT))
    headline = value.get("mean_discounted_reward", value.get("mean_discounted_return"))
    return {
        # The environment's headline: per child Σ γ^t r / Σ γ^t (−100..100), so that a policy is not
        # credited for longer follow-up; "discounted_return" (Σ γ^t r) is what Q and the OPE estimate.
        "value": headline,
        "value_se": value.get("discounted_reward_se", value.get("discounted_return_se")),
        "discounted_return": value.get("mean_discounted_return"),
        "mean_reward_per_visit": value.get("mean_reward"),
        "seizure_free_share": value.get("seizure_free_visit_share"),
        "adverse_effect_rate": value.get("adverse_effect_rate"),
        "somnolence_rate": value.get("somnolence_rate"),
        "out_of_bounds_share": value.get("out_of_label_share"),
        "mean_days_to_remission": value.get("mean_days_to_remission"),
        "patients": value.get("patients"),
        "value_with_adverse_effects": weighted.mean_discounted_reward,
        "returns_by_patient": by_patient,
        "values_by_patient": values_by_patient,
        **(ledger.violations(runs) if ledger is not None else {}),
    }


def paired_difference(row: dict[str, Any], reference: dict[str, Any], z: float = 1.96) -> dict[str, float]:
    """Mean per-child difference of true values (row − reference) on the children both followed past the
    first visit, with its normal 95% interval: the children and their random numbers are the same."""
    ids = sorted(set(row["values_by_patient"]) & set(reference["values_by_patient"]))
    differences = np.array([row["values_by_patient"][i] - reference["values_by_patient"][i] for i in ids])
    if differences.size < 2:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "children": int(differences.size)}
    mean = float(differences.mean())
    half = z * float(differences.std(ddof=1)) / math.sqrt(differences.size)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "children": int(differences.size)}


def gap_closed(row: dict[str, Any], physician: dict[str, Any], oracle: dict[str, Any]) -> float:
    """Share of the physician → oracle gap in true value that a policy closes (1 = as good as the oracle)."""
    gap = oracle["value"] - physician["value"]
    return float((row["value"] - physician["value"]) / gap) if gap else float("nan")


def sensitivity(
    data_dir: str | Path,
    models: dict[str, InferenceModel],
    patient_ids: Sequence[str],
    *,
    profiles: Sequence[str] | None = None,
    gamma: float = 0.9,
    state: str = "fhir",
    dialect: str = "epidose",
    without_rails: bool = False,
    lifted_rails: Sequence[str] = (),
    railed_bound: bool = False,
) -> dict[str, dict[str, dict[str, Any]]] | None:
    """{profile: {policy: true outcomes + paired difference with the physician + gap closed}} for every
    PD profile, each on the same held-out children; None when ``data_dir`` is not a simulator cohort.

    ``gap_closed`` is against the label-bounds oracle; with ``railed_bound`` each row also has
    ``gap_closed_railed``, against the oracle held to the rails, and ``paired_vs_railed_bound``."""
    from training.simulator.config import PD_PROFILE_NAMES

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for profile in profiles or PD_PROFILE_NAMES:
        rows = true_values_for_models(data_dir, models, patient_ids, gamma=gamma, state=state, pd_profile=profile,
                                      dialect=dialect, without_rails=without_rails, lifted_rails=lifted_rails,
                                      railed_bound=railed_bound)
        if rows is None:
            return None
        physician, oracle = rows["physician"], rows["oracle"]
        bound = rows.get(RAILED_BOUND)
        for row in rows.values():
            row["paired_vs_physician"] = paired_difference(row, physician)
            row["gap_closed"] = gap_closed(row, physician, oracle)
            if bound is not None:
                row["gap_closed_railed"] = gap_closed(row, physician, bound)
                row["paired_vs_railed_bound"] = paired_difference(row, bound)
                row["dominated_by_railed_bound"] = dominated_share(bound, row)
        out[profile] = rows
    return out


def dominated_share(bound: dict[str, Any], row: dict[str, Any]) -> float:
    """Share of the children both followed past the first visit on whom ``bound`` is at least as good as ``row``."""
    ids = sorted(set(row["values_by_patient"]) & set(bound["values_by_patient"]))
    if not ids:
        return float("nan")
    return float(np.mean([bound["values_by_patient"][i] >= row["values_by_patient"][i] - 1e-9 for i in ids]))


def beats_physician_everywhere(rows_by_profile: dict[str, dict[str, dict[str, Any]]], name: str) -> tuple[bool, dict[str, float]]:
    """(whether the lower 95% bound of the paired difference with the physician is above 0 under every
    profile, that lower bound per profile): the condition for a default or promoted model on simulated data."""
    bounds = {profile: float(rows[name]["paired_vs_physician"]["ci_low"]) for profile, rows in rows_by_profile.items()}
    return bool(bounds) and all(b > 0 for b in bounds.values()), bounds
