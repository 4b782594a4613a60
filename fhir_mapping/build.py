"""FHIR R4 resources → :class:`~fhir_mapping.timeline.PatientTimeline`, one per patient.

Rules (each is a decision the service and training share):

- **Patients.** Resources are grouped by the Patient their ``subject`` (or ``patient``) points at,
  by logical id (relative, absolute or ``urn:uuid:`` references). Resources without a subject go to
  the only patient when there is exactly one.
- **Visits** (the decision points). One visit per day: the days of clinic Encounters
  (``period.start``; cancelled, planned and entered-in-error ones are ignored) and of coded or
  questionnaire reports linked to none. The study's visits are outpatient follow-ups (domain.md §1):
  an Encounter of an :data:`EVIDENCE_ENCOUNTER_CLASSES` class (emergency, inpatient, observation,
  short stay) is evidence, not a visit. With no clinic Encounter in the input, the visits are the days
  with a visit's report (seizure, examination or assessment; coded, questionnaire or note) and the
  days with mapped values after the last of them (a lab day does not split the interval a later
  report counts over); with no reports at all, every day with a mapped value (dated clusters). An
  Observation linked to a known Encounter belongs to that Encounter's day. Evidence (an emergency
  encounter's reason, notes and Observations; a seizure Condition's onset and own note; a note
  between visits) never makes a visit while a later visit holds it: it is placed in the interval it
  falls in (a seizure report is never dropped; anything else it says is not used, and a report
  between visits says so as an ``ambiguous`` problem). A seizure after the last visit (up to
  ``as_of``) has no visit to hold it: the latest such day is a visit, so the decision sees it.
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
  MedicationRequest only; an active levetiracetam MedicationStatement with no order in effect makes the
  dose taken unreadable (an ``unreadable-dose`` problem), never "not on levetiracetam".
- **Seizure evidence, from every place a chart keeps it.** Per visit item, the candidates are: the
  project Observations ("code"), QuestionnaireResponse answers ("questionnaire"), seizures dated by a
  Condition of :data:`fhir_mapping.codes.SEIZURE_EVENT_KEYS` (onset, else recordedDate, else the day of
  the Encounter that lists it), an Encounter reasonCode or an Observation coded as a seizure finding
  ("condition", "encounter", "observation"), and note text
  (:mod:`fhir_mapping.notes`: DocumentReference with inline data or a url to a Binary given in the
  input, ``note`` of Condition and Observation, an Encounter's narrative). A dated seizure counts in
  the interval its date falls in (after the previous visit, up to the visit day; the first visit's
  interval starts at onset), for seizure since the last visit and the 3- and 6-month flags; dated
  seizures never give a count. Within one interval the count (a visit's report) and the dated
  seizures describe the same seizures: the count stands, and more seizures on distinct exact dates
  than it counts is a ``conflict`` problem, never an addition (the state and the rails then read the
  course one way, :func:`fhir_mapping.features.seizure_course`). A stated seizure-free period denies
  seizures over the intervals and windows it covers and dates the last seizure at least that far back.
  How many so far: "History of single seizure" (a Condition, or a clinic visit's reason, which is then
  not a new seizure) or a note's "first seizure" says one; a count within a window ("3 in the last 11
  weeks"), a count between visits or on a seizure finding's value is a lower bound on the seizures so
  far; a seizure once levetiracetam was taken is at least the second. The strongest source wins (code, questionnaire,
  condition or encounter, then text); a disagreement with a weaker source is a ``conflict`` problem.
  A diagnosis (epilepsy, seizure disorder, BECT, ICD-10-CM G40) is not a seizure: it gives the onset
  and ``conditions`` only, whatever its clinicalStatus or abatement. Refuted, entered-in-error and
  unconfirmed Conditions are ignored. No evidence leaves an item missing ("not recorded"), never false.
- **Problems, never exceptions**: no birthDate, a quantity in a unit the UCUM table cannot convert,
  a value outside :data:`PLAUSIBLE_RANGES`, an unreadable dose of an order in effect, etc.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any, Final, NamedTuple

from fhir_mapping import codes, notes, questionnaire
from fhir_mapping.dosing import schwartz_egfr
from fhir_mapping.inputs import parse_date, reference_id, resource_label
from fhir_mapping.medication import (
    NormalisedDose,
    OrdersInEffect,
    PlacedOrder,
    asm_key,
    asm_key_of_codings,
    counts_as_taken,
    medication_codings,
    mentions_levetiracetam,
    normalise_medication_request,
    order_dates,
    place_order,
)
from fhir_mapping.problems import MappingError, Problem, ProblemKind
from fhir_mapping.timeline import (
    DoseSpan,
    DrugLevel,
    Measurement,
    PatientTimeline,
    Provenance,
    Visit,
)
from fhir_mapping.units import CANONICAL_UNIT, CONVERSIONS, convert

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
MEASURED_KEYS: Final = frozenset({"weight", "height", *LAB_KEYS})  # carried as a Measurement
# Reports that make a day a visit and belong to that day only.
VISIT_REPORT_KEYS: Final = frozenset({
    "seizure_count_since_last_visit", "seizure_last_3_months", "seizure_last_6_months",
    "seizure_duration_class", "physical_exam_class", "physician_assessment", "behaviour_adverse_effect",
    "seizure_since_last_visit", "seizure_free_months", "family_requests_treatment",
    "single_seizure_so_far", "seizures_so_far_at_least",
})
# The items of a visit that several sources can state, in the order they are resolved.
REPORT_ITEMS: Final = (
    "seizure_since_last_visit", "seizure_count_since_last_visit", "seizure_duration_class",
    "seizure_last_3_months", "seizure_last_6_months", "physical_exam_class", "physician_assessment",
    "behaviour_adverse_effect", "family_requests_treatment", "single_seizure_so_far", "seizures_so_far_at_least",
)
# Strongest first: structured evidence wins over text.
# A clinic visit's reason code ("visit-reason": "Seizure", R56.9 on a routine follow-up) names the visit's
# subject: the weakest sign that a seizure happened since the last visit, below the clinician's note.
SOURCE_RANK: Final = {"code": 0, "questionnaire": 1, "condition": 2, "encounter": 2, "observation": 2, "text": 3, "visit-reason": 4}
# The windows of the 3- and 6-month flags, in days (as the simulator counts them, training/simulator/simulate.py).
THREE_MONTHS_DAYS: Final = 91
SIX_MONTHS_DAYS: Final = 182
DAYS_PER_MONTH: Final = 30.44
IGNORED_DOCUMENT_STATUSES: Final = frozenset({"entered-in-error"})
UNCONFIRMED_CONDITION_VERIFICATION: Final = frozenset({"unconfirmed", "provisional", "differential"})
IGNORED_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error", "planned"})
# Encounter classes (v3 ActCode, the R4 Encounter.class value set) that are evidence, not decision
# points: the study's decisions are outpatient follow-up visits (domain.md §1), while an emergency,
# inpatient (IMP, ACUTE, NONAC), observation or short-stay encounter records what brought the child
# in, usually the seizure itself. Ambulatory, virtual, home and unclassed encounters stay visits.
EVIDENCE_ENCOUNTER_CLASSES: Final = frozenset({"EMER", "IMP", "ACUTE", "NONAC", "OBSENC", "SS"})
IGNORED_OBSERVATION_STATUSES: Final = frozenset({"cancelled", "entered-in-error", "registered"})
IGNORED_CONDITION_VERIFICATION: Final = frozenset({"entered-in-error", "refuted"})
ANSWERS: Final[dict[str, tuple[str, ...]]] = {
    "seizure_duration_class": codes.DURATION_CLASSES,
    "physical_exam_class": codes.EXAM_CLASSES,
    "physician_assessment": codes.ASSESSMENT_CLASSES,
    "eeg": codes.EEG_RESULTS,
}


# Tuples, not frozen dataclasses: a chart makes hundreds of them per call and a tuple is built in one step.
class _Value(NamedTuple):
    key: str
    day: date  # the day measured
    visit_day: date  # the visit it belongs to (the Encounter's day when linked)
    value: Any
    stamp: str  # effective[x] as written, to order same-day values
    linked: bool  # linked to a known Encounter
    source: str = "code"  # a key of SOURCE_RANK
    resource: str = ""  # Type/id
    event: bool = False  # derived from a dated seizure (then ``day`` is the seizure's day)
    evidence: bool = False  # from a resource that is evidence, not a visit's report: never makes a visit day
    dated: bool = False  # an event on the seizure's own, exact date (distinct days are distinct seizures)


_DAY_AND_STAMP: Final = operator.attrgetter("day", "stamp")  # the order of a chart's values (same-day ones by their stamps)


class _Event(NamedTuple):
    """A seizure dated by its onset (a Condition, an Encounter reason, a dated statement in a note)."""

    day: date
    source: str
    resource: str
    # True when ``day`` is the seizure's own date (an onset, a dated statement); False when it is only
    # the day the seizure was recorded (recordedDate, an Encounter): then it happened on or before that
    # day and after the visit before it.
    dated: bool = True
    # False for a date reckoned from relative time in a note ("8 weeks ago"): near the seizure's day,
    # not on it, so it cannot tell two seizures apart from one dated exactly.
    exact: bool = True


def build_timelines(resources: Iterable[Mapping[str, Any]], *, as_of: date | None = None) -> list[PatientTimeline]:
    """One timeline per patient found, in order of first appearance, visits sorted by date."""
    groups, medications, orphans = _group(resources)
    if len(groups) == 1 and orphans:
        return [_build(pid, items + orphans, medications, as_of) for pid, items in groups.items()]
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


# Resources referenced by patient-owned ones and shared by every patient (a Binary holds a note's
# text when a DocumentReference points at it by url), and the kinds a timeline is built from.
SHARED_KINDS: Final = frozenset({"Medication", "Binary"})
PATIENT_KINDS: Final = frozenset({"Patient", "Observation", "Encounter", "Condition", "MedicationRequest",
                                  "MedicationStatement", "DocumentReference", "QuestionnaireResponse"})


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The logical id of the Patient a resource belongs to (itself, its ``subject`` or ``patient``)."""
    return _patient_of_kind(resource, resource.get("resourceType"))


def _patient_of_kind(resource: Mapping[str, Any], kind: object) -> str | None:
    if kind == "Patient":
        ident = resource.get("id")
        return ident if isinstance(ident, str) and ident else None
    for field in ("subject", "patient"):
        found = reference_id(resource.get(field), "Patient")
        if found:
            return found
    return None


def _group(resources: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, list[Any]], Mapping[str, Mapping[str, Any]], list[Any]]:
    """Patient-owned resources by patient, shared ones by ``Type/id``, and those that name no patient."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    medications: dict[str, Mapping[str, Any]] = {}
    orphans: list[Mapping[str, Any]] = []
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        kind = resource.get("resourceType")
        if kind in SHARED_KINDS:
            ident = resource.get("id")
            if isinstance(ident, str):
                medications[f"{kind}/{ident}"] = resource
            continue
        if kind not in PATIENT_KINDS:
            continue
        pid = _patient_of_kind(resource, kind)
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
        # (position, resource, asm key, its medication_codings)
        self.orders: list[tuple[int, Mapping[str, Any], str, tuple[list[dict[str, Any]], Mapping[str, Any] | None]]] = []
        self.latest_day: date | None = None
        self.events: list[_Event] = []
        self.condition_days: dict[str, date] = {}  # Condition id -> day of an Encounter listing it
        self.evidence_encounters: dict[str, date] = {}  # emergency and inpatient Encounters: id -> day
        self.evidence_conditions: set[str] = set()  # Conditions listed by such an Encounter only
        self.denied_events: set[tuple[str, date]] = set()  # dated seizures a stronger source denies
        # Days from which a code says the child has had one seizure so far ("History of single seizure").
        self.single_seizure_days: list[date] = []
        self.event_durations: dict[str, int] = {}  # seizure's resource -> duration class its own note gives
        self.lifetime_lower_bounds: list[tuple[date, int]] = []  # (day, at least this many seizures by then)
        # Levetiracetam that may be taken but gives no readable order: (start, end, "Type/id", what it is).
        self.unread_lev: list[tuple[date | None, date | None, str, str]] = []
        self.unread_lev_said: set[str] = set()
        self.binaries = {key: value for key, value in medications.items() if key.startswith("Binary/")}

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
        verification = resource.get("verificationStatus")
        statuses = {_text(c.get("code")) for c in _items(verification.get("coding")) if isinstance(c, dict)} if isinstance(verification, dict) else set()
        if statuses & IGNORED_CONDITION_VERIFICATION:
            return
        period = resource.get("onsetPeriod")
        onset = parse_date(resource.get("onsetDateTime")) or (parse_date(period.get("start")) if isinstance(period, dict) else None)
        recorded = parse_date(resource.get("recordedDate"))
        ident = resource.get("id")
        encounter = reference_id(resource.get("encounter"), "Encounter")
        at_visit = self.encounter_days.get(encounter) if encounter else None
        at_evidence = self.evidence_encounters.get(encounter) if encounter else None
        if at_visit is None and at_evidence is None and isinstance(ident, str) and ident in self.condition_days:
            if ident in self.evidence_conditions:
                at_evidence = self.condition_days[ident]
            else:
                at_visit = self.condition_days[ident]
        listed_on = at_visit or at_evidence
        key = codes.condition_key(resource.get("code"))
        # The note of a seizure Condition not listed at a clinic visit describes that seizure (dated by
        # its onset): evidence for the interval it falls in, not a visit's report. Other notes are read
        # on the day the Condition was listed or recorded.
        seizure_note = key in codes.SEIZURE_EVENT_KEYS and at_visit is None
        text_day = (onset or at_evidence or recorded) if seizure_note else listed_on or recorded
        if text_day is not None and "note" in resource and not self.after_as_of(text_day):  # a Condition's text is its note
            self.texts(resource, text_day, text_day, listed_on is not None, text_day.isoformat(),
                       evidence=seizure_note or (at_visit is None and at_evidence is not None))
        if key is None:
            return
        # Onset as recorded; else when the condition was recorded (the first date it is known).
        first_known = onset or recorded
        if self.after_as_of(first_known):
            return
        self.timeline.conditions = self.timeline.conditions | {key}
        if key == "history_of_single_seizure" and not statuses & UNCONFIRMED_CONDITION_VERIFICATION and first_known is not None:
            self.single_seizure_days.append(first_known)
        if key in codes.SEIZURE_EVENT_KEYS:
            if statuses & UNCONFIRMED_CONDITION_VERIFICATION:
                self.problem(ProblemKind.AMBIGUOUS, "seizure Condition is not confirmed (verificationStatus): not counted", resource, "verificationStatus")
                return
            day = onset or recorded or listed_on
            if day is None:
                self.problem(ProblemKind.MISSING, "seizure Condition without onset, recordedDate or an Encounter: it cannot be placed in time", resource, "onsetDateTime")
            elif not self.after_as_of(day):
                # A seizure diagnosis of a clinic visit dated only by that visit (a follow-up's billing diagnosis)
                # says as little as the visit's reason code; one with an onset of its own dates a seizure.
                billing = at_visit is not None and (onset is None or onset == at_visit)
                self.events.append(_Event(day, "visit-reason" if billing else "condition", resource_label(resource),
                                          dated=onset is not None or day == at_evidence))
            return
        if first_known is not None and (self.timeline.onset is None or first_known < self.timeline.onset):
            self.timeline.onset = first_known

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
        evidence = _encounter_class(resource) in EVIDENCE_ENCOUNTER_CLASSES
        if evidence:
            self.evidence_encounters[ident if isinstance(ident, str) else f"#{len(self.evidence_encounters)}"] = day
        else:
            self.encounter_days[ident if isinstance(ident, str) else f"#{len(self.encounter_days)}"] = day
        self.seen(day)
        for reason in _items(resource.get("reasonCode")):
            key = codes.condition_key(reason)
            if key is None:
                continue
            self.timeline.conditions = self.timeline.conditions | {key}
            if key == "history_of_single_seizure" and not evidence:
                # A clinic visit about a single seizure says how many there have been, not that one
                # happened since the last visit.
                self.single_seizure_days.append(day)
            elif key in codes.SEIZURE_EVENT_KEYS:
                # An emergency or inpatient encounter for a seizure dates it (the day it brought the
                # child in); a clinic visit's reason says only that one happened since the last visit.
                self.events.append(_Event(day, "encounter" if evidence else "visit-reason", resource_label(resource), dated=evidence))
        references = list(_items(resource.get("reasonReference")))
        references += [d.get("condition") for d in _items(resource.get("diagnosis")) if isinstance(d, dict)]
        for reference in references:
            condition = reference_id(reference, "Condition")
            if condition is not None:
                if condition not in self.condition_days and evidence:
                    self.evidence_conditions.add(condition)
                elif not evidence:
                    self.evidence_conditions.discard(condition)
                self.condition_days.setdefault(condition, day)
        self.texts(resource, day, day, True, day.isoformat(), evidence=evidence)

    def document(self, resource: Mapping[str, Any]) -> None:
        if _text(resource.get("status")) in IGNORED_DOCUMENT_STATUSES or _text(resource.get("docStatus")) == "entered-in-error":
            return
        raw_context = resource.get("context")
        context: Mapping[str, Any] = raw_context if isinstance(raw_context, dict) else {}
        raw_period = context.get("period")
        period: Mapping[str, Any] = raw_period if isinstance(raw_period, dict) else {}
        stamp = _text(resource.get("date")) or _text(period.get("start")) or _text(period.get("end")) or ""
        day = parse_date(stamp)
        encounters = [reference_id(r, "Encounter") for r in _items(context.get("encounter"))]
        linked_day = next((self.encounter_days[e] for e in encounters if e is not None and e in self.encounter_days), None)
        evidence_day = next((self.evidence_encounters[e] for e in encounters if e is not None and e in self.evidence_encounters), None)
        evidence = linked_day is None and evidence_day is not None
        day = day or linked_day or evidence_day
        if day is None:
            self.problem(ProblemKind.MISSING, "DocumentReference without a date or a known Encounter: its text cannot be placed in time", resource, "date")
            return
        if self.after_as_of(day):
            return
        self.texts(resource, day, linked_day or day, linked_day is not None, stamp, evidence=evidence)

    def questionnaire_response(self, resource: Mapping[str, Any]) -> None:
        """Answers to the project Questionnaire (fhir_mapping.questionnaire); other forms are not read."""
        if not questionnaire.answers_this(resource) or _text(resource.get("status")) not in questionnaire.READ_STATUSES:
            return
        stamp = _text(resource.get("authored")) or ""
        encounter = reference_id(resource.get("encounter"), "Encounter")
        linked_day = self.encounter_days.get(encounter) if encounter else None
        day = parse_date(stamp) or linked_day
        if day is None:
            self.problem(ProblemKind.MISSING, "QuestionnaireResponse without authored or a known Encounter: its answers cannot be placed in time", resource, "authored")
            return
        if self.after_as_of(day):
            return
        values, unread = questionnaire.read_response(resource)
        for path, why in unread:
            self.problem(ProblemKind.INVALID_VALUE, why, resource, path)
        label = resource_label(resource)
        for key, value in values.items():
            self.values.append(_Value(key, day, linked_day or day, value, stamp, linked_day is not None, "questionnaire", label))
        if values:
            self.seen(day)

    def texts(self, resource: Mapping[str, Any], day: date, visit_day: date, linked: bool, stamp: str, *, evidence: bool = False) -> None:
        """Read the note text of a resource (fhir_mapping.notes) into text values and dated seizures.

        ``evidence``: the resource is not a visit's report (an emergency encounter's, a Condition's
        own note): its values never make a visit day and become dated seizures (see ``assemble``)."""
        found, unread = notes.resource_texts(resource, self.binaries)
        for path, why in unread:
            self.problem(ProblemKind.UNREADABLE_TEXT, why, resource, path)
        if not found:
            return
        values: dict[str, list[Any]] = {}
        for path, text in found:
            reading = notes.read_text(text)
            for message in reading.problems:
                kind = ProblemKind.AMBIGUOUS if message.startswith("note states") else ProblemKind.UNREADABLE_TEXT
                self.problem(kind, message, resource, path)
            for key, value in reading.items.items():
                values.setdefault(key, []).append(value)
        items, disagreements = notes.merge_items(values)
        for message in disagreements:
            self.problem(ProblemKind.AMBIGUOUS, message, resource, "")
        label = resource_label(resource)
        for key, value in items.items():
            if key == "seizure_months_ago":
                self.events.append(_Event(visit_day - timedelta(days=round(value * DAYS_PER_MONTH)), "text", label, exact=False))
            elif key in VISIT_REPORT_KEYS:
                self.values.append(_Value(key, day, visit_day, value, stamp, linked, "text", label, evidence=evidence))
        if items:
            self.seen(day)

    def lev_taken_unread(self, resource: Mapping[str, Any], what: str) -> None:
        """Levetiracetam the child may be taking that gives no readable order: an active MedicationStatement (a
        reconciled home medicine), an order of unknown status, an order naming it in text only. Where no order is
        in effect the dose taken is unreadable, never "none" (which would let a card offer a start)."""
        if resource.get("resourceType") == "MedicationRequest":
            start, end, _ = order_dates(resource)
        else:
            period = resource.get("effectivePeriod")
            start = parse_date(resource.get("effectiveDateTime")) or (parse_date(period.get("start")) if isinstance(period, dict) else None)
            end = parse_date(period.get("end")) if isinstance(period, dict) else None
        self.unread_lev.append((start, end, resource_label(resource), what))
        self.timeline.lev_taken_without_order.add(resource_label(resource))

    def seizure_finding(self, resource: Mapping[str, Any], day: date) -> None:
        """A seizure recorded as a finding (SNOMED 91175000 "Seizure" as Observation.code): a seizure on that
        day; a count as its value (valueInteger, valueQuantity) says how many at least, 0 says none."""
        if resource.get("valueBoolean") is False:
            return
        quantity = resource.get("valueQuantity")
        value = resource.get("valueInteger", quantity.get("value") if isinstance(quantity, dict) else None)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value <= MAX_SEIZURE_COUNT:
                self.problem(ProblemKind.INVALID_VALUE, f"seizure finding's count must be a whole number from 0 to {MAX_SEIZURE_COUNT}: "
                             "read as one seizure", resource, "valueInteger" if "valueInteger" in resource else "valueQuantity")
            elif value == 0:
                return
            else:
                self.lifetime_lower_bounds.append((day, int(value)))
        self.events.append(_Event(day, "observation", resource_label(resource)))

    def observation(self, resource: Mapping[str, Any], encounters: Mapping[str, date]) -> None:
        # The hot path of a chart (most of its resources): each field is read once.
        status = resource.get("status")
        if isinstance(status, str) and status in IGNORED_OBSERVATION_STATUSES:
            return
        concept = codes.concept_for(resource.get("code"), codes.OBSERVATION_BY_CODING)
        stamp, day = _effective(resource)
        if concept is None:
            if day is None or self.after_as_of(day):
                return
            finding = codes.condition_key(resource.get("code")) in codes.SEIZURE_EVENT_KEYS
            if finding:
                self.seizure_finding(resource, day)
            if "note" in resource or (finding and isinstance(resource.get("valueString"), str)):
                encounter = reference_id(resource.get("encounter"), "Encounter")
                linked = encounter is not None and encounter in encounters
                evidence = not linked and encounter is not None and encounter in self.evidence_encounters
                self.texts(resource, day, encounters[encounter] if linked and encounter else day, linked, stamp, evidence=evidence)
            return
        if day is None:
            self.problem(ProblemKind.MISSING, f"{concept.key} observation without an effective date", resource, "effectiveDateTime")
            return
        as_of = self.as_of
        if as_of is not None and day > as_of:
            return
        problems_before = len(self.problems)
        value = self._value(concept, resource)
        key = concept.key
        if key == "lev_level":
            self.lev_level(resource, stamp, day, value, self.problems[problems_before:])
        if value is None:
            return
        encounter = reference_id(resource.get("encounter"), "Encounter")
        if encounter is None:
            linked = evidence = False
            visit_day = day
        elif encounter in encounters:
            linked, evidence = True, False
            visit_day = encounters[encounter]
        else:
            linked, evidence = False, encounter in self.evidence_encounters
            visit_day = day
        ident = resource.get("id")
        label = f"Observation/{ident}" if isinstance(ident, str) and ident else "Observation"
        # Every field given, so the tuple is made directly (NamedTuple.__new__ is a Python call per value).
        self.values.append(_new_tuple(_Value, ("egfr_reported" if key == "egfr" else key, day, visit_day, value, stamp, linked, "code", label, False, evidence, False)))
        latest = self.latest_day
        if latest is None or day > latest:
            self.latest_day = day
        if "note" in resource:
            self.texts(resource, day, visit_day, linked, stamp, evidence=evidence)

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
            # A UCUM code of the dimension's own table (most quantities) converts as convert() would convert it.
            factor = CONVERSIONS[concept.dimension].get(unit_code) if isinstance(unit_code, str) else None
            converted = float(number) * factor if factor is not None else convert(
                float(number), unit_code if isinstance(unit_code, str) else None, concept.dimension, unit_text if isinstance(unit_text, str) else None)
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
        if key in ("seizure_last_3_months", "seizure_last_6_months", "behaviour_adverse_effect", "family_requests_treatment"):
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
        named = medication_codings(resource, self.medications)  # read once: the key here, the dose in place_orders
        key = asm_key_of_codings(named[0])
        status = _text(resource.get("status"))
        if key == "levetiracetam" and status == "unknown":
            # The source does not know whether it is in effect: the child may take it, at a dose not read.
            self.lev_taken_unread(resource, "a levetiracetam order of unknown status")
            return
        if not counts_as_taken(resource):
            return
        if key is None:
            if mentions_levetiracetam(resource, self.medications):
                path = "medicationReference" if "medicationReference" in resource else "medicationCodeableConcept"
                self.problem(ProblemKind.UNKNOWN_CODE, "names levetiracetam in text only (no RxNorm or ATC code): the order is not used", resource, path)
                if status in ("active", "on-hold"):
                    self.lev_taken_unread(resource, "an order naming levetiracetam in text only")
            return
        self.orders.append((position, resource, key, named))

    # --- assembly -----------------------------------------------------------------------
    def place_orders(self) -> tuple[OrdersInEffect, dict[str, OrdersInEffect]]:
        lev: list[PlacedOrder] = []
        others: dict[str, list[PlacedOrder]] = {}
        status_known_on = self.as_of or self.latest_day
        for position, resource, key, named in self.orders:
            dose: NormalisedDose | None = None
            if key == "levetiracetam":
                read = normalise_medication_request(resource, self.medications, named=named)
                if isinstance(read, list):
                    self.problems.extend(read)
                else:
                    dose = read
            placed = place_order(resource, position, dose, key, status_known_on)
            if placed is None:
                if key == "levetiracetam":
                    self.problem(ProblemKind.MISSING, "levetiracetam order without authoredOn or a start date: it cannot be placed in time", resource, "authoredOn")
                continue
            authored = dose.authored_on if dose is not None else parse_date(resource.get("authoredOn"))
            if self.after_as_of(placed.start) or self.after_as_of(authored):
                continue  # written after the decision date: not known then
            (lev if key == "levetiracetam" else others.setdefault(key, [])).append(placed)
            if key == "levetiracetam":
                self.timeline.lev_history.append(_dose_span(placed, resource))
        return OrdersInEffect(lev), {key: OrdersInEffect(orders) for key, orders in others.items()}

    def visit_days(self) -> list[date]:
        """The decision visits: the clinic Encounters' days (and coded reports linked to none); with no
        clinic Encounter, the days with a visit's report.

        Evidence never makes a visit day while a later visit holds it (an emergency or inpatient
        encounter, a seizure Condition, a note between visits): it is placed in the interval it falls
        in. A seizure after the last visit (up to ``as_of``) has no later visit to hold it, and the
        decision must not miss it: the latest such day is a visit, the decision point."""
        as_of = self.as_of
        own_days: set[date] = set()  # the visit days of values that are no evidence (up to as_of)
        report_days: set[date] = set()  # of those, the days of a visit's report
        unlinked_report_days: set[date] = set()  # of those, coded or questionnaire reports linked to no Encounter
        stating: list[_Value] = []  # the values that state a seizure
        for v in self.values:  # one pass for every use below
            if _states_seizure(v):
                stating.append(v)
            if v.evidence or (as_of is not None and v.visit_day > as_of):
                continue
            own_days.add(v.visit_day)
            if v.key in VISIT_REPORT_KEYS:
                report_days.add(v.visit_day)
                if not v.linked and v.source in ("code", "questionnaire"):
                    unlinked_report_days.add(v.visit_day)
        days = set(self.encounter_days.values())
        if days:
            # A follow-up's coded reports recorded without an Encounter keep their day (as EHRs that
            # do not link Observations send them); notes between visits are evidence.
            days.update(unlinked_report_days)
        else:
            # No clinic encounter in the input: the follow-ups are the days with a visit's report. A
            # day with measurements only (a weight, a lab) is not a follow-up at which seizures were
            # asked about, so it does not split the interval a later report counts over; after the
            # last report it stays a visit (the decision point is the latest day with data), and with
            # no reports at all every day with a mapped value is a visit.
            days.update(report_days)
            last_report = max(days, default=None)
            days.update(day for day in own_days if last_report is None or day > last_report)
        if as_of is not None:
            days = {day for day in days if day <= as_of}
        last = max(days, default=None)
        seizure_days = [e.day for e in self.events] + [v.day for v in stating if v.evidence or v.visit_day not in days]
        trailing = [day for day in seizure_days if (last is None or day > last) and not self.after_as_of(day)]
        if trailing:
            days.add(max(trailing))
        return sorted(days)

    def assemble(self) -> None:
        if self.timeline.onset is None:
            # No diagnosis dates the onset (a first-seizure chart: "History of single seizure", an
            # emergency visit for a seizure): the onset is the first seizure on record, as a diagnosis'
            # onset is the first seizure's date (domain.md §5; the simulator's onset means the same).
            dated = [e.day for e in self.events if not self.after_as_of(e.day)]
            if dated:
                self.timeline.onset = min(dated)
        lev_orders, other_orders = self.place_orders()
        days = self.visit_days()
        series: dict[str, list[_Value]] = {key: [] for key in CARRIED_KEYS}
        reports: dict[date, dict[str, list[_Value]]] = {}
        visit_set = set(days)
        unused: list[_Value] = []
        for value in sorted(self.values, key=_DAY_AND_STAMP):
            if value.key in series:
                series[value.key].append(value)
            elif value.evidence or value.visit_day not in visit_set:
                if not self._as_evidence(value):
                    unused.append(value)
            else:
                reports.setdefault(value.visit_day, {}).setdefault(value.key, []).append(value)
        placed_from = {event.resource for event in self.events}
        for value in unused:
            if value.key == "seizure_duration_class" and value.evidence and value.resource in placed_from:
                # A seizure Condition's or emergency visit's own note times that seizure: it is the
                # interval's longest seizure when nothing stronger says otherwise.
                self.event_durations[value.resource] = max(int(value.value), self.event_durations.get(value.resource, 0))
                continue
            # A report between visits that states no seizure (or only a detail of one placed from the
            # same resource) has no visit to belong to: said, not silently dropped.
            if not value.evidence and value.resource not in placed_from:
                self.problems.append(Problem(
                    ProblemKind.AMBIGUOUS,
                    f"{value.key.replace('_', ' ')} reported on {value.day.isoformat()}, not a clinic visit's day: not used",
                    value.resource, ""))
        events = sorted(self.events, key=lambda e: e.day)
        event_days = [e.day for e in events]
        # Only the items this chart has (most charts hold a few of the carried items); measured values
        # rounded once, however many visits carry them.
        filled = [(key, values, [v.day for v in values], [round(float(v.value), 6) for v in values] if key in MEASURED_KEYS else None)
                  for key, values in series.items() if values]
        first_encounter: dict[date, str] = {}
        for ident, day in self.encounter_days.items():
            first_encounter.setdefault(day, ident)
        onset = self.timeline.onset
        first_interval_start = onset - timedelta(days=1) if onset else date.min
        previous: date | None = None
        for day in days:
            age = self.timeline.age_years_on(day)
            if age is not None and age < 0:
                self.problems.append(Problem(ProblemKind.INVALID_VALUE, f"visit on {day.isoformat()} is before the birthDate", f"Patient/{self.timeline.patient_id}", "birthDate"))
                age = None
            carried: list[str] = []
            latest: dict[str, _Value] = {}
            weight = height = None
            labs: dict[str, Measurement] = {}
            for key, values, value_days, rounded in filled:
                index = bisect.bisect_right(value_days, day)
                if index:
                    value = latest[key] = values[index - 1]
                    if value.day < day:
                        carried.append("egfr" if key == "egfr_reported" else key)
                    if rounded is not None:
                        measurement = Measurement(rounded[index - 1], value.day, (day - value.day).days)
                        if key == "weight":
                            weight = measurement
                        elif key == "height":
                            height = measurement
                        else:
                            labs[key] = measurement  # in LAB_KEYS order, as the series are
            eeg = latest.get("eeg")
            visit = Visit(date=day, encounter_id=first_encounter.get(day), age_years=age, weight=weight, height=height, labs=labs,
                          egfr=_egfr(height, labs, latest), eeg_result=eeg.value if eeg is not None else None,
                          carried_forward=tuple(carried), days_since_previous_visit=(day - previous).days if previous is not None else None)
            interval_start = previous if previous is not None else first_interval_start
            self._reports(visit, reports.get(day, {}), self._placed(events, event_days, interval_start, day, days) if events else {})
            if self.single_seizure_days and visit.single_seizure_so_far is None and any(stated <= day for stated in self.single_seizure_days):
                visit.single_seizure_so_far = True
            if self.lifetime_lower_bounds:
                at_least = max((n for when, n in self.lifetime_lower_bounds if when <= day), default=0)
                if at_least > (visit.seizures_so_far_at_least or 0):
                    visit.seizures_so_far_at_least = at_least
            self._orders(visit, lev_orders, other_orders)
            if self.unread_lev:
                self._unread_lev(visit)
            previous = day
            self.timeline.visits.append(visit)

    def _as_evidence(self, value: _Value) -> bool:
        """A report that is not a decision visit's: a seizure it states is dated on its day and placed
        in the interval it falls in (never dropped). False when the value is not used."""
        if value.key in ("seizure_count_since_last_visit", "seizures_so_far_at_least") and isinstance(value.value, int) \
                and not isinstance(value.value, bool) and value.value > 0:
            # "3 seizures this month" between visits: at least that many by its day, whatever interval it covers.
            self.lifetime_lower_bounds.append((value.day, value.value))
            if value.key == "seizures_so_far_at_least":
                return True
        seizure = _states_seizure(value)
        if seizure:
            # An evidence resource dates its own seizure (an emergency visit, a Condition's onset); a
            # report between visits says only that one happened on or before its day.
            self.events.append(_Event(value.day, value.source, value.resource, dated=value.evidence))
        return seizure

    def _unread_lev(self, visit: Visit) -> None:
        """Where levetiracetam that gives no readable order (:meth:`lev_taken_unread`) covers a visit that no
        order does, the dose taken is unreadable."""
        said = False
        for start, end, label, what in self.unread_lev:
            if end is not None and end < visit.date:
                continue
            if visit.lev_before is None and visit.lev_before_unreadable is None and (start is None or start < visit.date):
                visit.lev_before_unreadable = label
                visit.anti_seizure_medicines_before = visit.anti_seizure_medicines_before | {"levetiracetam"}
                said = True
            if visit.lev is None and visit.lev_unreadable is None and (start is None or start <= visit.date):
                visit.lev_unreadable = label
                visit.anti_seizure_medicines = visit.anti_seizure_medicines | {"levetiracetam"}
                said = True
            if said:
                if label not in self.unread_lev_said:
                    self.unread_lev_said.add(label)
                    self.problems.append(Problem(
                        ProblemKind.UNREADABLE_DOSE,
                        f"levetiracetam may be taken ({what}) with no readable order in effect: the dose taken cannot be "
                        "checked; reconcile the order", label, "dosage"))
                return

    def _placed(self, events: list[_Event], event_days: list[date], start: date, day: date, visit_days: list[date]) -> dict[str, list[_Value]]:
        """The seizure items dated seizures give a visit: since the last visit (after ``start``), 3 and 6 months.

        A seizure known only by the day it was recorded happened after the visit before that day: it
        is within a window only when that whole stretch is.
        """
        placed: dict[str, list[_Value]] = {}
        earliest = min(start, day - timedelta(days=SIX_MONTHS_DAYS))
        for event in events[bisect.bisect_right(event_days, earliest): bisect.bisect_right(event_days, day)]:
            if (event.resource, event.day) in self.denied_events:
                continue
            if event.dated:
                earliest_possible = event.day
            else:
                before = bisect.bisect_left(visit_days, event.day)
                onset = self.timeline.onset - timedelta(days=1) if self.timeline.onset else date.min
                earliest_possible = visit_days[before - 1] + timedelta(days=1) if before else onset
            for key, after in (("seizure_since_last_visit", start), ("seizure_last_3_months", day - timedelta(days=THREE_MONTHS_DAYS)), ("seizure_last_6_months", day - timedelta(days=SIX_MONTHS_DAYS))):
                inside = event.day > after if key == "seizure_since_last_visit" else earliest_possible > after
                if inside:
                    placed.setdefault(key, []).append(_Value(key, event.day, day, True, event.day.isoformat(), True, event.source, event.resource, event=True, dated=event.dated and event.exact))
                    if key == "seizure_since_last_visit" and event.resource in self.event_durations:
                        placed.setdefault("seizure_duration_class", []).append(_Value(
                            "seizure_duration_class", event.day, day, self.event_durations[event.resource], event.day.isoformat(), True,
                            event.source, event.resource, event=True))
        return placed

    def _reports(self, visit: Visit, reports: dict[str, list[_Value]], placed: Mapping[str, list[_Value]]) -> None:
        if not reports and not placed:
            return  # nothing reported or dated for this visit: every item stays unknown
        candidates = reports  # this visit's own lists (assemble hands each visit its own): extended in place
        for key, values in placed.items():
            candidates.setdefault(key, []).extend(values)
        for reported in candidates.get("seizure_count_since_last_visit", []):
            if reported.source != "text":  # text states since-the-last-visit itself
                candidates.setdefault("seizure_since_last_visit", []).append(_Value("seizure_since_last_visit", reported.day, reported.visit_day, reported.value > 0, reported.stamp, reported.linked, reported.source, reported.resource))
        for free in candidates.get("seizure_free_months", []):
            # A seizure-free period covering the whole interval denies seizures since the last visit.
            interval = visit.days_since_previous_visit
            if interval is not None and free.value * DAYS_PER_MONTH >= interval:
                for key, denied in (("seizure_since_last_visit", False), ("seizure_count_since_last_visit", 0), ("seizure_duration_class", 0)):
                    candidates.setdefault(key, []).append(_Value(key, free.day, free.visit_day, denied, free.stamp, free.linked, free.source, free.resource))
        stated_free = self._choose(visit, "seizure_free_months", candidates.get("seizure_free_months", []))
        if stated_free is not None:
            visit.seizure_free_months_stated = float(stated_free.value)
        chosen: dict[str, _Value] = {}
        since = self._choose(visit, "seizure_since_last_visit", candidates.get("seizure_since_last_visit", []))
        if since is not None:
            chosen["seizure_since_last_visit"] = since
            self._drop_contradicting(visit, since, candidates)
        for key in REPORT_ITEMS[1:]:
            options = candidates.get(key)
            if options:
                best = self._choose(visit, key, options)
                if best is not None:
                    chosen[key] = best
        count = chosen.get("seizure_count_since_last_visit")
        if count is not None and isinstance(count.value, int) and count.value > 0:
            # The count and the dated seizures of the interval describe the same seizures: the count
            # stands; more seizures on distinct dates than it counts is a conflict, not an addition.
            dated = sorted({v.day for v in candidates.get("seizure_since_last_visit", []) if v.event and v.dated})
            if len(dated) > count.value:
                self.problems.append(Problem(
                    ProblemKind.CONFLICT,
                    f"seizure count since last visit on {visit.date.isoformat()}: {count.source} {count.resource} gives {count.value}, "
                    f"but seizures are dated on {len(dated)} days in the interval ({', '.join(d.isoformat() for d in dated)}); the count is used",
                    count.resource, ""))
        if since is not None and since.value is False:
            # No seizure since the last visit: the count is 0 and the longest duration "none".
            for key in ("seizure_count_since_last_visit", "seizure_duration_class"):
                if key not in chosen:
                    chosen[key] = _Value(key, since.day, since.visit_day, 0, since.stamp, since.linked, since.source, since.resource)
        for key, value in chosen.items():
            setattr(visit, _VISIT_FIELDS.get(key, key), value.value)
            visit.provenance[key] = Provenance(value.source, value.resource)
        if since is not None and since.value is True and "seizure_count_since_last_visit" not in chosen:
            # Seizures dated one by one are counted by their days; any other report leaves the number open.
            # (an evidence resource's own value stands for the seizure its dated event places)
            said = [v for v in candidates.get("seizure_since_last_visit", []) if v.value is True and (v.event or not v.evidence)]
            visit.seizures_uncounted = not all(v.event and v.dated for v in said)

    def _choose(self, visit: Visit, key: str, options: list[_Value]) -> _Value | None:
        """The strongest candidate (latest first; a report of a seizure before a denial of the same
        kind of source); every disagreeing candidate of another kind of source is a conflict."""
        if not options:
            return None
        if len(options) == 1:
            return options[0]  # nothing to weigh it against
        best = min(options, key=lambda v: (SOURCE_RANK[v.source], -_positive(v), _reverse(v.stamp)))
        for other in options:
            if other.source != best.source and other.value != best.value:
                self._conflict(visit, key, other, f"{best.source} {best.resource} gives {best.value!r}", f"the {best.source} value is used")
        return best

    def _drop_contradicting(self, visit: Visit, since: _Value, candidates: dict[str, list[_Value]]) -> None:
        """Remove weaker candidates that contradict the chosen answer on seizures since the last visit:
        a count or a duration saying otherwise, and (when none happened) seizures dated in the interval."""
        rank = SOURCE_RANK[since.source]
        start = visit.date - timedelta(days=visit.days_since_previous_visit) if visit.days_since_previous_visit else date.min
        if since.value is False:
            # Seizures dated in this interval by a weaker source are denied here and at later visits.
            self.denied_events.update((v.resource, v.day) for v in candidates.get("seizure_since_last_visit", [])
                                      if v.event and SOURCE_RANK[v.source] > rank)
        for key in ("seizure_count_since_last_visit", "seizure_duration_class", "seizure_last_3_months", "seizure_last_6_months"):
            if key not in candidates:
                continue
            kept = []
            for value in candidates[key]:
                if key in ("seizure_count_since_last_visit", "seizure_duration_class"):
                    contradicts = (value.value > 0) != since.value
                else:
                    contradicts = since.value is False and value.event and start < value.day <= visit.date
                if contradicts and SOURCE_RANK[value.source] > rank:
                    said = "no seizure" if since.value is False else "a seizure"
                    self._conflict(visit, key, value, f"{since.source} {since.resource} reports {said} since the last visit", "not used")
                else:
                    kept.append(value)
            candidates[key] = kept

    def _conflict(self, visit: Visit, key: str, other: _Value, stronger: str, outcome: str) -> None:
        self.problems.append(Problem(
            ProblemKind.CONFLICT,
            f"{key.replace('_', ' ')} on {visit.date.isoformat()}: {stronger}, {other.source} {other.resource} gives {other.value!r}; {outcome}",
            other.resource, "",
        ))

    def _orders(self, visit: Visit, lev_orders: OrdersInEffect, other_orders: Mapping[str, OrdersInEffect]) -> None:
        day = visit.date
        before = lev_orders.on_arrival(day)
        after = lev_orders.at_end_of_day(day)
        visit.lev_before = before.dose.lev_order() if before is not None and before.dose is not None else None
        visit.lev_before_unreadable = before.source if before is not None and before.dose is None else None
        visit.lev = after.dose.lev_order() if after is not None and after.dose is not None else None
        visit.lev_unreadable = after.source if after is not None and after.dose is None else None
        if not other_orders:  # levetiracetam alone (most charts): the sets are shared, being immutable
            visit.anti_seizure_medicines_before = _LEVETIRACETAM_ONLY if before is not None else _NO_MEDICINE
            visit.anti_seizure_medicines = _LEVETIRACETAM_ONLY if after is not None else _NO_MEDICINE
            return
        taking_before = {"levetiracetam"} if before is not None else set()
        taking_after = {"levetiracetam"} if after is not None else set()
        for key, orders in other_orders.items():
            if orders.on_arrival(day) is not None:
                taking_before.add(key)
            if orders.at_end_of_day(day) is not None:
                taking_after.add(key)
        visit.anti_seizure_medicines_before = frozenset(taking_before)
        visit.anti_seizure_medicines = frozenset(taking_after)


_VISIT_FIELDS: Final = {"physical_exam_class": "exam_class"}
_LEVETIRACETAM_ONLY: Final = frozenset({"levetiracetam"})
_NO_MEDICINE: Final[frozenset[str]] = frozenset()
_new_tuple: Final = tuple.__new__  # a _Value with every field given, without NamedTuple.__new__'s Python call


def _positive(value: _Value) -> int:
    """1 for a report of a seizure or an effect (it outweighs a denial from the same kind of source)."""
    return int(value.value is True or (isinstance(value.value, int) and not isinstance(value.value, bool) and value.value > 0))


class _reverse(str):
    """A string that sorts in reverse (the latest stamp first)."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


def _items(value: object) -> list[Any]:
    """A repeating element as a list (corrupt input may hold a scalar instead)."""
    return value if isinstance(value, list) else []


def _states_seizure(value: _Value) -> bool:
    """A report that a seizure happened (since the last visit, or a count above 0)."""
    return (value.key == "seizure_since_last_visit" and value.value is True) or (
        value.key == "seizure_count_since_last_visit" and isinstance(value.value, int) and not isinstance(value.value, bool) and value.value > 0)


def _encounter_class(resource: Mapping[str, Any]) -> str | None:
    """The v3 ActCode of Encounter.class (an R4 Coding; a list of codings or concepts is read too)."""
    found = resource.get("class")
    candidates = found if isinstance(found, list) else [found]
    for candidate in candidates:
        codings = _items(candidate.get("coding")) if isinstance(candidate, dict) and "coding" in candidate else [candidate]
        for coding in codings:
            code = _text(coding.get("code")) if isinstance(coding, dict) else None
            if code:
                return code.upper()
    return None


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
    return DoseSpan(placed.source, placed.start, placed.end, dose.mg_per_day if dose else None, dose.doses_per_day if dose else None,
                    tuple(sorted(set(clock))) if clock else ())


def _egfr(height: Measurement | None, labs: Mapping[str, Measurement], latest: Mapping[str, _Value]) -> float | None:
    creatinine = labs.get("creatinine")
    if creatinine is not None and height is not None:
        return round(schwartz_egfr(height.value, creatinine.value), 3)
    reported = latest.get("egfr_reported")
    return float(reported.value) if reported is not None else None


def build_patient_timeline(patient_id: str, items: Iterable[Mapping[str, Any]], shared: Mapping[str, Mapping[str, Any]],
                           *, as_of: date | None = None) -> PatientTimeline:
    """The timeline of one patient from its own resources (grouped by :func:`patient_of`, in input order) and
    the shared ones by ``Type/id`` (:data:`SHARED_KINDS`): what :func:`build_timelines` does per patient."""
    return _build(patient_id, list(items), shared, as_of)


def _build(patient_id: str, items: list[Mapping[str, Any]], medications: Mapping[str, Mapping[str, Any]], as_of: date | None) -> PatientTimeline:
    builder = _Builder(patient_id, medications, as_of)
    # One pass sorts the resources into the passes below (the last one in input order: the order of
    # a visit's values breaks ties, and an order's position is its last tiebreak).
    patient: Mapping[str, Any] | None = None
    encounters: list[Mapping[str, Any]] = []
    conditions: list[Mapping[str, Any]] = []
    in_order: list[tuple[int, Mapping[str, Any], object]] = []
    for position, resource in enumerate(items):
        kind = resource.get("resourceType")
        if kind == "Observation" or kind in _READ_IN_ORDER:
            in_order.append((position, resource, kind))
        elif kind == "Encounter":
            encounters.append(resource)
        elif kind == "Condition":
            conditions.append(resource)
        elif kind == "Patient" and patient is None:
            patient = resource
    if patient is not None:
        builder.patient(patient)
    else:
        builder.problems.append(Problem(ProblemKind.MISSING, "no Patient resource: birthDate and sex are unknown", f"Patient/{patient_id}", ""))
    # Encounters first: a Condition may be dated by the Encounter that lists it, wherever it comes.
    for resource in encounters:
        builder.encounter(resource)
    for resource in conditions:
        builder.condition(resource)
    for position, resource, kind in in_order:
        if kind == "Observation":
            builder.observation(resource, builder.encounter_days)
        elif kind == "DocumentReference":
            builder.document(resource)
        elif kind == "QuestionnaireResponse":
            builder.questionnaire_response(resource)
        elif kind == "MedicationRequest":
            builder.medication_request(resource, position)
        elif kind == "MedicationStatement" and asm_key(resource, medications) == "levetiracetam" and _text(resource.get("status")) in ("active", "on-hold"):
            builder.lev_taken_unread(resource, "recorded as taken in a MedicationStatement")
    builder.assemble()
    return builder.timeline


_READ_IN_ORDER: Final = frozenset({"Observation", "DocumentReference", "QuestionnaireResponse", "MedicationRequest", "MedicationStatement"})
