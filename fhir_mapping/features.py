"""The DQN state: a feature specification as data, state rows with their missing mask, and imputation.

The published state (domain.md §1): seizure since the last visit (binary), seizure count class,
frequency and duration class (ordinal), physical-exam class, physician assessment, labs (blood
routine, liver and kidney function, levetiracetam level), EEG result and the current anti-seizure
medicines (multi-hot); plus the covariates the paper's discussion asks for (weight, age, sex,
initial vs maintenance phase) and what the safety rail needs (height, eGFR, dose in mg/kg/day).

The state never contains the action: the dose is the one taken on arrival (``Visit.lev_before``),
and the multi-hot is the medicines taken on arrival (``Visit.anti_seizure_medicines_before``).

Missing values are NaN with ``observed`` False. :class:`Imputation` (fitted on training data only)
replaces them: ``mean`` features by the training mean (then standardised, with a missing-indicator
column appended), ``zero`` features (one-hot and multi-hot groups, where all zeros already says
"none of these") by 0.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from fhir_mapping import codes
from fhir_mapping.dosing import DAYS_PER_YEAR
from fhir_mapping.timeline import PatientTimeline, Visit

# Ordinal seizure-count classes since the last visit: 0, 1, 2–3, ≥4 (project assumption: the paper
# encodes counts as ordinal without publishing the cut-points).
SEIZURE_COUNT_CLASS_EDGES: Final = (1, 2, 4)
DAYS_PER_MONTH: Final = DAYS_PER_YEAR / 12.0
# Relative tolerance for "same dose" when deriving the phase (rounding of mL and tablet amounts).
SAME_DOSE_TOLERANCE: Final = 0.01
PHASES: Final = ("initiation", "titration", "maintenance", "taper")


@dataclass(frozen=True)
class Feature:
    """One column of the state: its name, group, kind and how a missing value is imputed."""

    name: str
    group: str
    kind: str  # "binary", "ordinal", "continuous", "one-hot", "multi-hot"
    impute: str  # "mean" (with a missing indicator) or "zero"
    unit: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered features of the state, with a version hash over the specification itself."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        grouped: dict[str, list[str]] = {}
        for feature in self.features:
            grouped.setdefault(feature.group, []).append(feature.name)
        return {group: tuple(names) for group, names in grouped.items()}

    @property
    def dimension(self) -> int:
        return len(self.features)

    @property
    def mean_imputed(self) -> tuple[int, ...]:
        """Column indices imputed by the mean (each gets a missing-indicator column)."""
        return tuple(i for i, f in enumerate(self.features) if f.impute == "mean")

    @property
    def version(self) -> str:
        """A short hash of the specification and its encoding constants: models refuse other versions."""
        payload = {
            "features": [[f.name, f.group, f.kind, f.impute, f.unit] for f in self.features],
            "seizure_count_edges": SEIZURE_COUNT_CLASS_EDGES,
            "same_dose_tolerance": SAME_DOSE_TOLERANCE,
            "asm_keys": codes.ASM_KEYS,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "features": [f.__dict__ for f in self.features]}


def _spec() -> FeatureSpec:
    features: list[Feature] = [
        Feature("seizure_since_last_visit", "seizures", "binary", "mean"),
        Feature("seizure_count_class", "seizures", "ordinal", "mean"),
        Feature("seizures_per_month", "seizures", "continuous", "mean", "/mo"),
        Feature("seizure_duration_class", "seizures", "ordinal", "mean"),
        Feature("seizure_last_3_months", "seizures", "binary", "mean"),
        Feature("seizure_last_6_months", "seizures", "binary", "mean"),
    ]
    features += [Feature(f"exam_{c}", "exam", "one-hot", "zero") for c in codes.EXAM_CLASSES]
    features += [Feature(f"assessment_{c}", "assessment", "one-hot", "zero") for c in codes.ASSESSMENT_CLASSES]
    features.append(Feature("behaviour_adverse_effect", "assessment", "binary", "mean"))
    lab_units = {"creatinine": "mg/dL", "alt": "U/L", "ast": "U/L", "wbc": "10*3/uL", "hemoglobin": "g/dL", "platelets": "10*3/uL", "lev_level": "mg/L"}
    features += [Feature(f"lab_{key}", "labs", "continuous", "mean", unit) for key, unit in lab_units.items()]
    features.append(Feature("egfr", "labs", "continuous", "mean", "mL/min/{1.73_m2}"))
    features += [Feature(f"eeg_{c.replace('-', '_')}", "eeg", "one-hot", "zero") for c in codes.EEG_RESULTS]
    features += [Feature(f"asm_{key}", "medicines", "multi-hot", "zero") for key in codes.ASM_KEYS]
    features += [
        Feature("lev_mg_per_day", "dose", "continuous", "mean", "mg/d"),
        Feature("lev_mg_per_kg_day", "dose", "continuous", "mean", "mg/kg/d"),
    ]
    features += [Feature(f"phase_{p}", "phase", "one-hot", "zero") for p in PHASES]
    features += [
        Feature("weight_kg", "demographics", "continuous", "mean", "kg"),
        Feature("height_cm", "demographics", "continuous", "mean", "cm"),
        Feature("age_years", "demographics", "continuous", "mean", "a"),
        Feature("sex_female", "demographics", "binary", "mean"),
        Feature("years_since_onset", "course", "continuous", "mean", "a"),
        Feature("days_since_previous_visit", "course", "continuous", "mean", "d"),
        # The history a clinician weighs (domain.md §2 and §4: treat after recurrence, taper after
        # about two seizure-free years): seizures reported so far, time since the last one, and
        # whether levetiracetam was ever given. The published state has only the latest visit.
        Feature("seizures_reported_so_far", "course", "continuous", "mean"),
        Feature("years_since_last_seizure", "course", "continuous", "mean", "a"),
        Feature("ever_on_levetiracetam", "course", "binary", "mean"),
    ]
    return FeatureSpec(tuple(features))


FEATURE_SPEC: Final = _spec()
_INDEX: Final = {name: i for i, name in enumerate(FEATURE_SPEC.names)}
# The spec is fixed at import: its columns computed once, not at every transform of a served row.
_DIMENSION: Final = FEATURE_SPEC.dimension
_MEAN_IMPUTED: Final = np.array(FEATURE_SPEC.mean_imputed, dtype=np.intp)


def seizure_count_class(count: int) -> int:
    """Ordinal class of a seizure count: 0 → 0, 1 → 1, 2–3 → 2, ≥4 → 3."""
    return sum(count >= edge for edge in SEIZURE_COUNT_CLASS_EDGES)


def lev_dose_before(visit: Visit) -> float | None:
    """Levetiracetam mg/day taken on arrival; None when an order is in effect but unreadable."""
    if visit.lev_before_unreadable is not None:
        return None
    return visit.lev_before.mg_per_day if visit.lev_before is not None else 0.0


def phase_of(timeline: PatientTimeline, visit_index: int) -> str | None:
    """Treatment phase on arrival at a visit, from the doses taken on arrival at it and the previous visit.

    initiation: on levetiracetam now, not at the previous visit;
    titration: the dose rose since the previous visit; maintenance: unchanged (within 1%);
    taper: it fell, including to zero. None: off levetiracetam at both visits, or not knowable (a
    dose unreadable, or already on levetiracetam at the first visit in the data, whose history is
    not in the data).
    """
    current = lev_dose_before(timeline.visits[visit_index])
    if current is None:
        return None
    if visit_index == 0:
        return None
    previous = lev_dose_before(timeline.visits[visit_index - 1])
    if previous is None:
        return None
    if current <= 0:
        return "taper" if previous > 0 else None
    if previous <= 0:
        return "initiation"
    if abs(current - previous) <= SAME_DOSE_TOLERANCE * previous:
        return "maintenance"
    return "titration" if current > previous else "taper"


def state_row(timeline: PatientTimeline, visit_index: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The state at one visit: values (NaN when missing) and the observed mask."""
    values = np.full(_DIMENSION, np.nan)
    visit = timeline.visits[visit_index]

    def put(name: str, value: float | bool | None) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            values[_INDEX[name]] = float(value)

    def one_hot(prefix: str, options: Sequence[str], chosen: str | None) -> None:
        if chosen is not None:
            for option in options:
                put(f"{prefix}_{option.replace('-', '_')}", option == chosen)

    count = visit.seizure_count_since_last_visit
    put("seizure_since_last_visit", visit.seizure_since_last_visit)
    if count is not None:
        put("seizure_count_class", seizure_count_class(count))
        if visit.days_since_previous_visit:
            put("seizures_per_month", count * DAYS_PER_MONTH / visit.days_since_previous_visit)
    put("seizure_duration_class", visit.seizure_duration_class)
    put("seizure_last_3_months", visit.seizure_last_3_months)
    put("seizure_last_6_months", visit.seizure_last_6_months)
    one_hot("exam", codes.EXAM_CLASSES, visit.exam_class)
    one_hot("assessment", codes.ASSESSMENT_CLASSES, visit.physician_assessment)
    put("behaviour_adverse_effect", visit.behaviour_adverse_effect)
    for key, measurement in visit.labs.items():
        if f"lab_{key}" in _INDEX:
            put(f"lab_{key}", measurement.value)
    put("egfr", visit.egfr)
    one_hot("eeg", codes.EEG_RESULTS, visit.eeg_result)
    # Medicines on arrival are known (absent orders mean not taken), except levetiracetam when unreadable.
    for key in codes.ASM_KEYS:
        put(f"asm_{key}", key in visit.anti_seizure_medicines_before)
    dose = lev_dose_before(visit)
    put("lev_mg_per_day", dose)
    if dose is not None and visit.weight_kg:
        put("lev_mg_per_kg_day", dose / visit.weight_kg)
    phase = phase_of(timeline, visit_index)
    previous_dose = lev_dose_before(timeline.visits[visit_index - 1]) if visit_index > 0 else 0.0
    if phase is not None or (dose == 0.0 and previous_dose == 0.0):
        # All zeros: off levetiracetam (known); NaN: the phase cannot be known.
        for option in PHASES:
            put(f"phase_{option}", option == phase)
    put("weight_kg", visit.weight_kg)
    put("height_cm", visit.height_cm)
    put("age_years", visit.age_years)
    if timeline.sex in ("male", "female"):
        put("sex_female", timeline.sex == "female")
    if timeline.onset is not None:
        put("years_since_onset", (visit.date - timeline.onset).days / DAYS_PER_YEAR)
    put("days_since_previous_visit", visit.days_since_previous_visit)
    put_history(values, timeline.visits[: visit_index + 1])
    return values, ~np.isnan(values)


@dataclass(frozen=True, slots=True)
class SeizureCourse:
    """The seizures reported over a run of visits, read one way for the state and the rails."""

    total: int  # seizures reported so far: the visits' counts (a seizure without a count counts one)
    last_seizure: date  # the last visit that reported one, or the first visit when none did
    exact: bool = True  # no visit reported seizures without their number (else ``total`` is a lower bound)


def seizure_course(visits: Sequence[Visit]) -> SeizureCourse | None:
    """Seizures reported over ``visits`` (up to and including the current one); None when no visit
    reported on seizures at all.

    Each visit's interval is counted once: its count when known, else one for a reported seizure.
    Dated seizures (Conditions, emergency encounters, notes) are already placed in the interval they
    fall in by :mod:`fhir_mapping.build`, so nothing here counts them again.
    """
    reported = [v for v in visits if v.seizure_since_last_visit is not None or v.seizure_count_since_last_visit is not None
                or v.single_seizure_so_far or v.seizures_so_far_at_least or v.seizure_free_months_stated]
    if not reported:
        return None
    total = 0
    exact = True
    last_seizure = visits[0].date
    treated = False
    last_interval_start = date.min  # the last seizure reported happened after this day
    previous_day = date.min
    reporting = {id(v) for v in reported}
    for visit in visits:
        # Levetiracetam taken before or during this interval (an unreadable order counts as taken).
        dose = lev_dose_before(visit)
        treated = treated or dose is None or dose > 0
        if id(visit) not in reporting:
            previous_day = visit.date
            continue
        count = visit.seizure_count_since_last_visit
        had = bool(count) if count is not None else bool(visit.seizure_since_last_visit)
        total += count if count is not None else int(had)
        exact = exact and not (count is None and had and visit.seizures_uncounted)
        if had:
            last_seizure = visit.date
            last_interval_start = previous_day
        stated = visit.seizure_free_months_stated
        if stated and not had:
            # "Seizure-free for over 2 years": the last seizure is at least that old, unless a report places
            # one later (a seizure in an interval that began after that day).
            bound = visit.date - timedelta(days=round(stated * DAYS_PER_MONTH))
            if last_interval_start < bound:
                last_seizure = min(last_seizure, bound)
        previous_day = visit.date
        if visit.single_seizure_so_far and total <= 1:
            # The chart says one seizure so far: an uncounted report is that seizure.
            total, exact = 1, True
        at_least = visit.seizures_so_far_at_least or 0
        if had and treated:
            at_least = max(at_least, 2)  # a seizure after treatment began: treatment was for an earlier one
        if at_least > total:
            total, exact = at_least, False
    return SeizureCourse(total, last_seizure, exact)


def put_history(values: npt.NDArray[np.float64], visits: Sequence[Visit]) -> None:
    """The course features of the last of ``visits`` (the visits up to and including the current one).

    Seizures reported so far sums the counts reported (a visit that reports a seizure without a
    count counts one); time since the last seizure runs from the last visit that reported one, or
    from the first visit when none did; both are missing when no visit reported on seizures at all.
    """
    current = visits[-1]
    course = seizure_course(visits)
    if course is not None:
        values[_INDEX["seizures_reported_so_far"]] = float(course.total)
        values[_INDEX["years_since_last_seizure"]] = (current.date - course.last_seizure).days / DAYS_PER_YEAR
    ever = any(lev_dose_before(v) for v in visits)
    unknown = any(lev_dose_before(v) is None for v in visits)
    if ever or not unknown:
        values[_INDEX["ever_on_levetiracetam"]] = float(ever)


def state_matrix(timeline: PatientTimeline) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """States of every visit: values[n_visits, d] (float64, NaN missing) and observed[n_visits, d]."""
    n = len(timeline.visits)
    values = np.full((n, FEATURE_SPEC.dimension), np.nan)
    for i in range(n):
        values[i], _ = state_row(timeline, i)
    return values, ~np.isnan(values)


class Imputation:
    """Means and standard deviations fitted on training states; turns (values, observed) into model input.

    Output columns: every feature (mean features imputed and standardised, zero features imputed
    with 0 and left as 0/1), then one missing indicator (1 = missing) per mean-imputed feature.
    """

    def __init__(self, means: Sequence[float], stds: Sequence[float], version: str = FEATURE_SPEC.version) -> None:
        if version != FEATURE_SPEC.version:
            raise ValueError(f"imputation fitted for feature spec {version}, this code has {FEATURE_SPEC.version}")
        if len(means) != FEATURE_SPEC.dimension or len(stds) != FEATURE_SPEC.dimension:
            raise ValueError(f"expected {FEATURE_SPEC.dimension} means and stds")
        self.means = np.asarray(means, dtype=np.float64)
        self.stds = np.asarray(stds, dtype=np.float64)
        self.version = version

    @classmethod
    def fit(cls, values: npt.ArrayLike, observed: npt.ArrayLike) -> Imputation:
        """Fit on training states only (never on validation or serving data)."""
        x = np.asarray(values, dtype=np.float64).reshape(-1, FEATURE_SPEC.dimension)
        mask = np.asarray(observed, dtype=bool).reshape(x.shape) & ~np.isnan(x)
        counts = mask.sum(axis=0)
        sums = np.where(mask, x, 0.0).sum(axis=0)
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        squares = np.where(mask, (x - means) ** 2, 0.0).sum(axis=0)
        stds = np.sqrt(np.divide(squares, counts, out=np.zeros_like(squares), where=counts > 0))
        stds = np.where(stds > 1e-8, stds, 1.0)
        zero = np.array([f.impute == "zero" for f in FEATURE_SPEC.features])
        means = np.where(zero, 0.0, means)
        stds = np.where(zero, 1.0, stds)
        return cls(means.tolist(), stds.tolist())

    @property
    def output_names(self) -> tuple[str, ...]:
        return FEATURE_SPEC.names + tuple(f"{FEATURE_SPEC.names[i]}_missing" for i in FEATURE_SPEC.mean_imputed)

    @property
    def output_dimension(self) -> int:
        return FEATURE_SPEC.dimension + len(FEATURE_SPEC.mean_imputed)

    def transform(self, values: npt.ArrayLike, observed: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Model input (float32): imputed, standardised, with missing indicators appended. 1-D or 2-D."""
        x = np.asarray(values, dtype=np.float64)
        single = x.ndim == 1
        x = x.reshape(-1, _DIMENSION)
        mask = np.asarray(observed, dtype=bool).reshape(x.shape) & ~np.isnan(x)
        filled = np.where(mask, x, self.means)
        scaled = (filled - self.means) / self.stds
        indicators = (~mask[:, _MEAN_IMPUTED]).astype(np.float64)
        out = np.concatenate([scaled, indicators], axis=1).astype(np.float32)
        return out[0] if single else out

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "names": list(FEATURE_SPEC.names), "means": self.means.tolist(), "stds": self.stds.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Imputation:
        """Load saved statistics; refuses statistics of another feature-spec version."""
        if not isinstance(data, dict):
            raise ValueError("imputation JSON must be an object")
        if list(data.get("names", [])) != list(FEATURE_SPEC.names):
            raise ValueError("imputation JSON was fitted for different feature names")
        return cls(data["means"], data["stds"], str(data.get("version", "")))
