"""The patient timeline: what epidose knows about one child, visit by visit.

A :class:`PatientTimeline` is built from FHIR R4 resources by :mod:`fhir_mapping.build` and is the
only input to the state vector (:mod:`fhir_mapping.features`), the training dataset and the
service. Missing values are ``None``, never silently zero; every problem met while reading the
input is kept in ``problems``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from fhir_mapping.problems import Problem


@dataclass(frozen=True)
class Measurement:
    """A value carried forward to a visit: the value, the date it was measured and its age in days."""

    value: float
    measured_on: date
    age_days: int


@dataclass(frozen=True)
class LevOrder:
    """The levetiracetam order in effect at a visit, normalised to a total daily dose.

    ``source`` is "MedicationRequest/<id>"; ``formulation`` is "tablet", "solution", "xr-tablet" or
    "unknown"; ``doses_per_day`` the administrations per day read from the timing.
    """

    mg_per_day: float
    source: str
    status: str
    formulation: str = "unknown"
    doses_per_day: float | None = None
    authored_on: date | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a visit item came from: ``kind`` is "code" (an Observation in a code table),
    "questionnaire" (a QuestionnaireResponse answer), "condition", "encounter" or "observation" (a
    seizure dated in the interval by a Condition, an emergency or inpatient Encounter's reason or
    diagnosis, or an Observation coded as a seizure finding), "text" (note text read by
    :mod:`fhir_mapping.notes`) or "visit-reason" (a clinic visit's reason code, the weakest);
    ``resource`` is "Type/id"."""

    kind: str
    resource: str


@dataclass(frozen=True)
class DrugLevel:
    """A measured levetiracetam level as recorded, with what the record says about its timing.

    ``mg_per_l`` is None when the value cannot be used (``problem`` says why: unknown unit, negative
    or absurd value). ``effective`` is the effective[x] as written (it may carry the clock time of the
    draw) and ``note`` the Observation's note text (a trough flag or the time of the last dose).
    """

    source: str  # "Observation/<id>"
    measured_on: date
    mg_per_l: float | None
    effective: str = ""
    note: str = ""
    problem: Problem | None = None


@dataclass(frozen=True)
class DoseSpan:
    """One levetiracetam order placed in time: the dose history read from every order, not only visits.

    ``end`` is the last day taken (inclusive; None: open-ended); ``mg_per_day`` None when the dose is
    unreadable; ``times_of_day`` the administration clock times the order names ("08:00:00"), if any.
    """

    source: str
    start: date
    end: date | None
    mg_per_day: float | None
    doses_per_day: float | None = None
    times_of_day: tuple[str, ...] = ()


@dataclass
class Visit:
    """One visit (an Encounter, or a dated cluster of observations when Encounters are absent).

    Seizure reports follow the published state and reward: ``seizure_since_last_visit`` (R1),
    ``seizure_last_3_months`` (R2), ``seizure_last_6_months`` (R3); None means not reported.
    """

    date: date
    encounter_id: str | None = None
    age_years: float | None = None
    weight: Measurement | None = None
    height: Measurement | None = None
    seizure_count_since_last_visit: int | None = None
    seizure_since_last_visit: bool | None = None
    seizure_last_3_months: bool | None = None
    seizure_last_6_months: bool | None = None
    seizure_duration_class: int | None = None  # ordinal index into codes.DURATION_CLASSES
    # A seizure since the last visit was reported without its number (a note saying "seizures", a visit's
    # seizure diagnosis) rather than counted or dated seizure by seizure: the lifetime count is a lower bound.
    seizures_uncounted: bool = False
    exam_class: str | None = None  # one of codes.EXAM_CLASSES
    physician_assessment: str | None = None  # one of codes.ASSESSMENT_CLASSES
    behaviour_adverse_effect: bool | None = None
    family_requests_treatment: bool | None = None  # the family asks for daily treatment (rails only, not a feature)
    # The chart says the child has had one seizure so far ("History of single seizure", "after a first
    # seizure"), and a count within a window is a lower bound on the seizures so far ("3 in 11 weeks").
    single_seizure_so_far: bool | None = None
    seizures_so_far_at_least: int | None = None
    seizure_free_months_stated: float | None = None  # "seizure-free for over 2 years": the last seizure is at least that old
    labs: dict[str, Measurement] = field(default_factory=dict)  # key -> canonical-unit value
    egfr: float | None = None  # bedside Schwartz, or a reported eGFR
    eeg_result: str | None = None  # one of codes.EEG_RESULTS
    anti_seizure_medicines: frozenset[str] = frozenset()  # keys of codes.ASM_KEYS in effect after the visit
    # Levetiracetam: the order in effect entering the visit (started before the visit day) is part of
    # the state; the order in effect at the end of the visit day is the decision taken (the action).
    lev_before: LevOrder | None = None
    lev: LevOrder | None = None
    days_since_previous_visit: int | None = None
    # Added by the mapping (issue 2): anti-seizure medicines taken on arrival (the state's multi-hot,
    # which must not contain the decision), and the source of a levetiracetam order that is in effect
    # but whose dose could not be read (then lev_before / lev is None but the dose is unknown, not 0).
    anti_seizure_medicines_before: frozenset[str] = frozenset()
    lev_before_unreadable: str | None = None
    lev_unreadable: str | None = None
    carried_forward: tuple[str, ...] = ()  # names of values taken from earlier dates (for explanations)
    provenance: dict[str, Provenance] = field(default_factory=dict)  # report item -> where it came from

    @property
    def weight_kg(self) -> float | None:
        return self.weight.value if self.weight else None

    @property
    def height_cm(self) -> float | None:
        return self.height.value if self.height else None

    @property
    def lev_mg_per_day(self) -> float:
        """Levetiracetam total daily dose decided at this visit (0 when no order is in effect after it)."""
        return self.lev.mg_per_day if self.lev else 0.0

    @property
    def lev_mg_per_day_before(self) -> float:
        """Levetiracetam total daily dose the child was taking on arrival (0 when none)."""
        return self.lev_before.mg_per_day if self.lev_before else 0.0


@dataclass
class PatientTimeline:
    """Everything known about one patient, in visit order.

    ``patient_id`` is the FHIR logical id as read (never logged by the service); ``onset`` the
    onset or first recorded date of the epilepsy condition; ``conditions`` the condition keys of
    :data:`fhir_mapping.codes.CONDITIONS` found.
    """

    patient_id: str
    birth_date: date | None = None
    sex: str | None = None  # FHIR administrative gender
    onset: date | None = None
    conditions: frozenset[str] = frozenset()
    visits: list[Visit] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Measured levetiracetam levels and the order history, for the individual PK estimate
    # (fhir_mapping.pk_estimate); empty when the timeline was not read from FHIR.
    lev_levels: list[DrugLevel] = field(default_factory=list)
    lev_history: list[DoseSpan] = field(default_factory=list)
    # Levetiracetam that may be taken with no readable order ("Type/id": an active MedicationStatement,
    # an order of unknown status, one naming it in text only); a visit's ``lev_unreadable`` may name one.
    lev_taken_without_order: set[str] = field(default_factory=set)

    def age_years_on(self, day: date) -> float | None:
        """Age in years on a day, or None without a birthDate."""
        if self.birth_date is None:
            return None
        return (day - self.birth_date).days / 365.25

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, sets as sorted lists).

        ``lev_levels``, ``lev_history`` and ``lev_taken_without_order`` are left out: the visits already
        show the levels and the orders in effect (or their unreadable source), and the mapped document
        stays the one reviewed in the golden files.
        """
        document = asdict(self)
        for shown_by_the_visits in ("lev_levels", "lev_history", "lev_taken_without_order"):
            document.pop(shown_by_the_visits, None)
        return jsonable(document)


def jsonable(value: Any) -> Any:
    """Dataclass fields as JSON values: dates as ISO strings, sets sorted, enums as their values, keys as strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, (int, float, str)):
        return value.value  # enums
    return value
