"""FHIR R4 resources → :class:`~fhir_mapping.timeline.PatientTimeline`, one per patient.

Rules (each is a decision the service and training share):

- **Patients.** Resources are grouped by the Patient their ``subject`` (or ``patient``) points at,
  by logical id (relative, absolute or ``urn:uuid:`` references). Resources without a subject go to
  the only patient when there is exactly one.
- **Visits.** One visit per day: the days of Encounters (``period.start``; cancelled, planned and
  entered-in-error ones are ignored) plus the days of seizure, examination or assessment reports not
  linked to an Encounter (a seizure report is never dropped). With no Encounters at all, every day
  with a mapped Observation is a visit (dated clusters). An Observation linked to a known Encounter
  belongs to that Encounter's day.
- **as_of** (the service's "today"): data dated after it is ignored, and the last visit is the
  decision point: the latest day with data on or before ``as_of``. No empty visit is invented at
  ``as_of``: a state whose seizure reports are all unknown occurs nowhere in training, so a model
  would answer it at random. Consumers judge how old the last visit and its values are (the service
  refuses a weight older than :data:`fhir_mapping.dosing.MAX_WEIGHT_AGE_DAYS`).
- **Carried forward.** Weight, height, labs and EEG: the last value measured on or before the visit
  day, with its age in days (``Measurement.age_days``); consumers judge staleness.
- **eGFR.** Bedside Schwartz (:func:`fhir_mapping.dosing.schwartz_egfr`) from the latest creatinine
  and height; else a reported eGFR (LOINC 50384-7). The computed value is preferred because adult
  laboratory eGFR equations do not apply to children.
- **Levetiracetam and other anti-seizure medicines:** :mod:`fhir_mapping.medication`, from
  MedicationRequest only; an active levetiracetam MedicationStatement is reported, not read.
- **Problems, never exceptions**: no birthDate, a quantity in a unit the UCUM table cannot convert,
  a value outside :data:`PLAUSIBLE_RANGES`, an unreadable dose of an order in effect, etc.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_mapping import codes
from fhir_mapping.dosing import schwartz_egfr
from fhir_mapping.inputs import parse_date, reference_id, resource_label
from fhir_mapping.medication import (
    NormalisedDose,
    PlacedOrder,
    asm_key,
    counts_as_taken,
    mentions_levetiracetam,
    normalise_medication_request,
    order_at_end_of_day,
    order_on_arrival,
    place_order,
)
from fhir_mapping.problems import MappingError, Problem, ProblemKind
from fhir_mapping.timeline import DoseSpan, DrugLevel, Measurement, PatientTimeline, Visit
from fhir_mapping.units import CANONICAL_UNIT, convert

# Physiologically possible ranges in canonical units (project plausibility limits, not clinical
# reference ranges: they only catch unit and typing errors such as a weight of 185 "kg" for a child
# or a creatinine in umol/L labelled mg/dL). Outside them a value is reported and not used.
PLAUSIBLE_RANGES: Final[dict[str, tuple[float, float]]] = {
    "weight": (0.3, 250.0),  # kg
    "height": (25.0, 250.0),  # cm
    "creatinine": (0.05, 25.0),  # mg/dL
    "alt": (0.0, 20000.0),  # U/L
    "ast": (0.0, 20000.0),  # U/L
    "wbc": (0.0, 1000.0),  # 10*3/uL
    "hemoglobin": (1.0, 25.0),  # g/dL
    "platelets": (0.0, 5000.0),  # 10*3/uL
    "lev_level": (0.0, 500.0),  # mg/L: >10x the top of the trough reference (46 mg/L, domain.md §3) is a unit or typing error
    "egfr": (1.0, 400.0),  # mL/min/1.73 m2
}
MAX_SEIZURE_COUNT: Final = 10000  # per interval between visits; more is a typing error
LAB_KEYS: Final = ("creatinine", "alt", "ast", "wbc", "hemoglobin", "platelets", "lev_level")
CARRIED_KEYS: Final = ("weight", "height", *LAB_KEYS, "egfr_reported", "eeg")
# Reports that make a day a visit and belong to that day only.
VISIT_REPORT_KEYS: Final = frozenset({
    "seizure_count_since_last_visit", "seizure_last_3_months", "seizure_last_6_months",
    "seizure_duration_class", "physical_exam_class", "physician_assessment", "behaviour_adverse_effect",
})
IGNORED_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error", "planned"})
IGNORED_OBSERVATION_STATUSES: Final = frozenset({"cancelled", "entered-in-error", "registered"})
IGNORED_CONDITION_VERIFICATION: Final = frozenset({"entered-in-error", "refuted"})
ANSWERS: Final[dict[str, tuple[str, ...]]] = {
    "seizure_duration_class": codes.DURATION_CLASSES,
    "physical_exam_class": codes.EXAM_CLASSES,
    "physician_assessment": codes.ASSESSMENT_CLASSES,
    "eeg": codes.EEG_RESULTS,
}


@dataclass(frozen=True, slots=True)
class _Value:
    key: str
    day: date  # the day measured
    visit_day: date  # the visit it belongs to (the Encounter's day when linked)
    value: Any
    stamp: str  # effective[x] as written, to order same-day values
    linked: bool  # linked to a known Encounter


def build_timelines(resources: Iterable[Mapping[str, Any]], *, as_of: date | None = None) -> list[PatientTimeline]:
    """One timeline per patient found, in order of first appearance, visits sorted by date."""
    groups, medications, orphans = _group(resources)
    if len(groups) == 1 and orphans:
        next(iter(groups.values())).extend(orphans)
    return [_build(pid, items, medications, as_of) for pid, items in groups.items()]


def build_timeline(resources: Iterable[Mapping[str, Any]], patient_id: str | None = None, *, as_of: date | None = None) -> PatientTimeline:
    """The timeline of one patient (the only one, or ``patient_id``).

    Raises :class:`MappingError` when ``patient_id`` is None and the input holds several patients.
    A patient with no data gives an empty timeline with a ``missing`` problem.
    """
    groups, medications, orphans = _group(resources)
    if patient_id is None:
        if len(groups) > 1:
            raise MappingError([Problem(ProblemKind.AMBIGUOUS, f"input holds {len(groups)} patients; name one", "", "")])
        if not groups:
            timeline = PatientTimeline(patient_id="")
            timeline.problems.append(Problem(ProblemKind.MISSING, "no patient data in the input", "", ""))
            return timeline
        patient_id = next(iter(groups))
    items = groups.get(patient_id)
    if items is None:
        timeline = PatientTimeline(patient_id=patient_id)
        timeline.problems.append(Problem(ProblemKind.MISSING, "no data for this patient in the input", f"Patient/{patient_id}", ""))
        return timeline
    if len(groups) == 1 and orphans:
        items = items + orphans
    return _build(patient_id, items, medications, as_of)


def _patient_of(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        ident = resource.get("id")
        return ident if isinstance(ident, str) and ident else None
    for field in ("subject", "patient"):
        found = reference_id(resource.get(field), "Patient")
        if found:
            return found
    return None


def _group(resources: Iterable[Mapping[str, Any]]) -> tuple[dict[str, list[Mapping[str, Any]]], dict[str, Mapping[str, Any]], list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    medications: dict[str, Mapping[str, Any]] = {}
    orphans: list[Mapping[str, Any]] = []
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        kind = resource.get("resourceType")
        if kind == "Medication":
            ident = resource.get("id")
            if isinstance(ident, str):
                medications[f"Medication/{ident}"] = resource
            continue
        if kind not in ("Patient", "Observation", "Encounter", "Condition", "MedicationRequest", "MedicationStatement"):
            continue
        pid = _patient_of(resource)
        if pid is None:
            orphans.append(resource)
        else:
            groups.setdefault(pid, []).append(resource)
    return groups, medications, orphans


class _Builder:
    def __init__(self, patient_id: str, medications: Mapping[str, Mapping[str, Any]], as_of: date | None) -> None:
        self.timeline = PatientTimeline(patient_id=patient_id)
        self.medications = medications
        self.as_of = as_of
        self.problems = self.timeline.problems
        self.encounter_days: dict[str, date] = {}
        self.values: list[_Value] = []
        self.orders: list[tuple[int, Mapping[str, Any], str]] = []  # (position, resource, asm key)
        self.latest_day: date | None = None

    def after_as_of(self, day: date | None) -> bool:
        return self.as_of is not None and day is not None and day > self.as_of

    def seen(self, day: date | None) -> None:
        if day is not None and (self.latest_day is None or day > self.latest_day):
            self.latest_day = day

    def problem(self, kind: ProblemKind, message: str, resource: Mapping[str, Any], path: str) -> None:
        self.problems.append(Problem(kind, message, resource_label(resource), path))

    # --- readers ------------------------------------------------------------------------
    def patient(self, resource: Mapping[str, Any]) -> None:
        raw = resource.get("birthDate")
        birth = parse_date(raw)
        if birth is None:
            self.problem(ProblemKind.MISSING, "no usable birthDate: age, and so the dose bounds, cannot be known", resource, "birthDate")
        elif isinstance(raw, str) and len(raw) < 10:
            self.problem(ProblemKind.AMBIGUOUS, f"partial birthDate {raw!r}: the first day of the period is assumed", resource, "birthDate")
        self.timeline.birth_date = birth
        gender = resource.get("gender")
        self.timeline.sex = gender if isinstance(gender, str) and gender in ("male", "female", "other", "unknown") else None

    def condition(self, resource: Mapping[str, Any]) -> None:
        concept = codes.concept_for(resource.get("code"), codes.CONDITION_BY_CODING)
        if concept is None:
            return
        verification = resource.get("verificationStatus")
        if isinstance(verification, dict):
            for coding in _items(verification.get("coding")):
                if isinstance(coding, dict) and _text(coding.get("code")) in IGNORED_CONDITION_VERIFICATION:
                    return
        # Onset as recorded; else when the condition was recorded (the first date it is known).
        period = resource.get("onsetPeriod")
        onset = (parse_date(resource.get("onsetDateTime"))
                 or (parse_date(period.get("start")) if isinstance(period, dict) else None)
                 or parse_date(resource.get("recordedDate")))
        if self.after_as_of(onset):
            return
        self.timeline.conditions = self.timeline.conditions | {concept.key}
        if onset is not None and (self.timeline.onset is None or onset < self.timeline.onset):
            self.timeline.onset = onset

    def encounter(self, resource: Mapping[str, Any]) -> None:
        if _text(resource.get("status")) in IGNORED_ENCOUNTER_STATUSES:
            return
        period = resource.get("period")
        day = None
        if isinstance(period, dict):
            day = parse_date(period.get("start")) or parse_date(period.get("end"))
        if day is None:
            self.problem(ProblemKind.MISSING, "Encounter without a date", resource, "period.start")
            return
        if self.after_as_of(day):
            return
        ident = resource.get("id")
        self.encounter_days[ident if isinstance(ident, str) else f"#{len(self.encounter_days)}"] = day
        self.seen(day)

    def observation(self, resource: Mapping[str, Any], encounters: Mapping[str, date]) -> None:
        concept = codes.concept_for(resource.get("code"), codes.OBSERVATION_BY_CODING)
        if concept is None or _text(resource.get("status")) in IGNORED_OBSERVATION_STATUSES:
            return
        stamp, day = _effective(resource)
        if day is None:
            self.problem(ProblemKind.MISSING, f"{concept.key} observation without an effective date", resource, "effectiveDateTime")
            return
        if self.after_as_of(day):
            return
        problems_before = len(self.problems)
        value = self._value(concept, resource)
        if concept.key == "lev_level":
            self.lev_level(resource, stamp, day, value, self.problems[problems_before:])
        if value is None:
            return
        encounter = reference_id(resource.get("encounter"), "Encounter")
        linked = encounter is not None and encounter in encounters
        visit_day = encounters[encounter] if linked and encounter is not None else day
        key = "egfr_reported" if concept.key == "egfr" else concept.key
        self.values.append(_Value(key, day, visit_day, value, stamp, linked))
        self.seen(day)

    def _value(self, concept: codes.Concept, resource: Mapping[str, Any]) -> Any:
        key = concept.key
        if concept.dimension is not None:
            quantity = resource.get("valueQuantity")
            if not isinstance(quantity, dict):
                if "dataAbsentReason" not in resource:
                    self.problem(ProblemKind.MISSING, f"{key} observation without valueQuantity", resource, "valueQuantity")
                return None
            number = quantity.get("value")
            if quantity.get("comparator") is not None:
                self.problem(ProblemKind.AMBIGUOUS, f"{key} reported with a comparator ({quantity.get('comparator')!s}): the value is a bound, not a measurement", resource, "valueQuantity.comparator")
                return None
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                self.problem(ProblemKind.INVALID_VALUE, f"{key} value is not a number", resource, "valueQuantity.value")
                return None
            unit_code, unit_text = quantity.get("code"), quantity.get("unit")
            converted = convert(float(number), unit_code if isinstance(unit_code, str) else None, concept.dimension, unit_text if isinstance(unit_text, str) else None)
            if converted is None:
                shown = unit_code or unit_text
                self.problem(ProblemKind.UNKNOWN_UNIT, f"{key} in unit {shown!r}, which does not convert to {CANONICAL_UNIT[concept.dimension]}", resource, "valueQuantity.code" if unit_code else "valueQuantity.unit")
                return None
            low, high = PLAUSIBLE_RANGES[key]
            if not low <= converted <= high:
                self.problem(ProblemKind.INVALID_VALUE, f"{key} {converted:g} {CANONICAL_UNIT[concept.dimension]} is outside the possible range {low:g}–{high:g}", resource, "valueQuantity.value")
                return None
            return converted
        if key == "seizure_count_since_last_visit":
            number = resource.get("valueInteger")
            if number is None and isinstance(resource.get("valueQuantity"), dict):
                number = resource["valueQuantity"].get("value")
            if isinstance(number, float) and number.is_integer():
                number = int(number)
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_SEIZURE_COUNT:
                self.problem(ProblemKind.INVALID_VALUE, f"seizure count must be a whole number from 0 to {MAX_SEIZURE_COUNT}", resource, "valueInteger")
                return None
            return number
        if key in ("seizure_last_3_months", "seizure_last_6_months", "behaviour_adverse_effect"):
            flag = resource.get("valueBoolean")
            if not isinstance(flag, bool):
                self.problem(ProblemKind.MISSING, f"{key} observation without valueBoolean", resource, "valueBoolean")
                return None
            return flag
        answers = ANSWERS.get(key)
        if answers is not None:
            concept_value = resource.get("valueCodeableConcept")
            if isinstance(concept_value, dict):
                for coding in _items(concept_value.get("coding")):
                    if isinstance(coding, dict) and coding.get("system") == codes.EPIDOSE_SYSTEM and coding.get("code") in answers:
                        return answers.index(coding["code"]) if key == "seizure_duration_class" else coding["code"]
            self.problem(ProblemKind.UNKNOWN_CODE, f"{key} answer is not one of the project codes {', '.join(answers)}", resource, "valueCodeableConcept")
            return None
        return None

    def lev_level(self, resource: Mapping[str, Any], stamp: str, day: date, value: float | None, problems: list[Problem]) -> None:
        """Keep every levetiracetam level with its timing text, usable or not, for the PK estimate."""
        notes = [n.get("text") for n in _items(resource.get("note")) if isinstance(n, dict)]
        note = " ".join(n.strip() for n in notes if isinstance(n, str) and n.strip())
        problem = problems[0] if problems else None
        self.timeline.lev_levels.append(DrugLevel(resource_label(resource), day, value if problem is None else None, stamp, note, problem))

    def medication_request(self, resource: Mapping[str, Any], position: int) -> None:
        key = asm_key(resource, self.medications)
        if not counts_as_taken(resource):
            return
        if key is None:
            if mentions_levetiracetam(resource, self.medications):
                path = "medicationReference" if "medicationReference" in resource else "medicationCodeableConcept"
                self.problem(ProblemKind.UNKNOWN_CODE, "names levetiracetam in text only (no RxNorm or ATC code): the order is not used", resource, path)
            return
        self.orders.append((position, resource, key))

    # --- assembly -----------------------------------------------------------------------
    def place_orders(self) -> tuple[list[PlacedOrder], dict[str, list[PlacedOrder]]]:
        lev: list[PlacedOrder] = []
        others: dict[str, list[PlacedOrder]] = {}
        status_known_on = self.as_of or self.latest_day
        for position, resource, key in self.orders:
            dose: NormalisedDose | None = None
            if key == "levetiracetam":
                read = normalise_medication_request(resource, self.medications)
                if isinstance(read, list):
                    self.problems.extend(read)
                else:
                    dose = read
            placed = place_order(resource, position, dose, key, status_known_on)
            if placed is None:
                if key == "levetiracetam":
                    self.problem(ProblemKind.MISSING, "levetiracetam order without authoredOn or a start date: it cannot be placed in time", resource, "authoredOn")
                continue
            if self.after_as_of(placed.start) or self.after_as_of(parse_date(resource.get("authoredOn"))):
                continue  # written after the decision date: not known then
            (lev if key == "levetiracetam" else others.setdefault(key, [])).append(placed)
            if key == "levetiracetam":
                self.timeline.lev_history.append(_dose_span(placed, resource))
        return lev, others

    def visit_days(self) -> list[date]:
        days = set(self.encounter_days.values())
        if days:
            days.update(v.visit_day for v in self.values if v.key in VISIT_REPORT_KEYS and not v.linked)
        else:
            days.update(v.visit_day for v in self.values)
        if self.as_of is not None:
            days = {day for day in days if day <= self.as_of}
        return sorted(days)

    def assemble(self) -> None:
        lev_orders, other_orders = self.place_orders()
        days = self.visit_days()
        series: dict[str, list[_Value]] = {key: [] for key in CARRIED_KEYS}
        reports: dict[date, dict[str, _Value]] = {}
        for value in sorted(self.values, key=lambda v: (v.day, v.stamp)):
            if value.key in series:
                series[value.key].append(value)
            else:
                reports.setdefault(value.visit_day, {})[value.key] = value  # the latest of the day wins
        series_days = {key: [v.day for v in values] for key, values in series.items()}
        first_encounter: dict[date, str] = {}
        for ident, day in self.encounter_days.items():
            first_encounter.setdefault(day, ident)
        previous: date | None = None
        for day in days:
            visit = Visit(date=day, encounter_id=first_encounter.get(day))
            age = self.timeline.age_years_on(day)
            if age is not None and age < 0:
                self.problems.append(Problem(ProblemKind.INVALID_VALUE, f"visit on {day.isoformat()} is before the birthDate", f"Patient/{self.timeline.patient_id}", "birthDate"))
                age = None
            visit.age_years = age
            carried: list[str] = []
            latest: dict[str, _Value] = {}
            for key, values in series.items():
                index = bisect.bisect_right(series_days[key], day)
                if index:
                    latest[key] = values[index - 1]
                    if values[index - 1].day < day:
                        carried.append("egfr" if key == "egfr_reported" else key)
            visit.weight = _measurement(latest.get("weight"), day)
            visit.height = _measurement(latest.get("height"), day)
            visit.labs = {key: m for key in LAB_KEYS if (m := _measurement(latest.get(key), day)) is not None}
            visit.eeg_result = latest["eeg"].value if "eeg" in latest else None
            visit.egfr = self._egfr(visit, latest)
            visit.carried_forward = tuple(carried)
            self._reports(visit, reports.get(day, {}))
            self._orders(visit, lev_orders, other_orders)
            visit.days_since_previous_visit = (day - previous).days if previous else None
            previous = day
            self.timeline.visits.append(visit)

    def _egfr(self, visit: Visit, latest: Mapping[str, _Value]) -> float | None:
        creatinine = visit.labs.get("creatinine")
        if creatinine is not None and visit.height is not None:
            return round(schwartz_egfr(visit.height.value, creatinine.value), 3)
        reported = latest.get("egfr_reported")
        return float(reported.value) if reported is not None else None

    @staticmethod
    def _reports(visit: Visit, reports: Mapping[str, _Value]) -> None:
        def get(key: str) -> Any:
            value = reports.get(key)
            return value.value if value is not None else None

        count = get("seizure_count_since_last_visit")
        visit.seizure_count_since_last_visit = count
        visit.seizure_since_last_visit = None if count is None else count > 0
        visit.seizure_last_3_months = get("seizure_last_3_months")
        visit.seizure_last_6_months = get("seizure_last_6_months")
        visit.seizure_duration_class = get("seizure_duration_class")
        visit.exam_class = get("physical_exam_class")
        visit.physician_assessment = get("physician_assessment")
        visit.behaviour_adverse_effect = get("behaviour_adverse_effect")

    @staticmethod
    def _orders(visit: Visit, lev_orders: list[PlacedOrder], other_orders: Mapping[str, list[PlacedOrder]]) -> None:
        before = order_on_arrival(lev_orders, visit.date)
        after = order_at_end_of_day(lev_orders, visit.date)
        visit.lev_before = before.dose.lev_order() if before is not None and before.dose is not None else None
        visit.lev_before_unreadable = before.source if before is not None and before.dose is None else None
        visit.lev = after.dose.lev_order() if after is not None and after.dose is not None else None
        visit.lev_unreadable = after.source if after is not None and after.dose is None else None
        taking_before = {"levetiracetam"} if before is not None else set()
        taking_after = {"levetiracetam"} if after is not None else set()
        for key, orders in other_orders.items():
            if order_on_arrival(orders, visit.date) is not None:
                taking_before.add(key)
            if order_at_end_of_day(orders, visit.date) is not None:
                taking_after.add(key)
        visit.anti_seizure_medicines_before = frozenset(taking_before)
        visit.anti_seizure_medicines = frozenset(taking_after)


def _items(value: object) -> list[Any]:
    """A repeating element as a list (corrupt input may hold a scalar instead)."""
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    """A string element, or None for anything else (corrupt input may hold lists or objects)."""
    return value if isinstance(value, str) else None


def _effective(resource: Mapping[str, Any]) -> tuple[str, date | None]:
    for field in ("effectiveDateTime", "effectiveInstant"):
        value = resource.get(field)
        if isinstance(value, str):
            return value, parse_date(value)
    period = resource.get("effectivePeriod")
    if isinstance(period, dict):
        value = period.get("start") or period.get("end")
        if isinstance(value, str):
            return value, parse_date(value)
    value = resource.get("issued")
    if isinstance(value, str):
        return value, parse_date(value)
    return "", None


def _dose_span(placed: PlacedOrder, resource: Mapping[str, Any]) -> DoseSpan:
    clock: list[str] = []
    for instruction in _items(resource.get("dosageInstruction")):
        timing = instruction.get("timing") if isinstance(instruction, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        if isinstance(repeat, dict):
            clock.extend(t for t in _items(repeat.get("timeOfDay")) if isinstance(t, str))
    dose = placed.dose
    return DoseSpan(placed.source, placed.start, placed.end, dose.mg_per_day if dose else None, dose.doses_per_day if dose else None, tuple(sorted(set(clock))))


def _measurement(value: _Value | None, day: date) -> Measurement | None:
    if value is None:
        return None
    return Measurement(round(float(value.value), 6), value.day, (day - value.day).days)


def _build(patient_id: str, items: list[Mapping[str, Any]], medications: Mapping[str, Mapping[str, Any]], as_of: date | None) -> PatientTimeline:
    builder = _Builder(patient_id, medications, as_of)
    patients = [r for r in items if r.get("resourceType") == "Patient"]
    if patients:
        builder.patient(patients[0])
    else:
        builder.problems.append(Problem(ProblemKind.MISSING, "no Patient resource: birthDate and sex are unknown", f"Patient/{patient_id}", ""))
    for resource in items:
        kind = resource.get("resourceType")
        if kind == "Encounter":
            builder.encounter(resource)
        elif kind == "Condition":
            builder.condition(resource)
    for position, resource in enumerate(items):
        kind = resource.get("resourceType")
        if kind == "Observation":
            builder.observation(resource, builder.encounter_days)
        elif kind == "MedicationRequest":
            builder.medication_request(resource, position)
        elif kind == "MedicationStatement" and asm_key(resource, medications) == "levetiracetam" and _text(resource.get("status")) in ("active", "on-hold"):
            # Doses are read from orders only; say so rather than let "no order" read as "no levetiracetam".
            builder.problem(ProblemKind.UNSUPPORTED_RESOURCE, "levetiracetam MedicationStatement is not read: the dose comes from MedicationRequest only", resource, "medicationCodeableConcept")
    builder.assemble()
    return builder.timeline
