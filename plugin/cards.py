"""CDS Hooks 2.0 cards for a levetiracetam dose decision (§Card Attributes).

One dose card per call: summary < 140 characters with the total daily dose and how to give it;
indicator ``info`` when the dose under review agrees with the recommendation, ``warning`` when it
differs by more than one dose step, ``critical`` when it exceeds the label or renal-adjusted maximum;
Markdown detail for the clinician; one suggestion (create for patient-view, update of the draft for
order hooks); coded override reasons; a link to the model's evaluation report. When data needed for
the bounds is missing, a card says exactly what is missing instead of recommending anything.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from fhir_mapping import dosing
from fhir_mapping.dosing import DoseBounds
from fhir_mapping.emit import SOLUTION_MAX_WEIGHT_KG, choose_regimen, medication_request

SUMMARY_MAX_CHARS: Final = 139  # spec: "<140 characters"
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
# A margin is "clear" when the best allowed dose beats the next by 5% of the reward scale (rewards are ±100
# per visit, domain.md §1) for Q-values, or by a factor of 2 in probability (log 2) for classifiers.
CLEAR_MARGIN_Q: Final = 5.0
CLEAR_MARGIN_LOG_PROB: Final = 0.69
# Coverage is the share of training states at least as far from the training centre as this child's
# (training.inference.Coverage); below 5% the child lies outside nearly all the data the model learnt from.
LOW_COVERAGE: Final = 0.05
SOURCE_LABEL: Final = "epidose levetiracetam dose model"
DISCLAIMER: Final = ("Decision support for clinician review: the recommendation comes from a model trained on "
                     "simulated patients and has not been validated on real patients. It does not replace "
                     "clinical judgement or the product label.")


@dataclass
class Decision:
    """Everything a card says, computed by :mod:`plugin.decide`."""

    hook: str
    patient_id: str
    bounds: DoseBounds
    weight_kg: float | None
    age_years: float | None
    egfr: float | None
    compared_mg_per_day: float | None  # current therapy (patient-view) or the draft order (order hooks)
    compared_label: str  # "current" or "draft order"
    draft: dict[str, Any] | None = None  # the draft MedicationRequest to update (order hooks)
    recommended_class: int | None = None
    raw_class: int | None = None
    scores: tuple[float, ...] = ()
    coverage: float | None = None
    model_version: str = "none"
    score_kind: str = "q"  # "q" (expected reward, ±100 scale) or "log_prob" (behaviour cloning, forest)
    data_notes: list[str] = field(default_factory=list)
    encounter_id: str | None = None
    rail_notes: list[str] = field(default_factory=list)

    @property
    def recommended_mg_per_day(self) -> float | None:
        return None if self.recommended_class is None else dosing.dose_mg_of(self.recommended_class)

    @property
    def raw_mg_per_day(self) -> float | None:
        return None if self.raw_class is None else dosing.dose_mg_of(self.raw_class)


def _fmt_mg(mg: float) -> str:
    return f"{mg:g}"


def _per_kg(mg: float | None, weight: float | None) -> str:
    value = dosing.mg_per_kg_day(mg, weight)
    return "n/a" if value is None else f"{value:.0f}"


def indicator_of(decision: Decision) -> str:
    """critical > label/renal maximum; warning > one dose step from the recommendation; else info."""
    compared = decision.compared_mg_per_day
    maximum = decision.bounds.max_mg_per_day
    if compared is not None and maximum is not None and compared > maximum + 1e-9:
        return "critical"
    if decision.bounds.specialist_only:
        return "warning"
    if decision.recommended_class is None or compared is None:
        return "warning"  # nothing to recommend, or a draft whose dose could not be read
    compared_class = dosing.dose_class_of(compared)
    if abs(compared_class - decision.recommended_class) > 1:
        return "warning"
    return "info"


def summary_of(decision: Decision) -> str:
    mg = decision.recommended_mg_per_day
    if decision.bounds.specialist_only:
        text = "Levetiracetam: dosing for this child needs a specialist (outside the labelled range)"
    elif mg is None:
        text = "Levetiracetam: no recommendation"
    elif mg <= 0:
        text = "Levetiracetam: model suggests no levetiracetam now (0 mg/day); taper, do not stop abruptly"
    else:
        per_kg = dosing.mg_per_kg_day(mg, decision.weight_kg)
        how = f"{_fmt_mg(mg / 2)} mg twice daily"
        text = f"Levetiracetam {_fmt_mg(mg)} mg/day: {how}" + (f" ({per_kg:.0f} mg/kg/day)" if per_kg is not None else "")
        if indicator_of(decision) == "critical":
            text += "; the order exceeds the maximum"
    return text[:SUMMARY_MAX_CHARS]


def _pk_lines(decision: Decision, rows: list[tuple[str, float]]) -> list[str]:
    if decision.weight_kg is None:
        return ["- Predicted concentrations: not available without body weight."]
    try:
        from fhir_mapping.pharmacokinetics import steady_state
    except ImportError:
        return []
    low, high = dosing.TROUGH_REFERENCE_MG_L
    lines = [f"Predicted steady state (typical child of this weight{', eGFR' if decision.egfr else ''}; "
             f"reference trough {low:g}–{high:g} mg/L):", ""]
    for label, mg in rows:
        if mg <= 0:
            lines.append(f"- {label} (0 mg/day): no drug")
            continue
        state = steady_state(mg, decision.weight_kg, decision.egfr, 2)
        trough, average = float(state.trough), float(state.average)
        where = "below" if trough < low else "above" if trough > high else "within"
        lines.append(f"- {label} ({_fmt_mg(mg)} mg/day): trough {trough:.1f} mg/L ({where} range), "
                     f"average {average:.1f} mg/L")
    return lines


def _titration_lines(decision: Decision, mg: float) -> list[str]:
    """How to get from the current or draft dose to the recommendation within the label's steps.

    EU SmPC (domain.md §2): changes of at most ±10 mg/kg twice daily (adults ±500 mg twice daily)
    every 2 weeks, withdrawal included: a larger change is reached in steps, never at once.
    """
    compared = decision.compared_mg_per_day
    if compared is None:
        return []
    change = mg - compared
    step = dosing.max_titration_change_mg_per_day(decision.weight_kg, decision.age_years, dosing.TITRATION_INTERVAL_WEEKS)
    if step is None or step <= 0 or abs(change) <= step + 1e-9:
        return []
    steps = math.ceil(abs(change) / step - 1e-9)
    direction = "an increase" if change > 0 else "a decrease"
    text = (f"**Titration:** {direction} of {_fmt_mg(abs(change))} mg/day is more than the label allows at once "
            f"(at most {_fmt_mg(step)} mg/day every {dosing.TITRATION_INTERVAL_WEEKS:g} weeks): reach "
            f"{_fmt_mg(mg)} mg/day in {steps} steps over about {steps * dosing.TITRATION_INTERVAL_WEEKS:g} weeks.")
    if mg <= 0:
        text += " Do not stop levetiracetam abruptly."
    return [text, ""]


def confidence_of(decision: Decision) -> tuple[float | None, str]:
    """Q-value margin between the chosen and the next-best allowed dose, and a plain-words reading."""
    allowed = decision.bounds.allowed or (True,) * dosing.N_DOSE_CLASSES
    values = sorted((s for s, ok in zip(decision.scores, allowed, strict=False) if ok and math.isfinite(s)),
                    reverse=True)
    if len(values) < 2:
        return None, "only one dose is allowed"
    margin = values[0] - values[1]
    clear = CLEAR_MARGIN_Q if decision.score_kind == "q" else CLEAR_MARGIN_LOG_PROB
    return margin, "clear preference" if margin >= clear else "narrow preference: another dose scores almost as well"


def detail_of(decision: Decision) -> str:
    mg = decision.recommended_mg_per_day or 0.0
    compared = decision.compared_mg_per_day
    weight = decision.weight_kg
    lines = ["| | mg/day | mg/kg/day |", "|---|---|---|"]
    lines.append(f"| {decision.compared_label.capitalize()} | "
                 f"{_fmt_mg(compared) if compared is not None else 'not readable'} | {_per_kg(compared, weight)} |")
    lines.append(f"| **Recommended** | **{_fmt_mg(mg)}** | **{_per_kg(mg, weight)}** |")
    lines.append("")
    if mg > 0:
        regimen = choose_regimen(mg, weight, decision.age_years)
        lines.append(f"**How to give it:** {regimen.instruction()}.")
        if regimen.unit == "mL":
            why = ("the child weighs 20 kg or less" if weight is not None and weight <= SOLUTION_MAX_WEIGHT_KG
                   else "the dose is not a whole number of tablets")
            lines.append(f"Oral solution 100 mg/mL because {why}: {regimen.amount:g} mL per dose.")
        lines.append("")
    lines.extend(_titration_lines(decision, mg))
    pk_rows = [("Recommended", mg)]
    if compared is not None and compared != mg:
        pk_rows.insert(0, (decision.compared_label.capitalize(), compared))
    lines.extend(_pk_lines(decision, pk_rows))
    lines.append("")
    lines.append("**Safety rails (label and renal bounds):**")
    bounds = decision.bounds
    if bounds.max_mg_per_day is not None:
        lines.append(f"- Maximum for this child: {_fmt_mg(round(bounds.max_mg_per_day))} mg/day.")
    lines.extend(f"- {note}" for note in bounds.notes)
    lines.extend(f"- Assumed: {note}" for note in bounds.assumptions)
    raw = decision.raw_mg_per_day
    if raw is not None and decision.raw_class != decision.recommended_class:
        lines.append(f"- The model's unrestricted choice was {_fmt_mg(raw)} mg/day; it is outside the bounds, "
                     f"so the best allowed dose, {_fmt_mg(mg)} mg/day, is shown.")
    else:
        lines.append("- The model's own choice is within the bounds: nothing was changed.")
    lines.extend(f"- {note}" for note in decision.rail_notes)
    if compared is not None and bounds.max_mg_per_day is not None and compared > bounds.max_mg_per_day + 1e-9:
        lines.append(f"- **The {decision.compared_label} ({_fmt_mg(compared)} mg/day) exceeds the maximum.**")
    lines.append("")
    margin, reading = confidence_of(decision)
    coverage = "unknown" if decision.coverage is None else f"{decision.coverage:.0%}"
    if decision.coverage is not None and decision.coverage < LOW_COVERAGE:
        coverage += " (few training children resembled this one: weigh the recommendation with extra care)"
    what = "Q-value margin" if decision.score_kind == "q" else "log-probability margin"
    lines.append(f"**Confidence:** {what} {'n/a' if margin is None else f'{margin:.2f}'} ({reading}); "
                 f"training data coverage of children like this one: {coverage}.")
    if decision.data_notes:
        lines.append("")
        lines.append("**Data not available:** " + "; ".join(decision.data_notes) + ".")
    lines.append("")
    lines.append(f"Model version {decision.model_version}. {DISCLAIMER}")
    return "\n".join(lines)


def suggestion_of(decision: Decision) -> dict[str, Any] | None:
    """Create (patient-view) or update the draft (order hooks) MedicationRequest for the recommendation."""
    mg = decision.recommended_mg_per_day
    if mg is None or decision.bounds.specialist_only:
        return None
    regimen_text = ""
    if mg > 0:
        regimen_text = choose_regimen(mg, decision.weight_kg, decision.age_years).instruction()
    if decision.draft is not None:
        draft_id = decision.draft.get("id")
        if mg <= 0 or not isinstance(draft_id, str) or not draft_id:
            return None
        resource = medication_request(
            decision.patient_id, mg, weight_kg=decision.weight_kg, age_years=decision.age_years,
            status=str(decision.draft.get("status") or "draft"), intent=str(decision.draft.get("intent") or "order"),
            resource_id=draft_id, encounter_id=decision.encounter_id)
        action = {"type": "update", "description": f"Change the draft order to {_fmt_mg(mg)} mg/day: {regimen_text}",
                  "resource": resource}
        label = f"Change order to {_fmt_mg(mg)} mg/day ({regimen_text})"
    else:
        if mg <= 0 or (decision.compared_mg_per_day is not None and
                       dosing.dose_class_of(decision.compared_mg_per_day) == decision.recommended_class):
            return None
        resource = medication_request(
            decision.patient_id, mg, weight_kg=decision.weight_kg, age_years=decision.age_years,
            encounter_id=decision.encounter_id)
        action = {"type": "create", "description": f"Propose levetiracetam {_fmt_mg(mg)} mg/day: {regimen_text}",
                  "resource": resource}
        label = f"Propose levetiracetam {_fmt_mg(mg)} mg/day ({regimen_text})"
    return {"label": label[:200], "uuid": str(uuid.uuid4()), "isRecommended": True, "actions": [action]}


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
    }
    suggestion = suggestion_of(decision)
    if suggestion is not None:
        card["suggestions"] = [suggestion]
        card["selectionBehavior"] = "at-most-one"
    return card


def missing_data_card(missing: list[str], report_url: str, notes: list[str] | None = None) -> dict[str, Any]:
    """A card naming exactly what is missing; no dose is recommended (never a silent default)."""
    names = ", ".join(missing)
    summary = f"Levetiracetam dose: cannot recommend, missing {names}"
    if len(summary) > SUMMARY_MAX_CHARS:
        summary = "Levetiracetam dose: cannot recommend, required data is missing (see details)"
    detail = ["No dose is recommended because data needed to recommend safely is missing:", ""]
    detail.extend(f"- **{item}**" for item in missing)
    if notes:
        detail.append("")
        detail.append("Also not available: " + "; ".join(notes) + ".")
    detail.append("")
    detail.append("Record the missing data in the chart and open the record again. " + DISCLAIMER)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "detail": "\n".join(detail),
        "indicator": "warning",
        "source": {"label": SOURCE_LABEL, "url": report_url},
        "links": [{"label": "Model evaluation report", "url": report_url, "type": "absolute"}],
    }


def constant_card() -> dict[str, Any]:
    """A fixed card for benchmarks (the cost of the HTTP stack without the pipeline)."""
    return {"uuid": str(uuid.uuid4()), "summary": "Levetiracetam 750 mg/day: 375 mg twice daily (25 mg/kg/day)",
            "indicator": "info", "source": {"label": SOURCE_LABEL}}
