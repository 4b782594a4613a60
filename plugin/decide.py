"""From a validated hook request and its gathered data to one card and its audit record.

:func:`decide` runs named steps, each a function with typed input and output, in the order a
clinician would ask the questions:

1. :func:`select_draft` (order hooks): is a levetiracetam order being written? If not, nothing to say.
2. :func:`judge_call_scope`: does the data belong to the patient in context (data for another patient
   is named as such), and, on patient-view, is the patient in scope (:mod:`fhir_mapping.scope`)? If
   not, no card, and a metric.
3. :func:`check_data`: the timeline, and whether the data can be trusted: missing, unreadable,
   another patient's or implausible data is named precisely and never answered with a dose.
4. :func:`assess_levels`: the individual PK assessment of measured levels (information, never blocking).
5. :func:`apply_rails`: the facts and the one mask, label bounds AND clinical rails
   (:func:`fhir_mapping.rails.clinical_rails`).
6. :func:`run_model`: the state imputed once, scored; the model chooses within the mask, and the
   service re-checks the choice against it.
7. :func:`judge`: honest confidence (:func:`training.inference.judge_confidence`).
8. :func:`settle`: the model's choice is recommended only when clear; a clear choice that contradicts
   the practice guidance for the situation is not offered either (a model trained on simulated
   children does not overrule sourced practice silently), otherwise the card shows the guidance with
   "no confident model recommendation"; a dose above the label or renal maximum is lowered whatever
   else applies.
9. :func:`describe` and :func:`plugin.cards.dose_card`: the card's words; :func:`decided_record` (or
   :func:`stopped_record`) what each step decided, for the audit log (:class:`plugin.audit.DecisionRecord`).

The FHIR-to-state path is the one the model was trained on (``fhir_mapping``: collect, timeline,
features).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fhir_mapping import dosing, rails
from fhir_mapping.build import PLAUSIBLE_RANGES, build_timeline
from fhir_mapping.inputs import collect_prefetch, collect_resources, draft_orders, parse_date, reference_id
from fhir_mapping.medication import is_levetiracetam, normalise_medication_request
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.scope import Scope, judge_scope
from fhir_mapping.timeline import PatientTimeline, Visit
from plugin.audit import DecisionRecord, ModelSeen, ProblemSeen
from plugin.cards import LEV_ORDER_ITEM, LEV_TAKEN_ITEM, DataProblem, Decision, RuleShown, dose_card
from plugin.errors import ModelUnavailable, PreconditionFailed
from plugin.gather import Gathered
from plugin.model import InferenceModel

if TYPE_CHECKING:
    from training.inference import Confidence

# Prefetch keys without which no decision is possible: if they cannot be obtained at all, 412.
REQUIRED_KEYS = ("patient", "weight")
ORDER_HOOKS = ("order-select", "order-sign")
# Older than this, the card says which visit it is based on (seizure reports since are unknown).
RECENT_VISIT_DAYS = 30
# The published R2 window, "seizures in the last 3 months" (domain.md §1).
RECENT_SEIZURE_DAYS: Final = 91
# What each measured item is called on a card, and whether a bad value of it stops the decision:
# weight sets the maximum; creatinine, eGFR (and height, with a creatinine) set the renal adjustment.
MEASURED_ITEMS: Final[dict[str, str]] = {"weight": "body weight", "height": "body height",
                                         "creatinine": "creatinine", "egfr": "eGFR", "lev_level": "levetiracetam level"}
ITEM_OF_PREFETCH: Final[dict[str, str]] = {
    "patient": "the Patient (age and sex)", "weight": "body weight", "height": "body height",
    "seizures": "the seizure reports", "labs": "the laboratory results", "conditions": "the diagnoses",
    "medications": "the medication orders", "statements": "the medicines taken (MedicationStatement)",
    "encounters": "the encounters", "notes": "the clinical notes",
    "questionnaires": "the questionnaire answers"}
# The seizure items of a visit (the published state's seizure history, and R1-R3), and what each kind of
# source of fhir_mapping.timeline.Provenance is called on a card.
SEIZURE_ITEMS: Final = ("seizure_since_last_visit", "seizure_count_since_last_visit", "seizure_duration_class",
                        "seizure_last_3_months", "seizure_last_6_months")
SOURCE_WORDS: Final[dict[str, str]] = {"code": "coded observations", "observation": "coded observations",
                                       "questionnaire": "questionnaire", "condition": "conditions",
                                       "encounter": "encounters", "visit-reason": "encounter reasons", "text": "note text"}
MAX_SOURCES_SHOWN: Final = 3  # resources named per kind of source on the card


@dataclass
class Outcome:
    """The response cards and, for each dose card, the record of what each step decided."""

    cards: list[dict[str, Any]]
    audit: list[DecisionRecord]
    out_of_scope: str | None = None  # the reason, when the patient is not one the service is for


def decide(hook: str, context: dict[str, Any], gathered: Gathered, model: InferenceModel | None,
           report_url: str, today: date | None = None, questionnaire_url: str | None = None) -> Outcome:
    """Cards for one hook call: the steps below, in the order of the module docstring."""
    today = today or datetime.now(UTC).date()
    patient_id = context["patientId"]
    _require_keys(gathered)
    draft = select_draft(hook, context)
    if draft is None:
        return Outcome([], [])  # nothing to say about orders that are not levetiracetam
    call = judge_call_scope(hook, gathered, patient_id, draft, today)
    if not call.answered:
        return Outcome([], [], out_of_scope=call.scope.reason)
    situation = check_data(call, gathered, patient_id, draft, today)
    decision = decision_of(hook, context, call.scope, situation, draft, questionnaire_url)
    assessment = assess_levels(situation, today)
    decision.level_lines = level_lines(assessment, situation.visit, situation.weight_kg, situation.egfr,
                                       situation.current_mg_per_day, None)
    visit = situation.visit
    if decision.blocked or visit is None:
        if visit is None and not decision.blocked:
            situation.problems.append(DataProblem("missing", "a visit", "no dated observation or encounter: the course is unknown"))
        card = dose_card(decision, report_url)
        return Outcome([card], [stopped_record(card, hook, call.scope, situation)])
    if model is None:
        raise ModelUnavailable("no model is loaded yet")
    railed = apply_rails(situation, assessment)
    scored = run_model(model, situation.timeline, railed.outcome)
    confidence = judge(model, scored, railed.outcome)
    settle(decision, railed, scored, confidence)
    describe(decision, situation, visit, railed, assessment, draft, today)
    card = dose_card(decision, report_url)
    return Outcome([card], [decided_record(card, hook, call.scope, situation, railed, scored, confidence, decision, draft, today)])


# --- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftOrder:
    """Order hooks: the levetiracetam draft under review (selected first), and its daily dose if readable."""

    resource: dict[str, Any] | None  # None on patient-view
    mg_per_day: float | None = None
    unreadable: str | None = None  # why its daily dose cannot be read


@dataclass(frozen=True)
class CallScope:
    """The prefetched resources and whether the service answers for the patient in context."""

    resources: list[dict[str, Any]]
    collect_problems: list[Problem]
    others: list[DataProblem]  # prefetch keys about another patient
    scope: Scope
    answered: bool  # False: patient-view for a patient out of scope (no card)


@dataclass
class Situation:
    """The child at the decision point, as the data allows, with every data problem named.

    ``problems`` is the card's list: later steps (the levels, a missing visit) add to it.
    """

    timeline: PatientTimeline
    visit: Visit | None  # the latest visit: the decision point
    weight_kg: float | None  # None when missing or outdated
    age_years: float | None
    egfr: float | None
    bounds: dosing.DoseBounds
    current_mg_per_day: float | None  # the order in effect (0 when none; None when unreadable)
    active_order: dict[str, Any] | None
    problems: list[DataProblem]
    notes: list[str]  # data not available (non-blocking)


@dataclass(frozen=True)
class Railed:
    """The facts at the decision point and the one mask (label bounds AND clinical rails)."""

    facts: rails.RailFacts
    outcome: rails.RailOutcome
    reported_seizures: int | None  # seizures in the follow-up reports (facts_at, before any override)


@dataclass(frozen=True)
class Scored:
    """The model's answer on the state, imputed once: its choice within the mask, its scores, its coverage."""

    values: np.ndarray  # the state row (NaN when missing)
    observed: np.ndarray
    scores: tuple[float, ...]
    chosen: int  # the model's choice, re-checked against the mask
    raw: int  # its best class with no mask
    coverage: float | None
    version: str
    score_kind: str


def _require_keys(gathered: Gathered) -> None:
    """412 when data no decision can do without could not be obtained at all."""
    missing_keys = [k for k in REQUIRED_KEYS if k in gathered.unobtainable]
    if missing_keys:
        reasons = "; ".join(f"{k}: {gathered.unobtainable[k]}" for k in missing_keys)
        raise PreconditionFailed(f"data needed to decide could not be obtained ({reasons})")


def select_draft(hook: str, context: dict[str, Any]) -> DraftOrder | None:
    """The levetiracetam draft of an order hook (the selected one first); None when no draft is levetiracetam."""
    if hook not in ORDER_HOOKS:
        return DraftOrder(None)
    drafts, _ = draft_orders(context)
    lev_drafts = [r for r in drafts if r.get("resourceType") == "MedicationRequest" and is_levetiracetam(r)]
    if not lev_drafts:
        return None
    selected = {s for s in context.get("selections") or [] if isinstance(s, str)}
    lev_drafts.sort(key=lambda r: f"MedicationRequest/{r.get('id')}" not in selected)  # selected first
    draft = lev_drafts[0]
    read = normalise_medication_request(draft)
    if isinstance(read, list):
        return DraftOrder(draft, unreadable="; ".join(p.message for p in read))
    return DraftOrder(draft, mg_per_day=read.mg_per_day)


def judge_call_scope(hook: str, gathered: Gathered, patient_id: str, draft: DraftOrder, today: date) -> CallScope:
    """Whose data this is and whether the patient is one the service is for (before any timeline is built).

    A patient-view call about a patient out of scope gets no card, unless the prefetch holds another
    patient who is in scope (then the card names the mix-up).
    """
    resources, collect_problems, by_key = collect_prefetch(gathered.values)
    others = other_patient_problems(gathered.values, patient_id, by_key)
    scope = judge_scope(resources, patient_id, today, drafts=[draft.resource] if draft.resource is not None else [])
    answered = not (hook == "patient-view" and not scope.in_scope and not (
        others and any(judge_scope(resources, other, today).in_scope for other in _patients_in(resources))))
    return CallScope(resources, collect_problems, others, scope, answered)


def check_data(call: CallScope, gathered: Gathered, patient_id: str, draft: DraftOrder, today: date) -> Situation:
    """The timeline, and what the decision needs from it: every item missing, unreadable or implausible named."""
    resources, collect_problems, scope = call.resources, call.collect_problems, call.scope
    timeline = build_timeline(resources, patient_id, as_of=today)
    visit = timeline.visits[-1] if timeline.visits else None  # the latest visit: the decision point
    weight = visit.weight_kg if visit else None
    age = timeline.age_years_on(today)
    problems = list(call.others)
    if scope.age_problem is not None:
        problems.append(DataProblem("implausible", "age (Patient.birthDate)", scope.age_problem))
        age = None
    problems.extend(data_problems(timeline, resources, visit, today))
    problems.extend(DataProblem("missing", p.resource or "prefetch", p.message, blocking=False)
                    for p in collect_problems if p.kind == ProblemKind.MISSING)
    problems.extend(DataProblem("unreadable", item, detail, blocking=False) for item, detail in gathered.problems)
    stale_weight = _stale_weight(visit, today)
    if stale_weight is not None:
        weight = None  # never dose on an outdated weight (dosing.MAX_WEIGHT_AGE_DAYS)
        problems.append(DataProblem("missing", "a current body weight", stale_weight))
    egfr = visit.egfr if visit else None
    bounds = dosing.label_bounds(weight, age, egfr)
    named = {p.item for p in problems} | ({"age (Patient.birthDate)", "body weight"} if call.others else set())
    if age is None and scope.age_problem is None and "age (Patient.birthDate)" not in named:
        problems.append(DataProblem("missing", "age (Patient.birthDate)", "the Patient has no usable birthDate"))
    if weight is None and stale_weight is None and "body weight" not in named and (age is None or age < dosing.ADULT_AGE_YEARS):
        failed = next((p.message for p in collect_problems if p.path == "prefetch.weight"), None)
        problems.append(DataProblem("missing", "body weight", f"the EHR's {failed}" if failed else
                                    "no body weight (LOINC 29463-7) on the chart"))
    current, active_order = _order_in_effect(visit, resources)
    if visit is not None and visit.lev_unreadable:
        # Levetiracetam recorded as taken with no order (a MedicationStatement, say) has no order to read.
        item = LEV_TAKEN_ITEM if visit.lev_unreadable in timeline.lev_taken_without_order else LEV_ORDER_ITEM
        problems.append(DataProblem("unreadable", item, _unreadable_order_detail(timeline, visit.lev_unreadable)))
    if draft.resource is not None and draft.unreadable is not None:
        problems.append(DataProblem("unreadable", "the draft order's daily dose", draft.unreadable, blocking=False))
    notes = [f"{key} ({reason})" for key, reason in gathered.unobtainable.items()]
    if visit is not None and (today - visit.date).days > RECENT_VISIT_DAYS:
        notes.append(f"seizure reports after the visit of {visit.date.isoformat()} ({(today - visit.date).days} days ago)")
    return Situation(timeline, visit, weight, age, egfr, bounds, current, active_order, problems, notes)


def decision_of(hook: str, context: dict[str, Any], scope: Scope, situation: Situation, draft: DraftOrder,
                questionnaire_url: str | None) -> Decision:
    """What the card will say, as far as the data check knows it (the later steps fill in the rest)."""
    decision = Decision(
        hook=hook, patient_id=context["patientId"], bounds=situation.bounds, weight_kg=situation.weight_kg,
        age_years=situation.age_years, egfr=situation.egfr, current_mg_per_day=situation.current_mg_per_day,
        active_order=situation.active_order, draft=draft.resource, draft_mg_per_day=draft.mg_per_day,
        draft_unreadable=draft.unreadable, problems=situation.problems, notes=situation.notes,
        atypical_age=scope.atypical_age, encounter_id=_string(context.get("encounterId")))
    decision.seizure_history, decision.seizure_history_known = seizure_history_of(situation.visit)
    decision.questionnaire_url = questionnaire_url
    return decision


def assess_levels(situation: Situation, today: date) -> Any:
    """The individual PK assessment of the measured levels; its problems join the card's (never blocking)."""
    assessment = level_assessment(situation.timeline, today)
    if assessment is not None:
        situation.problems.extend(DataProblem(p["kind"], p["item"], p["detail"], blocking=False)
                                  for p in assessment.decision_problems())
    return assessment


def apply_rails(situation: Situation, assessment: Any) -> Railed:
    """The facts at the latest visit (the dose in effect now, the checked weight and age) and the one mask."""
    index = len(situation.timeline.visits) - 1
    current = situation.current_mg_per_day
    predicted = assessment.individual_trough(current) if assessment is not None and current else None
    facts = dataclasses.replace(rails.facts_at(situation.timeline, index), on_levetiracetam=bool(current and current > 0),
                                current_mg_per_day=current, weight_kg=situation.weight_kg, age_years=situation.age_years,
                                predicted_level_mg_l=predicted[0] if predicted else None)
    return Railed(facts, rails.clinical_rails(facts, situation.bounds), facts.lifetime_seizures)


def run_model(model: InferenceModel, timeline: PatientTimeline, outcome: rails.RailOutcome) -> Scored:
    """The state of the latest visit, imputed once, scored; the model's choice re-checked against the mask."""
    from fhir_mapping.features import state_row

    values, observed = state_row(timeline, len(timeline.visits) - 1)
    model_input = model.model_input(values, observed)  # the one imputation of the call
    choice, scores, raw = model.choose(model_input, np.asarray(outcome.allowed, dtype=bool))
    score_list = tuple(float(s) for s in np.asarray(scores, dtype=float).ravel())
    return Scored(values, observed, score_list, _enforce_mask(int(choice), score_list, outcome.allowed), int(raw),
                  _coverage(model, model_input), str(getattr(model, "version", "unknown")),
                  str(getattr(model, "score_kind", "q")))


def judge(model: InferenceModel, scored: Scored, outcome: rails.RailOutcome) -> Confidence:
    """Honest confidence in the model's choice (clear / narrow / abstain, with reasons)."""
    from training.inference import default_thresholds, judge_confidence

    thresholds = getattr(model, "confidence_thresholds", None) or default_thresholds(scored.score_kind)
    return judge_confidence(np.asarray(scored.scores, dtype=float), np.asarray(outcome.allowed, dtype=bool),
                            scored.coverage, scored.score_kind, thresholds)


def settle(decision: Decision, railed: Railed, scored: Scored, confidence: Confidence) -> None:
    """Who speaks on the card (the model or the guidance), then the label or renal maximum over everything."""
    decision.model_version = scored.version
    decision.coverage = scored.coverage
    decision.model_mg_per_day = dosing.dose_mg_of(scored.chosen)
    decision.raw_mg_per_day = dosing.dose_mg_of(scored.raw) if 0 <= scored.raw < dosing.N_DOSE_CLASSES else None
    _settle(decision, railed.facts, railed.outcome, confidence, scored.chosen)
    _lower_to_the_maximum(decision, railed.outcome)


def describe(decision: Decision, situation: Situation, visit: Visit, railed: Railed, assessment: Any, draft: DraftOrder,
             today: date) -> None:
    """The card's words: levels against the recommended dose, why, the course, what the draft breaks. ``visit``
    is the decision visit (a call without one stops at the data check, before this step)."""
    facts, outcome = railed.facts, railed.outcome
    weight, egfr, age = situation.weight_kg, situation.egfr, situation.age_years
    decision.level_lines = level_lines(assessment, visit, weight, egfr, situation.current_mg_per_day,
                                       decision.recommended_mg_per_day)
    index = len(situation.timeline.visits) - 1
    seizures_3m = seizures_in_window(situation.timeline, index)
    decision.why = why_of(decision, facts, seizures_3m, railed.reported_seizures)
    decision.facts = course_lines(facts, seizures_3m, visit, today, railed.reported_seizures)
    adherence = adherence_question(facts, assessment, weight, egfr)
    if adherence:
        decision.facts.append(adherence)
        decision.why_more = adherence
    if decision.action == "start":
        decision.facts.append(_start_line(age, weight, situation.bounds))
    if draft.resource is not None and draft.mg_per_day is not None:
        decision.draft_conflicts = draft_conflicts(draft.mg_per_day, outcome, facts, seizures_3m)
        decision.draft_action = rails.action_of(facts, draft.mg_per_day)
        decision.draft_allowed = outcome.allowed[dosing.dose_class_of(draft.mg_per_day)]


# --- the audit record -------------------------------------------------------------------------------


def stopped_record(card: dict[str, Any], hook: str, scope: Scope, situation: Situation) -> DecisionRecord:
    """The record of a card that stopped at the data (no model asked): its fingerprint is of the problems."""
    fingerprint = _fingerprint({"problems": [p.to_json() for p in situation.problems]})
    return DecisionRecord(
        card_uuid=card["uuid"], indicator=card["indicator"], hook=hook, scope=scope.reason,
        problems=_problems_seen(situation.problems), fired_rules=(), guidance_rule=None, model=None,
        confidence="abstain", confidence_reasons=(), rules_shown=(), action="no-recommendation", source="none",
        recommended_mg_per_day=None, compared_mg_per_day=situation.current_mg_per_day, safety_adjustments=(),
        input_fingerprint=fingerprint)


def decided_record(card: dict[str, Any], hook: str, scope: Scope, situation: Situation, railed: Railed, scored: Scored,
                   confidence: Confidence, decision: Decision, draft: DraftOrder, today: date) -> DecisionRecord:
    """The record of a card the model and the rails decided: every step's outcome, and what the rails changed."""
    from training.inference import score_margin

    outcome = railed.outcome
    fingerprint = _fingerprint({"values": [None if not math.isfinite(v) else round(float(v), 6) for v in scored.values],
                                "observed": [bool(o) for o in scored.observed], "draft_mg": draft.mg_per_day,
                                "as_of": today.isoformat()})
    replaced = decision.raw_mg_per_day is not None and decision.raw_mg_per_day != decision.model_mg_per_day
    adjustments = tuple(list(situation.bounds.notes) + [f"{f.rule_id}: {f.message}" for f in outcome.fired] +
                        ([f"model choice {decision.raw_mg_per_day:g} mg/day replaced"] if replaced else []))
    best = scored.scores[scored.chosen] if scored.chosen < len(scored.scores) else math.nan
    margin = score_margin(np.asarray(scored.scores, dtype=float), np.asarray(outcome.allowed, dtype=bool))
    model = ModelSeen(version=scored.version, score_kind=scored.score_kind,
                      chosen_mg_per_day=dosing.dose_mg_of(scored.chosen), raw_mg_per_day=decision.raw_mg_per_day,
                      best_score=best if math.isfinite(best) else None,
                      margin=margin if margin is not None and math.isfinite(margin) else None, coverage=scored.coverage)
    return DecisionRecord(
        card_uuid=card["uuid"], indicator=card["indicator"], hook=hook, scope=scope.reason,
        problems=_problems_seen(situation.problems), fired_rules=tuple(f.rule_id for f in outcome.fired),
        guidance_rule=outcome.guidance.rule_id if outcome.guidance is not None else None, model=model,
        confidence=decision.confidence, confidence_reasons=tuple(decision.confidence_reasons),
        rules_shown=tuple(r.rule_id for r in decision.rules), action=decision.action, source=decision.source,
        recommended_mg_per_day=decision.recommended_mg_per_day,
        compared_mg_per_day=draft.mg_per_day if draft.resource is not None else situation.current_mg_per_day,
        safety_adjustments=adjustments, input_fingerprint=fingerprint)


def _problems_seen(problems: list[DataProblem]) -> tuple[ProblemSeen, ...]:
    return tuple(ProblemSeen(p.kind, p.item, p.blocking) for p in problems)


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def seizure_history_of(visit: Visit | None) -> tuple[str, bool]:
    """Where the latest visit's seizure history came from, in words, and whether any of it is known."""
    if visit is None:
        return "not recorded (no visit)", False
    by_kind: dict[str, list[str]] = {}
    for key in SEIZURE_ITEMS:
        found = visit.provenance.get(key)
        if found is None:
            continue
        resources = by_kind.setdefault(SOURCE_WORDS.get(found.kind, found.kind), [])
        if found.resource and found.resource not in resources:
            resources.append(found.resource)
    if not by_kind:
        return f"not recorded at the visit of {visit.date.isoformat()}", False
    parts = []
    for words, resources in by_kind.items():
        shown = ", ".join(resources[:MAX_SOURCES_SHOWN]) + (f" +{len(resources) - MAX_SOURCES_SHOWN}"
                                                             if len(resources) > MAX_SOURCES_SHOWN else "")
        parts.append(f"{words} ({shown})" if shown else words)
    return f"visit of {visit.date.isoformat()}, from " + "; ".join(parts), True


# --- whose data ------------------------------------------------------------------------------


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        ident = resource.get("id")
        return ident if isinstance(ident, str) else None
    for name in ("subject", "patient"):
        found = reference_id(resource.get(name), "Patient")
        if found:
            return found
    return None


def _patients_in(resources: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(p for r in resources if (p := _patient_of(r)) is not None))


def other_patient_problems(values: Mapping[str, Any], patient_id: str,
                           by_key: Mapping[str, list[dict[str, Any]]] | None = None) -> list[DataProblem]:
    """One problem per prefetch key whose data is about another patient than ``context.patientId``.

    An EHR client that sends one patient's id in context and another's data in prefetch (seen with
    test clients that make up a patientId) must not get a card about either of them. ``by_key``: the
    resources of each key as :func:`~fhir_mapping.inputs.collect_prefetch` found them (else each key
    is read again here).
    """
    found = []
    for key, value in values.items():
        if value is None:
            continue
        items = by_key[str(key)] if by_key is not None else collect_resources({key: value})[0]
        owners = {p for r in items if (p := _patient_of(r)) is not None}
        strangers = owners - {patient_id}
        if strangers:
            what = ITEM_OF_PREFETCH.get(key, f"prefetch '{key}'")
            found.append(DataProblem("other-patient", what,
                                     f"the prefetched {what} refer to another patient than context.patientId; "
                                     "check the EHR's prefetch and context"))
    return found


# --- data problems -----------------------------------------------------------------------------


def _resource_dates(resources: list[dict[str, Any]]) -> dict[str, date | None]:
    dates: dict[str, date | None] = {}
    for resource in resources:
        label = f"{resource.get('resourceType')}/{resource.get('id')}"
        stamp = resource.get("effectiveDateTime") or resource.get("effectiveInstant") or resource.get("issued")
        period = resource.get("effectivePeriod")
        if stamp is None and isinstance(period, dict):
            stamp = period.get("start") or period.get("end")
        dates[label] = parse_date(stamp)
    return dates


def data_problems(timeline: PatientTimeline, resources: list[dict[str, Any]], visit: Visit | None,
                  today: date) -> list[DataProblem]:
    """Unreadable or implausible measurements that the decision needs, named precisely.

    The mapping drops a value it cannot read or that lies outside :data:`PLAUSIBLE_RANGES`; left at
    that, a creatinine of 26 mg/dL would read as "no creatinine, normal renal function assumed". Here
    such a value is a data problem, unless a later readable value of the same item superseded it. A bad
    weight, creatinine or eGFR stops the decision; a bad height does when a creatinine needs it.
    """
    dates: dict[str, date | None] | None = None  # read only when a measurement has a problem
    used: dict[str, date | None] = {}
    if visit is not None:
        used = {"weight": visit.weight.measured_on if visit.weight else None,
                "height": visit.height.measured_on if visit.height else None,
                **{key: m.measured_on for key, m in visit.labs.items()}}
    has_creatinine = visit is not None and "creatinine" in visit.labs
    found: list[DataProblem] = []
    for problem in timeline.problems:
        key = next((k for k in MEASURED_ITEMS if problem.message.startswith(f"{k} ")), None)
        if key is None:
            continue
        if dates is None:
            dates = _resource_dates(resources)
        when = dates.get(problem.resource)
        later = used.get("egfr" if key == "egfr" else key)
        if later is not None and when is not None and later > when:
            continue  # a later readable value replaced it
        item = MEASURED_ITEMS[key]
        if problem.kind == ProblemKind.INVALID_VALUE and "outside the possible range" in problem.message:
            low, high = PLAUSIBLE_RANGES[key]
            kind, detail = "implausible", (f"{problem.message.split(' is outside')[0].replace(key, item, 1)}"
                                           f"{' on ' + when.isoformat() if when else ''} cannot be right "
                                           f"(possible {low:g}–{high:g}); correct it or record a new {item}")
        elif problem.kind in (ProblemKind.INVALID_VALUE, ProblemKind.UNKNOWN_UNIT, ProblemKind.AMBIGUOUS,
                              ProblemKind.MISSING):
            kind, detail = "unreadable", problem.message.replace(key, item, 1) + (f" ({problem.resource})" if problem.resource else "")
        else:
            continue
        blocking = key in ("weight", "creatinine", "egfr") or (key == "height" and has_creatinine)
        found.append(DataProblem(kind, item, detail, blocking=blocking))
    return found


def _unreadable_order_detail(timeline: PatientTimeline, source: str) -> str:
    reasons = [p.message for p in timeline.problems if p.resource == source and p.kind != ProblemKind.MISSING] or \
              [p.message for p in timeline.problems if p.resource == source]
    return f"{source}: " + ("; ".join(reasons) if reasons else "its daily dose could not be read")


def _order_in_effect(visit: Visit | None, resources: list[dict[str, Any]]) -> tuple[float | None, dict[str, Any] | None]:
    """The daily dose of the levetiracetam order in effect now (0 when none; None when unreadable) and its resource."""
    if visit is None:
        return 0.0, None
    if visit.lev_unreadable:
        return None, None
    if visit.lev is None:
        return 0.0, None
    resource = next((r for r in resources if f"MedicationRequest/{r.get('id')}" == visit.lev.source), None)
    return visit.lev.mg_per_day, resource


def _stale_weight(visit: Visit | None, today: date) -> str | None:
    """What to ask for when the latest weight is older than dosing.MAX_WEIGHT_AGE_DAYS, else None."""
    if visit is None or visit.weight is None:
        return None
    age_days = (today - visit.weight.measured_on).days
    if age_days <= dosing.MAX_WEIGHT_AGE_DAYS:
        return None
    return (f"a body weight from the last {dosing.MAX_WEIGHT_AGE_DAYS // 30} months (LOINC 29463-7): the latest, "
            f"of {visit.weight.measured_on.isoformat()}, is {age_days} days old")


# --- the model, the rails and the guidance ------------------------------------------------------


def _enforce_mask(choice: int, scores: tuple[float, ...], allowed: tuple[bool, ...]) -> int:
    """The model's choice if the mask allows it, else the best-scoring allowed class (0 g when nothing else is)."""
    if 0 <= choice < len(allowed) and allowed[choice]:
        return choice
    candidates = [(scores[i] if i < len(scores) and math.isfinite(scores[i]) else -math.inf, i)
                  for i, ok in enumerate(allowed) if ok]
    return max(candidates)[1] if candidates else 0


def _settle(decision: Decision, facts: rails.RailFacts, outcome: rails.RailOutcome, confidence: Any, chosen: int) -> None:
    """Who speaks on the card: the model (clear, and agreeing with the guidance's direction), else the guidance."""
    guidance = outcome.guidance
    reasons = list(confidence.reasons)
    model_mg = dosing.dose_mg_of(chosen)
    model_action = rails.action_of(facts, model_mg)
    level = confidence.level
    if level == "clear" and guidance is not None and not rails.agrees_with_guidance(facts, guidance, model_mg):
        level = "abstain"
        reasons.append(f"the model's choice ({model_action}, {model_mg:g} mg/day) goes against the practice guidance "
                       f"for this situation ({guidance.action}, {guidance.rule_id})")
    decision.rules = [RuleShown(f.rule_id, f.message) for f in outcome.fired]
    if guidance is not None:
        decision.rules.append(RuleShown(guidance.rule_id, ALTERNATIVES.get(guidance.rule_id, "")))
        decision.guidance_text = guidance.text
    if guidance is not None and guidance.action == "no-recommendation":
        # Bounds unknown, specialist-only dosing, or a course nobody can judge: the model does not speak either.
        decision.confidence_reasons = tuple(reasons)
        decision.source, decision.confidence, decision.action = "none", "abstain", "no-recommendation"
        decision.recommended_mg_per_day = None
        return
    decision.confidence_reasons = tuple(reasons)
    if level == "clear":
        decision.source, decision.confidence = "model", "clear"
        decision.action, decision.recommended_mg_per_day = model_action, model_mg
        return
    decision.confidence = level
    if guidance is not None and guidance.action != "no-recommendation":
        decision.source, decision.action = "guidance", guidance.action
        decision.recommended_mg_per_day = guidance.mg_per_day
    else:
        decision.source, decision.action, decision.recommended_mg_per_day = "none", "no-recommendation", None


def _lower_to_the_maximum(decision: Decision, outcome: rails.RailOutcome) -> None:
    """A child who takes more than the label or renal maximum is lowered to within it, whatever else applies.

    The guidance for a seizure-free child is "keep", but keeping 1000 mg/day at a renal maximum of
    792 mg/day would keep a dose outside the bounds (R-LABEL-BOUNDS, domain.md §2).
    """
    current, maximum = decision.current_mg_per_day, decision.bounds.max_mg_per_day
    if not current or maximum is None or current <= maximum + 1e-9 or decision.source == "none":
        return
    within = [i for i, ok in enumerate(outcome.allowed) if ok and dosing.dose_mg_of(i) <= maximum + 1e-9]
    highest = max(within) if within else 0
    message = f"the {current:g} mg/day taken exceeds the {maximum:.0f} mg/day maximum: lower to within it"
    decision.rules.insert(0, RuleShown("R-LABEL-BOUNDS", message))
    mg = decision.recommended_mg_per_day
    if decision.action in ("lower", "taper") and mg is not None and mg <= maximum + 1e-9:
        return
    if decision.source == "model":
        decision.confidence_reasons += ("the model's choice would leave the dose above the maximum",)
    decision.rules = [r for r in decision.rules if not r.rule_id.startswith("G-")]  # the guidance did not hold
    decision.source, decision.action = "guidance", "lower" if highest > 0 else "taper"
    decision.recommended_mg_per_day = dosing.dose_mg_of(highest) if highest > 0 else None
    decision.guidance_text = message


DRAFT_CONFLICT_WORDS: Final[dict[str, str]] = {
    "R-NO-INCREASE-SEIZURE-FREE": "raises the dose of a child seizure-free {months:.0f} months",
    "R-NO-INCREASE-HIGH-LEVEL": "raises the dose although the level is above the reference",
    "R-NO-DECREASE-WHILE-SEIZING": "lowers the dose while seizures continue ({seizures})",
    "R-NO-START-AFTER-SINGLE-SEIZURE": "starts treatment after a single seizure (watchful waiting is the default)",
    "R-START-AT-LABEL-DOSE": "starts below the label's starting dose",
}


def draft_conflicts(draft_mg: float, outcome: rails.RailOutcome, facts: rails.RailFacts,
                    seizures_3m: int | None) -> list[RuleShown]:
    """The clinical rails the draft's dose breaks (its dose class removed by them), in plain words."""
    draft_class = dosing.dose_class_of(draft_mg)
    months = rails.seizure_free_months(facts) or 0.0
    seizures = f"{seizures_3m} in 3 months" if seizures_3m else "in the last 3 months"
    shown = []
    for fired in outcome.fired:
        if draft_class in fired.removed_classes:
            words = DRAFT_CONFLICT_WORDS.get(fired.rule_id)
            shown.append(RuleShown(fired.rule_id, words.format(months=months, seizures=seizures) if words else fired.message))
    return shown


# --- the facts behind it -----------------------------------------------------------------------


def seizures_in_window(timeline: PatientTimeline, index: int, days: int = RECENT_SEIZURE_DAYS) -> int | None:
    """Seizures reported at the visits of the last ``days`` before the decision visit (None: none reported)."""
    last = timeline.visits[index].date
    counts = [v.seizure_count_since_last_visit for v in timeline.visits[: index + 1]
              if (last - v.date).days < days and v.seizure_count_since_last_visit is not None]
    return sum(counts) if counts else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# After a single seizure both courses are reasonable (domain.md §6): the card names the one it does not
# recommend, whoever (model or guidance) chose.
ALTERNATIVES: Final = {
    "G-START-FAMILY-REQUEST": "at the family's request; watchful waiting remains reasonable",
    "G-START-PROLONGED": "a seizure over 5 minutes; watchful waiting is the alternative",
}


def why_of(decision: Decision, facts: rails.RailFacts, seizures_3m: int | None,
           reported_seizures: int | None = None) -> str:
    """The few facts behind the action, for the summary ("4 seizures in 3 months on 20 mg/kg/day")."""
    current = facts.current_mg_per_day
    per_kg = dosing.mg_per_kg_day(current, facts.weight_kg) if current else None
    on = f" on {per_kg:.0f} mg/kg/day" if per_kg is not None else ""
    months = rails.seizure_free_months(facts)
    level = facts.measured_level_mg_l
    if facts.seizure_last_3_months:
        recent = _plural(seizures_3m, "seizure") + " in 3 months" if seizures_3m else "seizures in the last 3 months"
    elif facts.breakthrough:
        recent = "seizures since the last visit"  # the chart does not say whether within 3 months
    else:
        recent = None
    action = decision.action
    maximum = decision.bounds.max_mg_per_day
    if action in ("lower", "taper") and current and maximum is not None and current > maximum + 1e-9:
        renal = f" at eGFR {decision.egfr:.0f}" if decision.egfr is not None and decision.bounds.renal_fraction < 1 else ""
        return f"the {current:g} mg/day taken exceeds the {maximum:.0f} mg/day maximum{renal}"
    if action == "no-recommendation":
        if decision.bounds.specialist_only:
            return "; ".join(n for n in decision.bounds.notes if "specialist" in n or "not labelled" in n)
        return decision.guidance_text or ""
    if action in ("lower", "taper") and facts.adverse_effect and level is not None:
        return f"adverse effect with a level of {level:g} mg/L{on}"
    if action == "taper":
        if months is not None and months >= rails.WITHDRAWAL_SEIZURE_FREE_MONTHS:
            return f"seizure-free {months / 12:.1f} years{on}"
        if facts.age_years is not None and facts.age_years >= rails.WITHDRAWAL_AGE_YEARS:
            return f"age {facts.age_years:.0f} years, BECT remits by the mid-teens" + (f"; seizure-free {months:.0f} months" if months else "")
    if action == "none":
        if facts.lifetime_seizures == 1:
            return "a single seizure so far: watchful waiting"
        if facts.seizure_last_3_months is None:
            return "untreated; seizures in the last 3 months not reported"
        return "untreated, no seizure in the last 3 months" + (f" ({months:.0f} months seizure-free)" if months else "")
    if action == "start" and facts.lifetime_seizures == 1 and facts.prolonged_seizure:
        return "a single seizure lasting over 5 minutes, untreated"
    if action == "start" and facts.lifetime_seizures == 1 and facts.family_requests_treatment:
        return "a single seizure, untreated; the family asks for treatment"
    if action == "start" and recent:
        return f"{recent}, untreated" + (f", {_plural(reported_seizures, 'seizure')} in all" if reported_seizures and reported_seizures > (seizures_3m or 0) else "")
    if recent:
        at_max = action == "keep" and current and maximum is not None and \
            dosing.dose_class_of(current) >= max(i for i, ok in enumerate(decision.bounds.allowed) if ok)
        return recent + (" at the label maximum" if at_max else on)
    if facts.adverse_effect:
        return "adverse effect reported" + (f", level {level:g} mg/L" if level is not None else "") + on
    if months is not None:
        return f"seizure-free {months:.0f} months{on}"
    return ""


# A level in the lowest tenth of what typical children on the same dose show, while seizures continue:
# ask about missed doses before raising (project choice; the pk estimate itself flags only the lowest 2.5%).
LOW_LEVEL_SHARE: Final = 0.10
# Without the individual estimate: below half the typical child's predicted trough on the dose.
LOW_LEVEL_FRACTION_OF_TYPICAL: Final = 0.5


def adherence_question(facts: rails.RailFacts, assessment: Any, weight: float | None, egfr: float | None) -> str | None:
    """"Check adherence" when a child still seizing has a level far below what the dose usually gives."""
    level, current = facts.measured_level_mg_l, facts.current_mg_per_day
    if not facts.seizure_last_3_months or level is None or not current:
        return None
    share = getattr(assessment, "latest_percentile", None) if assessment is not None else None
    if share is not None:
        low = share < LOW_LEVEL_SHARE
    elif weight is not None:
        from fhir_mapping.pharmacokinetics import steady_state

        low = level < LOW_LEVEL_FRACTION_OF_TYPICAL * float(steady_state(current, weight, egfr, 2).trough)
    else:
        low = False
    if not low:
        return None
    return (f"Level {level:g} mg/L is low for {current:g} mg/day while seizures continue: check adherence (missed "
            "doses) and the sampling time before raising.")


def _start_line(age: float | None, weight: float | None, bounds: dosing.DoseBounds) -> str:
    """The label's starting dose in words (domain.md §2), for a start."""
    start = rails.starting_dose_mg_per_day(age, weight, bounds.renal_fraction)
    if start is None:
        return "The label's starting dose cannot be computed without age and weight."
    if age is not None and age >= dosing.ADULT_AGE_YEARS:
        return f"Label starting dose from 16 years: 500 mg twice daily ({start:.0f} mg/day)."
    per_kg = rails.START_MG_PER_KG_DAY_BELOW_6_MONTHS if age is not None and age < rails.SIX_MONTHS_YEARS \
        else dosing.START_MG_PER_KG_DAY
    renal = f", {bounds.renal_fraction:.0%} for renal function" if bounds.renal_fraction < 1 else ""
    return (f"Label starting dose: {per_kg / 2:g} mg/kg twice daily ({per_kg:g} mg/kg/day = {start:.0f} mg/day"
            f"{renal}), given as the nearest dose step.")


def course_lines(facts: rails.RailFacts, seizures_3m: int | None, visit: Visit, today: date,
                 reported_seizures: int | None = None) -> list[str]:
    lines = [f"Latest visit {visit.date.isoformat()} ({(today - visit.date).days} days ago)."]
    if facts.seizure_last_3_months is not None:
        lines.append("Seizures in the last 3 months: " + ("yes" if facts.seizure_last_3_months else "no") +
                     (f" ({seizures_3m} reported)" if seizures_3m else "") + ".")
    if facts.months_seizure_free is not None and not facts.seizure_last_3_months:
        lines.append(f"Seizure-free for at least {rails.seizure_free_months(facts) or 0:.0f} months.")
    if reported_seizures is not None and reported_seizures != facts.lifetime_seizures:
        lines.append(f"Seizures in the follow-up reports: {reported_seizures}; with the chart's epilepsy diagnosis this is "
                     "not a first seizure (ILAE practical definition, Fisher 2014).")
    elif facts.lifetime_seizures is not None:
        lines.append(f"Seizures reported so far: {facts.lifetime_seizures}.")
    if facts.adverse_effect is not None:
        lines.append("Adverse effect (somnolence or behaviour) reported at this visit: " + ("yes" if facts.adverse_effect else "no") + ".")
    return lines


# --- levels as information ----------------------------------------------------------------------


def load_what_the_first_call_would() -> None:
    """Load the parts a call loads on first use: the PK estimator (its scipy.special import, ~0.15 s of CPU) and
    the compiled note rules (~0.08 s). A served worker does this before it takes requests
    (``plugin.cli.serve.settle_heap``), so no clinician's card waits for them."""
    with contextlib.suppress(ImportError):  # optional, as in level_assessment
        importlib.import_module("fhir_mapping.pk_estimate")
    from fhir_mapping.notes import rules

    rules()


def level_assessment(timeline: PatientTimeline, today: date) -> Any:
    """The individual PK assessment of the measured levels (``fhir_mapping.pk_estimate``), or None.

    None when no level was measured, or when that module is not installed (the card then shows the
    measured level and the typical child's prediction by itself).
    """
    try:
        pk_estimate = importlib.import_module("fhir_mapping.pk_estimate")
    except ImportError:
        return None
    return pk_estimate.estimate_at(timeline, today)


def level_lines(assessment: Any, visit: Visit | None, weight: float | None, egfr: float | None,
                current: float | None, recommended: float | None) -> list[str]:
    """Measured and predicted levels against the laboratory reference ranges (domain.md §3), as information.

    Levetiracetam has no established therapeutic range; most children on usual doses have troughs
    below the adult-derived reference range (Chhun 2009: 20 mg/kg twice daily gives 6–20 mg/L), so only
    a level above the upper bound is called out. The measured level on the chart is always shown, also
    when the individual estimate cannot use it.
    """
    from plugin.cards import LEVEL_REFERENCE_NEWER_MG_L, LEVEL_REFERENCE_OLDER_MG_L

    old_low, old_high = LEVEL_REFERENCE_OLDER_MG_L
    new_low, new_high = LEVEL_REFERENCE_NEWER_MG_L
    reference = (f"- Laboratory reference (trough) {old_low:g}–{old_high:g} mg/L (older), {new_low:g}–{new_high:g} or "
                 "20–40 mg/L (newer lab guidance); levetiracetam has no established therapeutic range.")
    lines: list[str] = []
    if assessment is not None:
        pk_estimate = importlib.import_module("fhir_mapping.pk_estimate")
        lines = list(pk_estimate.level_lines(assessment, current or None, recommended or None))
    measured = visit.labs.get("lev_level") if visit is not None else None
    if measured is not None and not any(line.startswith("- Measured") for line in lines):
        where = ("above the upper bound of the reference" if measured.value > new_high else
                 "within the reference" if measured.value >= new_low else
                 "below the reference, as is common in children on usual doses: not by itself a reason to change")
        lines.insert(0, f"- Measured {measured.value:g} mg/L on {measured.measured_on.isoformat()}, {where}.")
    if (assessment is None or not assessment.has_estimate) and weight is not None and current:
        from fhir_mapping.pharmacokinetics import steady_state

        state = steady_state(current, weight, egfr, 2)
        lines.append(f"- Predicted for a typical child of {weight:g} kg at {current:g} mg/day: trough "
                     f"{float(state.trough):.0f} mg/L, average {float(state.average):.0f} mg/L (population model; "
                     "individual clearance varies about 3-fold).")
    if lines and not any("no established therapeutic range" in line for line in lines):
        lines.append(reference)
    return lines


# --- helpers ---------------------------------------------------------------------------------------


def _coverage(model: Any, model_input: Any) -> float | None:
    """The coverage share 0–1 of an imputed state (None when the model keeps no coverage statistics)."""
    try:
        percentile = model.coverage(model_input)
        value = float(np.asarray(percentile, dtype=float).ravel()[0])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return None if not math.isfinite(value) else value / 100.0


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
