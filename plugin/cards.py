"""CDS Hooks 2.0 cards for a levetiracetam dose decision (§Card Attributes).

One card per call, written for a paediatric neurologist reading a narrow sidebar:

- the summary (< 140 characters) says the action, measured against the dose the child takes now, and
  the facts behind it ("Raise levetiracetam to 1000 mg/day (29 mg/kg/day): 4 seizures in 3 months on
  20 mg/kg/day"); order hooks lead with the draft and its problem ("Draft 1500 mg/day = 83 mg/kg/day
  exceeds the 1080 mg/day maximum");
- the detail opens with five short lines (now, recommended, why, rails, confidence); everything else
  follows under a heading;
- a recommended suggestion (``isRecommended``) only when the model's rail-constrained choice is
  offered with clear confidence; otherwise the card shows the label/practice guidance for the
  situation, says "no confident model recommendation", and any suggestion it offers is not marked
  recommended;
- a suggestion never repeats the dose under review, an update keeps every field of the draft it does
  not change, and a new order that replaces the order in effect also stops it;
- every card about a patient in scope carries the machine-readable decision in
  ``extension["org.epidose.decision"]``;
- data problems are named precisely (missing, unreadable, another patient's, implausible) and are
  never answered with a dose.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from fhir_mapping import dosing
from fhir_mapping.dosing import DoseBounds
from fhir_mapping.emit import (
    SOLUTION_MAX_WEIGHT_KG,
    choose_regimen,
    medication_request,
    product_form,
    stopped_order,
    updated_order,
)
from fhir_mapping.rails import SIX_MONTHS_YEARS, label_step_mg_per_day

SUMMARY_MAX_CHARS: Final = 139  # spec: "<140 characters"
EXTENSION_KEY: Final = "org.epidose.decision"
# The data problem's item when the levetiracetam dose taken cannot be read: from an order, or from a
# record of it as taken with no order at all (a MedicationStatement, an order of unknown status).
LEV_ORDER_ITEM: Final = "the levetiracetam order in effect"
LEV_TAKEN_ITEM: Final = "the dose of levetiracetam taken"
OVERRIDE_SYSTEM: Final = "https://epidose.org/fhir/CodeSystem/override-reason"
# CDS Hooks 3.0.0-ballot: the six top-level categories of its Non-Adherence Reason Codes (ValueSet
# non-adherence-reason-categories), from the AHRQ CDSiC override-reason taxonomy (AHRQ Pub. No. 25-0073, 2025).
STANDARD_OVERRIDE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
# (system, code, display): ours, specific to dosing levetiracetam, then the ballot's standard categories.
OVERRIDE_REASONS: Final[tuple[tuple[str, str, str], ...]] = (
    (OVERRIDE_SYSTEM, "clinical-judgement", "Clinical judgement: patient context not captured by the model"),
    (OVERRIDE_SYSTEM, "recent-drug-level", "Recent levetiracetam level guides the dose"),
    (OVERRIDE_SYSTEM, "adverse-effect", "Adverse effect or tolerability concern"),
    (OVERRIDE_SYSTEM, "patient-preference", "Patient or family preference"),
    (OVERRIDE_SYSTEM, "titration-in-progress", "Titration already in progress"),
    (OVERRIDE_SYSTEM, "data-incorrect", "Weight, age or other data shown is incorrect"),
    (STANDARD_OVERRIDE_SYSTEM, "cds-not-applicable", "PC CDS does not apply to patient"),
    (STANDARD_OVERRIDE_SYSTEM, "cds-suboptimal-context", "PC CDS delivered in suboptimal context"),
    (STANDARD_OVERRIDE_SYSTEM, "recipient-disagrees-evidence",
     "Recipient disagrees with recommendation because of issues with the evidence"),
    (STANDARD_OVERRIDE_SYSTEM, "recipient-concerns-outcomes", "Recipient has concerns regarding potential health outcomes"),
    (STANDARD_OVERRIDE_SYSTEM, "does-not-align-preferences", "Recommendation does not align with patient preferences or values"),
    (STANDARD_OVERRIDE_SYSTEM, "not-convenient-feasible", "Recommendation is not convenient or feasible"),
)
# A draft this many times the child's label maximum (before renal adjustment) is no dosing decision
# anyone makes: a mistyped unit or an extra zero. Project safety policy: the card says so first.
ENTRY_ERROR_FACTOR: Final = 2.0
# Levetiracetam trough reference ranges given by laboratory guidance (domain.md §3): the older range
# and the newer one; no therapeutic range is established and a toxic level is not defined.
LEVEL_REFERENCE_OLDER_MG_L: Final = dosing.TROUGH_REFERENCE_MG_L  # 12–46 mg/L
LEVEL_REFERENCE_NEWER_MG_L: Final = (10.0, 40.0)  # also quoted as 20–40 mg/L
NO_CONFIDENT: Final = "no confident model recommendation"
SOURCE_LABEL: Final = "epidose levetiracetam dose model"
DISCLAIMER: Final = ("Decision support for clinician review: the model is trained on simulated patients and has "
                     "not been validated on real patients. It does not replace clinical judgement or the product label.")
ACTIONS: Final = ("start", "raise", "keep", "lower", "taper", "none", "no-recommendation")
CHANGES: Final = frozenset({"start", "raise", "lower", "taper"})


@dataclass(frozen=True)
class DataProblem:
    """One thing about the data that stops or limits the decision, named precisely."""

    kind: str  # missing | unreadable | other-patient | implausible
    item: str  # "body weight", "creatinine", "age (Patient.birthDate)", ...
    detail: str
    blocking: bool = True  # no dose can be given while it stands

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "item": self.item, "detail": self.detail}

    def short(self) -> str:
        return {"missing": f"{self.item} missing", "unreadable": f"{self.item} unreadable",
                "other-patient": f"{self.item} belongs to another patient",
                "implausible": f"{self.item} implausible"}.get(self.kind, self.item)


@dataclass(frozen=True)
class RuleShown:
    """A rail or guidance rule that shaped the card: its id and what it did, in plain words."""

    rule_id: str
    message: str


@dataclass
class Decision:
    """Everything a card says, computed by :mod:`plugin.decide`."""

    hook: str
    patient_id: str
    bounds: DoseBounds
    weight_kg: float | None
    age_years: float | None
    egfr: float | None
    current_mg_per_day: float | None  # the order in effect (0 when none); None: unreadable
    active_order: dict[str, Any] | None = None  # the order in effect, as received (stopped when replaced)
    draft: dict[str, Any] | None = None  # order hooks: the draft MedicationRequest under review
    draft_mg_per_day: float | None = None
    draft_unreadable: str | None = None
    action: str = "no-recommendation"
    source: str = "none"  # model | guidance | none
    confidence: str = "abstain"  # clear | narrow | abstain
    confidence_reasons: tuple[str, ...] = ()
    recommended_mg_per_day: float | None = None  # the model's (source model) or the guidance's dose
    model_mg_per_day: float | None = None  # the model's rail-constrained choice
    raw_mg_per_day: float | None = None  # the model's unconstrained choice
    rules: list[RuleShown] = field(default_factory=list)
    guidance_text: str | None = None
    why: str = ""  # the facts behind the action, in a few words
    why_more: str | None = None  # a question to settle first (e.g. adherence), on the detail's Why line
    facts: list[str] = field(default_factory=list)  # the child's course, for the detail
    level_lines: list[str] = field(default_factory=list)
    atypical_age: str | None = None
    problems: list[DataProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # data not available (non-blocking)
    draft_conflicts: list[RuleShown] = field(default_factory=list)  # rails the draft's dose breaks
    draft_action: str | None = None  # what the draft does to the dose taken (start, raise, keep, ...)
    draft_allowed: bool = False  # the draft's dose class is within the label bounds and the rails
    model_version: str = "none"
    coverage: float | None = None
    encounter_id: str | None = None
    seizure_history: str = ""  # where the latest visit's seizure history came from, in words
    seizure_history_known: bool = True
    questionnaire_url: str | None = None  # the BECT follow-up Questionnaire, to record a missing history

    @property
    def blocked(self) -> bool:
        return any(p.blocking for p in self.problems)


# --- numbers in words ------------------------------------------------------------------------


def _mg(mg: float) -> str:
    return f"{mg:g}"


def _per_kg(mg: float | None, weight: float | None) -> str | None:
    value = dosing.mg_per_kg_day(mg, weight)
    return None if value is None else f"{value:.0f}"


def _dose(mg: float, weight: float | None) -> str:
    per_kg = _per_kg(mg, weight)
    return f"{_mg(mg)} mg/day" + (f" ({per_kg} mg/kg/day)" if per_kg is not None else "")


def _fit(text: str, *tails: str) -> str:
    """``text`` plus as many of the optional tails as fit in the summary limit."""
    for tail in tails:
        if len(text + tail) <= SUMMARY_MAX_CHARS:
            text += tail
    if len(text) > SUMMARY_MAX_CHARS:
        text = text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
    return text


def _label_maximum_without_renal(decision: Decision) -> float | None:
    bounds = dosing.label_bounds(decision.weight_kg, decision.age_years, None)
    return bounds.max_mg_per_day


def draft_is_entry_error(decision: Decision) -> bool:
    """A draft far beyond any plausible dose for this child (:data:`ENTRY_ERROR_FACTOR` × the label maximum)."""
    draft, maximum = decision.draft_mg_per_day, _label_maximum_without_renal(decision)
    return draft is not None and maximum is not None and maximum > 0 and draft > ENTRY_ERROR_FACTOR * maximum


def draft_exceeds_maximum(decision: Decision) -> bool:
    draft, maximum = decision.draft_mg_per_day, decision.bounds.max_mg_per_day
    return draft is not None and maximum is not None and draft > maximum + 1e-9


def titration_excess(decision: Decision, target: float | None) -> tuple[float, float] | None:
    """(change, largest labelled change per 2 weeks) when ``target`` is further from the dose taken than one step.

    Titration counts from the order in effect, never from an unsigned draft (EU SmPC, domain.md §2:
    at most ±10 mg/kg twice daily every 2 weeks; adults ±500 mg twice daily).
    """
    current = decision.current_mg_per_day
    if target is None or current is None or current <= 0:
        return None  # a start is at the label's starting dose (R-START-AT-LABEL-DOSE), not a titration
    step = label_step_mg_per_day(decision.age_years, decision.weight_kg)
    change = target - current
    if step is None or step <= 0 or abs(change) <= step + 1e-9:
        return None
    return change, step


# --- the decision extension ------------------------------------------------------------------


def decision_extension(decision: Decision) -> dict[str, Any]:
    """The machine-readable decision (the card's ``extension``)."""
    return {EXTENSION_KEY: {
        "action": decision.action,
        "source": decision.source,
        "confidence": decision.confidence,
        "current_mg_per_day": decision.current_mg_per_day,
        "draft_mg_per_day": decision.draft_mg_per_day if decision.draft is not None else None,
        "recommended_mg_per_day": decision.recommended_mg_per_day,
        "rules": list(dict.fromkeys([r.rule_id for r in decision.rules] + [r.rule_id for r in decision.draft_conflicts])),
        "problems": [p.to_json() for p in decision.problems],
    }}


# --- summary ---------------------------------------------------------------------------------


def _action_phrase(decision: Decision) -> str:
    """The action in words, for the patient-view summary (CONTRACT §1 wording)."""
    mg, weight, current = decision.recommended_mg_per_day, decision.weight_kg, decision.current_mg_per_day
    action = decision.action
    if action == "start" and mg:
        return f"Start levetiracetam at {_dose(mg, weight)}"
    if action == "raise" and mg:
        return f"Raise levetiracetam to {_dose(mg, weight)}"
    if action == "lower" and mg:
        return f"Lower levetiracetam to {_dose(mg, weight)}"
    if action == "keep" and current:
        return f"Keep levetiracetam at {_dose(current, weight)}"
    if action == "taper" and current:
        return f"Taper levetiracetam from {_mg(current)} mg/day" + (f" to {_mg(mg)} mg/day first" if mg else "")
    if action == "none":
        return "No levetiracetam needed now"
    return "Levetiracetam: cannot recommend"


def _problem_phrase(problems: list[DataProblem]) -> str:
    blocking = [p for p in problems if p.blocking]
    if not blocking:
        return ""
    if any(p.kind == "other-patient" for p in blocking):
        return "the data sent belongs to another patient than the one in context"
    return ", ".join(p.short() for p in blocking)


def draft_in_line(decision: Decision) -> bool:
    """A draft that changes the dose in the direction the guidance gives, within the mask and one titration step.

    The guidance gives a direction and a first step, not a dose to insist on: a clinician's taper draft
    of 500 mg/day is not corrected to the guidance's 375 mg/day. A clear model recommendation of another
    dose class is still offered.
    """
    if decision.draft_mg_per_day is None or decision.draft_action is None or not decision.draft_allowed:
        return False
    if decision.draft_action != decision.action or titration_excess(decision, decision.draft_mg_per_day) is not None:
        return False
    mg = decision.recommended_mg_per_day
    return decision.source == "guidance" or (mg is not None and dosing.dose_class_of(mg) == dosing.dose_class_of(decision.draft_mg_per_day))


def draft_problem_phrase(decision: Decision) -> str:
    """What is wrong (or right) with the draft, after "Draft X mg/day = Y mg/kg/day"."""
    maximum = decision.bounds.max_mg_per_day
    if draft_is_entry_error(decision):
        return f" is far above any plausible dose (maximum {_mg(round(maximum or 0))} mg/day): likely entry error"
    if draft_exceeds_maximum(decision) and maximum is not None:
        return f" exceeds the {_mg(round(maximum))} mg/day maximum"
    if decision.draft_conflicts:
        return f": {decision.draft_conflicts[0].message}"
    excess = titration_excess(decision, decision.draft_mg_per_day)
    if excess is not None:
        change, step = excess
        word = "rise" if change > 0 else "cut"
        return (f": a {word} of {_mg(abs(change))} from the {_mg(decision.current_mg_per_day or 0)} mg/day taken, "
                f"more than the {_mg(step)} mg/day per 2 weeks the label allows")
    mg = decision.recommended_mg_per_day
    if draft_in_line(decision):
        return f" ({decision.draft_action}) is in line with the " + (
            "recommendation" if decision.source == "model" else "practice guidance")
    if mg is not None and decision.draft_mg_per_day is not None and decision.source in ("model", "guidance"):
        if dosing.dose_class_of(mg) == dosing.dose_class_of(decision.draft_mg_per_day):
            return " agrees with the " + ("recommendation" if decision.source == "model" else "practice guidance")
        return f": {'recommended' if decision.source == 'model' else 'guidance'} {_mg(mg)} mg/day"
    return " is within the label maximum"


def summary_of(decision: Decision) -> str:
    problem = _problem_phrase(decision.problems)
    if decision.draft is not None:
        if decision.draft_mg_per_day is None:
            return _fit("Draft levetiracetam order: its daily dose cannot be read", f" ({decision.draft_unreadable})"
                        if decision.draft_unreadable else "")
        head = f"Draft {_mg(decision.draft_mg_per_day)} mg/day"
        per_kg = _per_kg(decision.draft_mg_per_day, decision.weight_kg)
        if per_kg is not None:
            head += f" = {per_kg} mg/kg/day"
        if decision.blocked:
            return _fit(head + f": cannot be checked, {problem}")
        tail = f"; {decision.why}" if decision.why and not decision.draft_conflicts else ""
        return _fit(head + draft_problem_phrase(decision), tail)
    if decision.blocked:
        return _fit(f"Levetiracetam: cannot recommend, {problem}")
    phrase = _action_phrase(decision)
    tails = [f": {decision.why}" if decision.why else ""]
    if decision.action == "taper":
        tails.append("; do not stop abruptly")
    if decision.source == "guidance":
        tails.append(" (guidance)")
    return _fit(phrase, *tails)


# --- indicator ---------------------------------------------------------------------------------


def indicator_of(decision: Decision) -> str:
    """critical: the dose under review exceeds the maximum; warning: a data problem, a draft breaking a
    rail or the titration step, or a change recommended; info otherwise (including guidance-only cards)."""
    maximum = decision.bounds.max_mg_per_day
    reviewed = decision.draft_mg_per_day if decision.draft is not None else decision.current_mg_per_day
    if reviewed is not None and maximum is not None and reviewed > maximum + 1e-9:
        return "critical"
    if decision.blocked or decision.bounds.specialist_only:
        return "warning"
    if decision.draft is not None:
        if decision.draft_mg_per_day is None or decision.draft_conflicts:
            return "warning"
        if titration_excess(decision, decision.draft_mg_per_day) is not None:
            return "warning"
        mg = decision.recommended_mg_per_day
        if decision.source == "model" and mg is not None and \
                abs(dosing.dose_class_of(mg) - dosing.dose_class_of(decision.draft_mg_per_day)) > 1:
            return "warning"
        return "info"
    if decision.source == "model" and decision.action in CHANGES:
        return "warning"
    return "info"


# --- detail ------------------------------------------------------------------------------------


def _now_line(decision: Decision) -> str:
    weight = decision.weight_kg
    about = []
    if weight is not None:
        about.append(f"{weight:g} kg")
    if decision.age_years is not None:
        about.append(f"{decision.age_years:.1f} y" + (" (atypical for BECT)" if decision.atypical_age else ""))
    current = decision.current_mg_per_day
    if current is None:
        taking = ("levetiracetam may be taken, with no readable order in effect" if any(p.item == LEV_TAKEN_ITEM for p in decision.problems)
                  else "levetiracetam order in effect, dose not readable")
    elif current <= 0:
        taking = "not on levetiracetam"
    else:
        taking = f"levetiracetam {_dose(current, weight)}"
    line = f"- **Now:** {taking}" + (f"; {', '.join(about)}" if about else "")
    if decision.draft is not None:
        line += ("; draft dose not readable" if decision.draft_mg_per_day is None
                 else f"; draft {_dose(decision.draft_mg_per_day, weight)}")
    return line


def _recommended_line(decision: Decision) -> str:
    if decision.blocked:
        return "- **Recommended:** nothing: the data problem below must be fixed first."
    mg = decision.recommended_mg_per_day
    if decision.action == "none":
        label = "Recommended" if decision.source == "model" else "Guidance"
        return f"- **{label} (none):** no levetiracetam now" + (f": {decision.guidance_text}" if decision.guidance_text else "")
    if decision.source == "model" and mg is not None:
        how = f": {_regimen(decision, mg).instruction()}" if mg > 0 else ""
        return f"- **Recommended ({decision.action}):** {_dose(mg, decision.weight_kg)}{how}"
    if decision.source == "guidance":
        dose = f" {_dose(mg, decision.weight_kg)}:" if mg else ""
        return f"- **Guidance ({decision.action}):**{dose} {decision.guidance_text or ''}".rstrip()
    return "- **Recommended:** nothing can be said" + (f": {decision.guidance_text}" if decision.guidance_text else ".")


def _rails_line(decision: Decision) -> str:
    shown = decision.rules + decision.draft_conflicts
    if not shown:
        return "- **Rails:** label bounds only; no clinical rail changed the choice"
    return "- **Rails:** " + "; ".join(f"{r.rule_id} ({r.message})" if r.message else r.rule_id for r in shown)


def _confidence_line(decision: Decision) -> str:
    """The confidence in one short line: the first reason (all of them are under Details)."""
    first = decision.confidence_reasons[0] if decision.confidence_reasons else None
    if decision.source == "model":
        return f"- **Confidence:** clear ({first or 'the model has seen children like this one'})"
    more = len(decision.confidence_reasons) - 1
    return f"- **Confidence:** {NO_CONFIDENT}" + (f": {first}" if first else "") + (f" (+{more} more below)" if more > 0 else "")


def _on_solution(decision: Decision) -> bool:
    return _form_taken(decision) == "solution"


def _form_taken(decision: Decision) -> str | None:
    """The form of the order under review (the draft) or in effect: a dose change keeps the child on it."""
    for order in (decision.draft, decision.active_order):
        if order is not None and (form := product_form(order)) is not None:
            return form
    return None


def _form_options(decision: Decision) -> tuple[bool, bool, bool]:
    """(prefer_solution, prefer_xr, prefer_tablets) for the form the child takes."""
    form = _form_taken(decision)
    return form == "solution", form == "xr-tablet", form in ("tablet", "xr-tablet")


def _regimen(decision: Decision, mg: float) -> Any:
    solution, xr, tablets = _form_options(decision)
    return choose_regimen(mg, decision.weight_kg, decision.age_years, prefer_solution=solution, prefer_xr=xr,
                          prefer_tablets=tablets)


def _titration_lines(decision: Decision, target: float) -> list[str]:
    excess = titration_excess(decision, target)
    if excess is None:
        return []
    change, step = excess
    steps = math.ceil(abs(change) / step - 1e-9)
    direction = "an increase" if change > 0 else "a decrease"
    per_kg = ("500 mg twice daily" if decision.age_years is not None and decision.age_years >= dosing.ADULT_AGE_YEARS
              else "7 mg/kg twice daily" if decision.age_years is not None and decision.age_years < SIX_MONTHS_YEARS
              else "10 mg/kg twice daily")
    text = (f"**Titration:** from the {_mg(decision.current_mg_per_day or 0)} mg/day taken, {direction} of "
            f"{_mg(abs(change))} mg/day is more than the label allows at once (at most {per_kg} = {_mg(round(step))} mg/day every "
            f"{dosing.TITRATION_INTERVAL_WEEKS:g} weeks): reach {_mg(target)} mg/day in {steps} steps over about "
            f"{steps * dosing.TITRATION_INTERVAL_WEEKS:g} weeks.")
    if target <= 0 and (decision.current_mg_per_day or 0) > 0:
        text += " Do not stop levetiracetam abruptly."
    return [text, ""]


def detail_of(decision: Decision) -> str:
    blocking = [p for p in decision.problems if p.blocking]
    why = (f"{blocking[0].item}: {blocking[0].detail}" if blocking else decision.why) or "see the course below"
    if decision.why_more and not blocking:
        why += f". {decision.why_more}"
    lines = [_now_line(decision), _recommended_line(decision), f"- **Why:** {why}", _rails_line(decision),
             _confidence_line(decision), "", "#### Details", ""]
    if decision.problems:
        lines.append("**Data problems:**")
        lines.extend(f"- {p.kind}: **{p.item}**: {p.detail}" for p in decision.problems)
        lines.append("")
    if decision.atypical_age:
        lines.extend([f"**Age:** {decision.atypical_age}", ""])
    if decision.seizure_history:
        record = (f"; record it with the [BECT follow-up questionnaire]({decision.questionnaire_url})"
                  if not decision.seizure_history_known and decision.questionnaire_url else "")
        lines.extend([f"**Seizure history:** {decision.seizure_history}{record}.", ""])
    if decision.facts:
        lines.append("**Course:**")
        lines.extend(f"- {fact}" for fact in decision.facts)
        lines.append("")
    mg = decision.recommended_mg_per_day
    if not decision.blocked and mg is not None and mg > 0 and decision.action in CHANGES:
        regimen = _regimen(decision, mg)
        lines.append(f"**How to give {_mg(mg)} mg/day:** {regimen.instruction()}.")
        if regimen.unit == "mL":
            weight = decision.weight_kg
            reason = ("the child weighs 20 kg or less" if weight is not None and weight <= SOLUTION_MAX_WEIGHT_KG
                      else "the child takes the oral solution" if _on_solution(decision)
                      else "the dose is not a whole number of tablets")
            lines.append(f"Oral solution 100 mg/mL because {reason}: {regimen.amount:g} mL per dose.")
        lines.append("")
    if not decision.blocked and mg is not None and decision.action in CHANGES:
        lines.extend(_titration_lines(decision, mg))
    if decision.action == "taper" and (decision.current_mg_per_day or 0) > 0:
        lines.extend(["**Withdrawal:** reduce by at most 10 mg/kg twice daily every 2 weeks (label); "
                      "do not stop levetiracetam abruptly.", ""])
    if decision.level_lines:
        lines.append("**Levels:**")
        lines.extend(decision.level_lines)
        lines.append("")
    lines.append("**Bounds:**")
    bounds = decision.bounds
    if decision.blocked:
        lines.append("- Not computed: the maximum depends on the data that has a problem.")
    elif bounds.max_mg_per_day is not None:
        lines.append(f"- Maximum for this child: {_mg(round(bounds.max_mg_per_day))} mg/day.")
    if not decision.blocked:
        lines.extend(f"- {note}" for note in bounds.notes)
        lines.extend(f"- Assumed: {note}" for note in bounds.assumptions)
    if decision.model_mg_per_day is not None:
        if decision.raw_mg_per_day is not None and decision.raw_mg_per_day != decision.model_mg_per_day:
            lines.append(f"- The model's unrestricted choice was {_mg(decision.raw_mg_per_day)} mg/day; within the "
                         f"bounds and rails its choice is {_mg(decision.model_mg_per_day)} mg/day.")
        else:
            lines.append(f"- The model's choice, {_mg(decision.model_mg_per_day)} mg/day, is within the bounds and rails.")
    if decision.source != "model" and decision.model_mg_per_day is not None and not decision.blocked:
        lines.append(f"- Not offered as a recommendation: {NO_CONFIDENT}.")
    lines.append("")
    if len(decision.confidence_reasons) > 1:
        lines.append("**Confidence:**")
        lines.extend(f"- {reason}" for reason in decision.confidence_reasons)
        lines.append("")
    coverage = "unknown" if decision.coverage is None else f"{decision.coverage:.0%}"
    lines.append(f"**Training data coverage** of children like this one: {coverage}.")
    if decision.notes:
        lines.extend(["", "**Data not available:** " + "; ".join(decision.notes) + "."])
    lines.extend(["", f"Model version {decision.model_version}. {DISCLAIMER}"])
    return "\n".join(lines)


# --- suggestions -------------------------------------------------------------------------------


def _suggested_mg(decision: Decision) -> float | None:
    """The dose a suggestion would order, or None when no suggestion fits."""
    if decision.blocked or decision.bounds.specialist_only or decision.source == "none":
        return None
    mg = decision.recommended_mg_per_day
    if mg is None or mg <= 0 or decision.action not in CHANGES:
        return None
    maximum = decision.bounds.max_mg_per_day
    if maximum is None or mg > maximum + 1e-9:
        return None  # unreachable: recommendations come from the mask; never an order above the maximum
    reviewed = decision.draft_mg_per_day if decision.draft is not None else decision.current_mg_per_day
    if reviewed is not None and dosing.dose_class_of(reviewed) == dosing.dose_class_of(mg):
        return None  # never repeat the dose under review
    if decision.draft is not None and draft_in_line(decision):
        return None
    return mg


def _discard_draft(decision: Decision) -> dict[str, Any] | None:
    """Order hooks, when the decision is to keep the dose taken (or to give none): discard the draft."""
    draft = decision.draft
    if draft is None or decision.blocked or decision.source == "none" or decision.action not in ("keep", "none"):
        return None
    draft_id = draft.get("id")
    current = decision.current_mg_per_day
    if not isinstance(draft_id, str) or not draft_id or decision.draft_mg_per_day is None:
        return None
    if decision.action == "keep" and current is not None and \
            dosing.dose_class_of(current) == dosing.dose_class_of(decision.draft_mg_per_day):
        return None  # the draft already keeps the dose
    keep = (f"keep the {_mg(current)} mg/day order in effect" if decision.action == "keep" and current
            else "no levetiracetam now")
    label = f"Discard the draft order: {keep}"
    if decision.source != "model":
        label = "Guidance: " + label
    return {"label": label, "uuid": str(uuid.uuid4()), "isRecommended": decision.source == "model",
            "actions": [{"type": "delete", "description": f"Discard the draft levetiracetam order ({keep})",
                         "resourceId": [f"MedicationRequest/{draft_id}"]}]}


def suggestion_of(decision: Decision) -> dict[str, Any] | None:
    """Update the draft (order hooks) or create an order (patient-view) for the dose; stop what it replaces."""
    mg = _suggested_mg(decision)
    if mg is None:
        return _discard_draft(decision)
    instruction = _regimen(decision, mg).instruction()
    solution, xr, tablets = _form_options(decision)
    actions: list[dict[str, Any]] = []
    draft_id = decision.draft.get("id") if decision.draft is not None else None
    if decision.draft is not None:
        if not isinstance(draft_id, str) or not draft_id:
            return None
        resource = updated_order(decision.draft, mg, weight_kg=decision.weight_kg, age_years=decision.age_years)
        actions.append({"type": "update", "description": f"Change the draft order to {_mg(mg)} mg/day: {instruction}",
                        "resource": resource})
        label = f"Change order to {_mg(mg)} mg/day ({instruction})"
    else:
        resource = medication_request(decision.patient_id, mg, weight_kg=decision.weight_kg, age_years=decision.age_years,
                                      encounter_id=decision.encounter_id, prefer_solution=solution, prefer_xr=xr,
                                      prefer_tablets=tablets)
        actions.append({"type": "create", "description": f"Order levetiracetam {_mg(mg)} mg/day: {instruction}",
                        "resource": resource})
        label = f"Order levetiracetam {_mg(mg)} mg/day ({instruction})"
    active = decision.active_order
    if active is not None and isinstance(active.get("id"), str) and active.get("id") != draft_id:
        actions.append({"type": "update", "description": "Stop the levetiracetam order in effect, which this order replaces",
                        "resource": stopped_order(active)})
        label += "; stops the current order"
    if decision.source != "model":
        label = "Guidance: " + label
    return {"label": label[:200], "uuid": str(uuid.uuid4()), "isRecommended": decision.source == "model",
            "actions": actions}


def dose_card(decision: Decision, report_url: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary_of(decision),
        "detail": detail_of(decision),
        "indicator": indicator_of(decision),
        "source": {"label": SOURCE_LABEL, "url": report_url},
        "overrideReasons": [{"system": system, "code": code, "display": display}
                            for system, code, display in OVERRIDE_REASONS],
        "links": [{"label": "Model evaluation report", "url": report_url, "type": "absolute"}],
        "extension": decision_extension(decision),
    }
    if not decision.seizure_history_known and decision.questionnaire_url:
        card["links"].append({"label": "Record the seizure history (BECT follow-up questionnaire)",
                              "url": decision.questionnaire_url, "type": "absolute"})
    suggestion = suggestion_of(decision)
    if suggestion is not None:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    return card


def constant_card() -> dict[str, Any]:
    """A fixed card for benchmarks (the cost of the HTTP stack without the pipeline)."""
    return {"uuid": str(uuid.uuid4()), "summary": "Levetiracetam 750 mg/day: 375 mg twice daily (25 mg/kg/day)",
            "indicator": "info", "source": {"label": SOURCE_LABEL}}
