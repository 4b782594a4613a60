"""From a validated hook request and its gathered data to one card and its audit record.

The FHIR-to-state path is the one the model was trained on (``fhir_mapping``: collect, timeline,
features); the safety rail is ``dosing.label_bounds``, applied to the model's choice here a second
time so that no card can ever carry a dose outside the label or renal bounds, whatever the model says.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from fhir_mapping import dosing
from fhir_mapping.inputs import collect_resources, draft_orders
from fhir_mapping.medication import is_levetiracetam, normalise_medication_request
from plugin.cards import Decision, dose_card, missing_data_card
from plugin.errors import PreconditionFailed, ServiceError
from plugin.gather import Gathered
from plugin.model import InferenceModel

# Prefetch keys without which no decision is possible: if they cannot be obtained at all, 412.
REQUIRED_KEYS = ("patient", "weight")
ORDER_HOOKS = ("order-select", "order-sign")
# Older than this, the card says which visit it is based on (seizure reports since are unknown).
RECENT_VISIT_DAYS = 30


@dataclass
class Outcome:
    """The response cards and, for each dose card, what the audit record needs."""

    cards: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def decide(hook: str, context: dict[str, Any], gathered: Gathered, model: InferenceModel | None,
           report_url: str, today: date | None = None) -> Outcome:
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
            notes.append("the draft order's daily dose could not be read (" + "; ".join(p.message for p in read) + ")")
        else:
            draft_mg = read.mg_per_day
    resources, problems = collect_resources(gathered.values)
    notes.extend(sorted({p.message for p in problems if p.kind.value == "missing"}))

    from fhir_mapping.build import build_timeline
    from fhir_mapping.features import state_row

    timeline = build_timeline(resources, patient_id, as_of=today)
    visit = timeline.visits[-1] if timeline.visits else None  # the latest visit: the decision point
    weight = visit.weight_kg if visit else None
    age = timeline.age_years_on(today)
    egfr = visit.egfr if visit else None
    stale_weight = _stale_weight(visit, today)
    if stale_weight is not None:
        weight = None  # never dose on an outdated weight (dosing.MAX_WEIGHT_AGE_DAYS)
    bounds = dosing.label_bounds(weight, age, egfr)
    missing = list(bounds.missing)
    if stale_weight is not None:
        missing = [stale_weight if "weight" in item else item for item in missing]
    if visit is not None and visit.lev_before_unreadable:
        # The state's current dose would read as 0 mg: no recommendation on a misread history.
        missing.append(f"a readable dose on the levetiracetam order in effect ({visit.lev_before_unreadable})")
    if missing:
        card = missing_data_card(missing, report_url, notes)
        return Outcome([card], [_audit(card, "none", {"missing": missing}, None, draft_mg, None, ())])
    if visit is not None and (today - visit.date).days > RECENT_VISIT_DAYS:
        notes.append(f"seizure reports after the visit of {visit.date.isoformat()} ({(today - visit.date).days} days ago)")
    current: float | None = None
    if visit is not None and visit.lev_unreadable:
        notes.append(f"the daily dose of the current order ({visit.lev_unreadable}), which could not be read")
    elif visit is not None:
        current = visit.lev.mg_per_day if visit.lev else 0.0  # the order in effect after the latest visit
    compared = draft_mg if draft is not None else current  # None: not readable (said in the notes)
    decision = Decision(
        hook=hook, patient_id=patient_id, bounds=bounds, weight_kg=weight, age_years=age, egfr=egfr,
        compared_mg_per_day=compared, compared_label="draft order" if draft is not None else "current",
        draft=draft, data_notes=notes, encounter_id=_string(context.get("encounterId")))
    if model is None:
        raise ServiceError("no model is loaded yet", 503)
    if not timeline.visits:
        raise PreconditionFailed("no visit could be built from the patient's data")
    last_values, last_observed = state_row(timeline, len(timeline.visits) - 1)  # the decision point
    row_values, row_observed = last_values[None, :], last_observed[None, :]
    allowed = np.asarray(bounds.allowed, dtype=bool)
    choice, scores, raw = model.recommend(row_values[0], row_observed[0], allowed)
    decision.scores = tuple(float(s) for s in np.asarray(scores, dtype=float).ravel())
    decision.raw_class = int(raw)
    decision.recommended_class = _enforce_bounds(int(choice), decision.scores, bounds, decision.rail_notes)
    decision.model_version = str(getattr(model, "version", "unknown"))
    decision.score_kind = str(getattr(model, "score_kind", "q"))
    decision.coverage = _coverage(model, row_values, row_observed)
    fingerprint_input = {"values": [None if not math.isfinite(v) else round(float(v), 6) for v in row_values[0]],
                         "observed": [bool(o) for o in row_observed[0]], "draft_mg": draft_mg, "as_of": today.isoformat()}
    card = dose_card(decision, report_url)
    adjustments = tuple(list(bounds.notes) + decision.rail_notes +
                        ([f"model choice {decision.raw_mg_per_day:g} mg/day replaced"]
                         if decision.raw_class != decision.recommended_class else []))
    return Outcome([card], [_audit(card, decision.model_version, fingerprint_input, decision.recommended_mg_per_day,
                                   compared, decision.raw_mg_per_day, adjustments)])


def _enforce_bounds(choice: int, scores: tuple[float, ...], bounds: dosing.DoseBounds, notes: list[str]) -> int:
    """The model's choice if allowed, else the best-scoring allowed class (0 g when nothing else is)."""
    allowed = bounds.allowed
    maximum = bounds.max_mg_per_day if bounds.max_mg_per_day is not None else 0.0
    if 0 <= choice < len(allowed) and allowed[choice] and dosing.dose_mg_of(choice) <= maximum + 1e-9:
        return choice
    candidates = [i for i, ok in enumerate(allowed) if ok and dosing.dose_mg_of(i) <= maximum + 1e-9]
    finite = [(scores[i] if i < len(scores) and math.isfinite(scores[i]) else -math.inf, i) for i in candidates]
    best = max(finite)[1] if finite else 0
    notes.append("the model returned a dose outside the bounds; the service chose the best allowed dose instead")
    return best


def _stale_weight(visit: Any, today: date) -> str | None:
    """What to ask for when the latest weight is older than dosing.MAX_WEIGHT_AGE_DAYS, else None."""
    if visit is None or visit.weight is None:
        return None
    age_days = (today - visit.weight.measured_on).days
    if age_days <= dosing.MAX_WEIGHT_AGE_DAYS:
        return None
    return (f"a body weight from the last {dosing.MAX_WEIGHT_AGE_DAYS // 30} months (LOINC 29463-7): the latest, "
            f"of {visit.weight.measured_on.isoformat()}, is {age_days} days old")


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
