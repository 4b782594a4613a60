"""From a validated hook request and its gathered data to one card and its audit record.

The order of questions is the order a clinician would ask them:

1. Order hooks: is a levetiracetam order being written? If not, nothing to say.
2. Does the data belong to the patient in context? Data for another patient is named as such.
3. patient-view: is the patient in scope (:mod:`fhir_mapping.scope`)? If not, no card, and a metric.
4. Can the data be trusted (:func:`data_problems`)? Missing, unreadable, another patient's or
   implausible data is named precisely and never answered with a dose.
5. The one mask: label bounds AND clinical rails (:func:`fhir_mapping.rails.clinical_rails`); the
   model chooses within it (and the service re-checks the choice against it).
6. Honest confidence (:func:`training.inference.judge_confidence`): the model's choice is recommended
   only when clear; a clear choice that contradicts the practice guidance for the situation is not
   offered either (a model trained on simulated children does not overrule sourced practice
   silently). Otherwise the card shows the guidance, with "no confident model recommendation".

The FHIR-to-state path is the one the model was trained on (``fhir_mapping``: collect, timeline,
features).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import numpy as np

from fhir_mapping import dosing, rails
from fhir_mapping.build import PLAUSIBLE_RANGES, build_timeline
from fhir_mapping.inputs import collect_prefetch, collect_resources, draft_orders, parse_date, reference_id
from fhir_mapping.medication import is_levetiracetam, normalise_medication_request
from fhir_mapping.problems import ProblemKind
from fhir_mapping.scope import judge_scope
from fhir_mapping.timeline import PatientTimeline, Visit
from plugin.cards import DataProblem, Decision, RuleShown, dose_card
from plugin.errors import ModelUnavailable, PreconditionFailed
from plugin.gather import Gathered
from plugin.model import InferenceModel

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
    """The response cards and, for each dose card, what the audit record needs."""

    cards: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    out_of_scope: str | None = None  # the reason, when the patient is not one the service is for


def decide(hook: str, context: dict[str, Any], gathered: Gathered, model: InferenceModel | None,
           report_url: str, today: date | None = None, questionnaire_url: str | None = None) -> Outcome:
    """Cards for one hook call (see the module docstring)."""
    today = today or datetime.now(UTC).date()
    patient_id = context["patientId"]
    missing_keys = [k for k in REQUIRED_KEYS if k in gathered.unobtainable]
    if missing_keys:
        reasons = "; ".join(f"{k}: {gathered.unobtainable[k]}" for k in missing_keys)
        raise PreconditionFailed(f"data needed to decide could not be obtained ({reasons})")
    notes = [f"{key} ({reason})" for key, reason in gathered.unobtainable.items()]
    draft: dict[str, Any] | None = None
    draft_mg: float | None = None
    draft_unreadable: str | None = None
    if hook in ORDER_HOOKS:
        drafts, _ = draft_orders(context)
        lev_drafts = [r for r in drafts if r.get("resourceType") == "MedicationRequest" and is_levetiracetam(r)]
        if not lev_drafts:
            return Outcome([], [])  # nothing to say about orders that are not levetiracetam
        selected = {s for s in context.get("selections") or [] if isinstance(s, str)}
        lev_drafts.sort(key=lambda r: f"MedicationRequest/{r.get('id')}" not in selected)  # selected first
        draft = lev_drafts[0]
        read = normalise_medication_request(draft)
        if isinstance(read, list):
            draft_unreadable = "; ".join(p.message for p in read)
        else:
            draft_mg = read.mg_per_day
    resources, collect_problems, by_key = collect_prefetch(gathered.values)
    others = other_patient_problems(gathered.values, patient_id, by_key)
    scope = judge_scope(resources, patient_id, today, drafts=[draft] if draft is not None else [])
    if hook == "patient-view" and not scope.in_scope and not (
            others and any(judge_scope(resources, other, today).in_scope for other in _patients_in(resources))):
        return Outcome([], [], out_of_scope=scope.reason)
    timeline = build_timeline(resources, patient_id, as_of=today)
    visit = timeline.visits[-1] if timeline.visits else None  # the latest visit: the decision point
    weight = visit.weight_kg if visit else None
    age = timeline.age_years_on(today)
    problems = list(others)
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
    named = {p.item for p in problems} | ({"age (Patient.birthDate)", "body weight"} if others else set())
    if age is None and scope.age_problem is None and "age (Patient.birthDate)" not in named:
        problems.append(DataProblem("missing", "age (Patient.birthDate)", "the Patient has no usable birthDate"))
    if weight is None and stale_weight is None and "body weight" not in named and (age is None or age < dosing.ADULT_AGE_YEARS):
        failed = next((p.message for p in collect_problems if p.path == "prefetch.weight"), None)
        problems.append(DataProblem("missing", "body weight", f"the EHR's {failed}" if failed else
                                    "no body weight (LOINC 29463-7) on the chart"))
    current, active_order = _order_in_effect(visit, resources)
    if visit is not None and visit.lev_unreadable:
        problems.append(DataProblem("unreadable", "the levetiracetam order in effect",
                                    _unreadable_order_detail(timeline, visit.lev_unreadable)))
    if draft is not None and draft_unreadable is not None:
        problems.append(DataProblem("unreadable", "the draft order's daily dose", draft_unreadable, blocking=False))
    if visit is not None and (today - visit.date).days > RECENT_VISIT_DAYS:
        notes.append(f"seizure reports after the visit of {visit.date.isoformat()} ({(today - visit.date).days} days ago)")
    decision = Decision(
        hook=hook, patient_id=patient_id, bounds=bounds, weight_kg=weight, age_years=age, egfr=egfr,
        current_mg_per_day=current, active_order=active_order, draft=draft, draft_mg_per_day=draft_mg,
        draft_unreadable=draft_unreadable, problems=problems, notes=notes, atypical_age=scope.atypical_age,
        encounter_id=_string(context.get("encounterId")))
    decision.seizure_history, decision.seizure_history_known = seizure_history_of(visit)
    decision.questionnaire_url = questionnaire_url
    assessment = level_assessment(timeline, today)
    if assessment is not None:
        problems.extend(DataProblem(p["kind"], p["item"], p["detail"], blocking=False)
                        for p in assessment.decision_problems())
    decision.level_lines = level_lines(assessment, visit, weight, egfr, current, None)
    if decision.blocked or visit is None:
        if visit is None and not decision.blocked:
            problems.append(DataProblem("missing", "a visit", "no dated observation or encounter: the course is unknown"))
        card = dose_card(decision, report_url)
        return Outcome([card], [_audit(card, "none", {"problems": [p.to_json() for p in problems]}, None, current, None, ())])
    if model is None:
        raise ModelUnavailable("no model is loaded yet")

    from fhir_mapping.features import state_row

    index = len(timeline.visits) - 1
    predicted = assessment.individual_trough(current) if assessment is not None and current else None
    facts = dataclasses.replace(rails.facts_at(timeline, index), on_levetiracetam=bool(current and current > 0),
                                current_mg_per_day=current, weight_kg=weight, age_years=age,
                                predicted_level_mg_l=predicted[0] if predicted else None)
    reported_seizures = facts.lifetime_seizures
    outcome = rails.clinical_rails(facts, bounds)
    values, observed = state_row(timeline, index)
    allowed = np.asarray(outcome.allowed, dtype=bool)
    choice, scores, raw = model.recommend(values, observed, allowed)
    score_list = tuple(float(s) for s in np.asarray(scores, dtype=float).ravel())
    chosen = _enforce_mask(int(choice), score_list, outcome.allowed)
    decision.model_version = str(getattr(model, "version", "unknown"))
    decision.coverage = _coverage(model, values[None, :], observed[None, :])
    decision.model_mg_per_day = dosing.dose_mg_of(chosen)
    decision.raw_mg_per_day = dosing.dose_mg_of(int(raw)) if 0 <= int(raw) < dosing.N_DOSE_CLASSES else None
    confidence = _judge(model, score_list, outcome.allowed, decision.coverage)
    _settle(decision, facts, outcome, confidence, chosen)
    _lower_to_the_maximum(decision, outcome)
    decision.level_lines = level_lines(assessment, visit, weight, egfr, current, decision.recommended_mg_per_day)
    seizures_3m = seizures_in_window(timeline, index)
    decision.why = why_of(decision, facts, seizures_3m, reported_seizures)
    decision.facts = course_lines(facts, seizures_3m, visit, today, reported_seizures)
    adherence = adherence_question(facts, assessment, weight, egfr)
    if adherence:
        decision.facts.append(adherence)
        decision.why_more = adherence
    if decision.action == "start":
        decision.facts.append(_start_line(age, weight, bounds))
    if draft is not None and draft_mg is not None:
        decision.draft_conflicts = draft_conflicts(draft_mg, outcome, facts, seizures_3m)
        decision.draft_action = rails.action_of(facts, draft_mg)
        decision.draft_allowed = outcome.allowed[dosing.dose_class_of(draft_mg)]
    fingerprint_input = {"values": [None if not math.isfinite(v) else round(float(v), 6) for v in values],
                         "observed": [bool(o) for o in observed], "draft_mg": draft_mg, "as_of": today.isoformat()}
    card = dose_card(decision, report_url)
    adjustments = tuple(list(bounds.notes) + [f"{f.rule_id}: {f.message}" for f in outcome.fired] +
                        ([f"model choice {decision.raw_mg_per_day:g} mg/day replaced"]
                         if decision.raw_mg_per_day is not None and decision.raw_mg_per_day != decision.model_mg_per_day else []))
    return Outcome([card], [_audit(card, decision.model_version, fingerprint_input, decision.recommended_mg_per_day,
                                   draft_mg if draft is not None else current, decision.raw_mg_per_day, adjustments)])


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


def _judge(model: Any, scores: tuple[float, ...], allowed: tuple[bool, ...], coverage: float | None) -> Any:
    from training.inference import default_thresholds, judge_confidence

    kind = str(getattr(model, "score_kind", "q"))
    thresholds = getattr(model, "confidence_thresholds", None) or default_thresholds(kind)
    return judge_confidence(np.asarray(scores, dtype=float), np.asarray(allowed, dtype=bool), coverage, kind, thresholds)


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
        lines.append(f"Seizure-free for {rails.seizure_free_months(facts) or 0:.0f} months (since the last visit that reported one).")
    if reported_seizures is not None and reported_seizures != facts.lifetime_seizures:
        lines.append(f"Seizures in the follow-up reports: {reported_seizures}; with the chart's epilepsy diagnosis this is "
                     "not a first seizure (ILAE practical definition, Fisher 2014).")
    elif facts.lifetime_seizures is not None:
        lines.append(f"Seizures reported so far: {facts.lifetime_seizures}.")
    if facts.adverse_effect is not None:
        lines.append("Adverse effect (somnolence or behaviour) reported at this visit: " + ("yes" if facts.adverse_effect else "no") + ".")
    return lines


# --- levels as information ----------------------------------------------------------------------


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


def _coverage(model: Any, values: np.ndarray, observed: np.ndarray) -> float | None:
    try:
        percentile = model.coverage(model.model_input(values, observed))
        value = float(np.asarray(percentile, dtype=float).ravel()[0])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return None if not math.isfinite(value) else value / 100.0


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _audit(card: dict[str, Any], model_version: str, fingerprint_input: Any, recommended: float | None,
           compared: float | None, raw: float | None, adjustments: tuple[str, ...]) -> dict[str, Any]:
    fingerprint = hashlib.sha256(json.dumps(fingerprint_input, sort_keys=True, default=str).encode()).hexdigest()
    return {"card_uuid": card["uuid"], "indicator": card["indicator"], "model_version": model_version,
            "input_fingerprint": fingerprint, "recommended_mg_per_day": recommended, "compared_mg_per_day": compared,
            "raw_model_mg_per_day": raw, "safety_adjustments": adjustments}
