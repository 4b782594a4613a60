"""Levetiracetam dose classes, label bounds and the safety mask shared by training and serving.

Every number here is clinical and sourced (../shared/domain.md §1–§2):
- the 12 published daily-dose classes (DQN paper, §1);
- the FDA Keppra label / EU SmPC maximum daily doses by age, in mg/kg/day (§2);
- renal adjustment from bedside Schwartz eGFR (Schwartz, JASN 2009) with the Kinderformularium
  fractions for children and the adult label table from 16 years (§2);
- titration steps (±10 mg/kg BID every 2 weeks, EU SmPC, §2).

The mask :func:`allowed_dose_mask` is the single place that decides which dose classes are
permitted for a child; the DQN's bootstrap target, its predictions and the service's cards all use it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Final

# --- The published action space (domain.md §1) ----------------------------------------------
DOSE_CLASSES_G: Final[tuple[float, ...]] = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)
DOSE_CLASSES_MG: Final[tuple[float, ...]] = tuple(g * 1000.0 for g in DOSE_CLASSES_G)
N_DOSE_CLASSES: Final = len(DOSE_CLASSES_G)
# "Rare" classes in the study (domain.md §1: the DQN almost never recommends ≤0.375 g or ≥1.5 g).
RARE_DOSE_CLASSES: Final[tuple[int, ...]] = (1, 2, 3, 8, 9, 10, 11)

# --- Label bounds (domain.md §2, FDA Keppra label; EU SmPC) -----------------------------------
DAYS_PER_YEAR: Final = 365.25
MIN_LABELLED_AGE_YEARS: Final = 1.0 / 12.0  # label starts at 1 month of age
MAX_MG_PER_KG_DAY_1_TO_6_MONTHS: Final = 42.0  # 21 mg/kg BID
MAX_MG_PER_KG_DAY_6_MONTHS_TO_4_YEARS: Final = 50.0  # 25 mg/kg BID
MAX_MG_PER_KG_DAY_4_TO_16_YEARS: Final = 60.0  # 30 mg/kg BID
ABSOLUTE_MAX_MG_PER_DAY: Final = 3000.0  # ≤3000 mg/day at every age; 1500 mg BID from 16 y
ADULT_AGE_YEARS: Final = 16.0
START_MG_PER_KG_DAY: Final = 20.0  # 10 mg/kg BID from 6 months (7 mg/kg BID below)
TITRATION_STEP_MG_PER_KG_DAY: Final = 20.0  # ±10 mg/kg BID ...
TITRATION_INTERVAL_WEEKS: Final = 2.0  # ... every 2 weeks (EU SmPC, <50 kg)
ADULT_START_MG_PER_DAY: Final = 1000.0  # 500 mg BID
ADULT_STEP_MG_PER_DAY: Final = 1000.0  # +500 mg BID every 2 weeks

# --- Renal function (domain.md §2) ----------------------------------------------------------
SCHWARTZ_K: Final = 0.413  # bedside Schwartz: eGFR = 0.413 × height(cm) / SCr(mg/dL), JASN 2009
# Kinderformularium: GFR 50–80 → 66% of dose, 30–50 → 50%, 10–30 → 33%, same interval.
PEDIATRIC_RENAL_FRACTIONS: Final[tuple[tuple[float, float], ...]] = ((80.0, 1.0), (50.0, 0.66), (30.0, 0.50), (0.0, 0.33))
# Adult label (≥16 y): CLcr >80: ≤1500 mg q12h; 50–80: ≤1000; 30–50: ≤750; <30: ≤500 (mg per dose, BID).
ADULT_RENAL_MAX_MG_PER_DAY: Final[tuple[tuple[float, float], ...]] = ((80.0, 3000.0), (50.0, 2000.0), (30.0, 1500.0), (0.0, 1000.0))
ESRD_EGFR: Final = 10.0  # below this, dialysis-dependent dosing: specialist decision

# --- Data age (project safety policy, not a label figure) -----------------------------------
# A weight-based dose needs a current weight: children of 4–10 years gain about 2–3 kg a year (WHO/CDC
# growth references), so after six months a carried-forward weight misstates mg/kg by 5–10%. Older
# weights are treated as missing; the card asks for a new one instead of dosing on it.
MAX_WEIGHT_AGE_DAYS: Final = 183

# --- Therapeutic drug monitoring (domain.md §3) ---------------------------------------------
TROUGH_REFERENCE_MG_L: Final = (12.0, 46.0)  # older reference range; newer guidance 10–40 or 20–40


def dose_class_of(mg_per_day: float) -> int:
    """Map a daily dose in mg to the index of the nearest published dose class.

    Rounding rule: the nearest class on the mg scale; an exact midpoint goes to the lower class
    (the conservative choice); anything above 3000 mg maps to 3 g. Negative doses are invalid.

    >>> [dose_class_of(x) for x in (0, 60, 62.5, 700, 875, 2600)]
    [0, 0, 0, 5, 5, 11]
    """
    if not math.isfinite(mg_per_day) or mg_per_day < 0:
        raise ValueError(f"daily dose must be a finite non-negative number, got {mg_per_day!r}")
    upper = bisect.bisect_left(DOSE_CLASSES_MG, mg_per_day)
    if upper == 0:
        return 0
    if upper >= N_DOSE_CLASSES:
        return N_DOSE_CLASSES - 1
    lower = upper - 1
    below, above = DOSE_CLASSES_MG[lower], DOSE_CLASSES_MG[upper]
    return upper if mg_per_day - below > above - mg_per_day else lower


def dose_mg_of(dose_class: int) -> float:
    """The daily dose in mg of a dose class index."""
    return DOSE_CLASSES_MG[dose_class]


def schwartz_egfr(height_cm: float, creatinine_mg_dl: float) -> float:
    """Bedside Schwartz eGFR in mL/min/1.73 m² (Schwartz et al., JASN 2009).

    >>> round(schwartz_egfr(130.0, 0.5), 1)
    107.4
    """
    if height_cm <= 0 or creatinine_mg_dl <= 0:
        raise ValueError("height and creatinine must be positive")
    return SCHWARTZ_K * height_cm / creatinine_mg_dl


def renal_fraction(egfr: float) -> float:
    """Fraction of the usual maximum dose allowed at this eGFR (Kinderformularium, domain.md §2)."""
    for threshold, fraction in PEDIATRIC_RENAL_FRACTIONS:
        if egfr >= threshold:
            return fraction
    return PEDIATRIC_RENAL_FRACTIONS[-1][1]


@dataclass(frozen=True)
class DoseBounds:
    """The label range of daily doses for one child at one visit, with the reasons for it.

    ``max_mg_per_day`` is None when the bounds cannot be computed; then ``missing`` says what is
    needed. ``notes`` are the human-readable reasons (which rule set the maximum), shown on cards.
    """

    max_mg_per_day: float | None
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    renal_fraction: float = 1.0
    specialist_only: bool = False
    allowed: tuple[bool, ...] = field(default=())

    @property
    def known(self) -> bool:
        return self.max_mg_per_day is not None


def label_bounds(weight_kg: float | None, age_years: float | None, egfr: float | None) -> DoseBounds:
    """Maximum labelled daily dose for a child's weight, age and renal function (domain.md §2).

    Weight is required below 16 years (the limit is in mg/kg/day) and age always; with eGFR unknown
    the bounds assume normal renal function and say so in ``assumptions``.
    """
    missing = []
    if age_years is None or not math.isfinite(age_years) or age_years < 0:
        missing.append("age (Patient.birthDate)")
    needs_weight = age_years is None or age_years < ADULT_AGE_YEARS
    if needs_weight and (weight_kg is None or not math.isfinite(weight_kg) or weight_kg <= 0):
        missing.append("body weight (LOINC 29463-7)")
    if missing or age_years is None:
        return DoseBounds(None, missing=tuple(missing), allowed=(True,) + (False,) * (N_DOSE_CLASSES - 1))
    notes: list[str] = []
    assumptions: list[str] = []
    if age_years < MIN_LABELLED_AGE_YEARS:
        notes.append("levetiracetam is not labelled below 1 month of age")
        return _bounds(0.0, notes, assumptions, 1.0, specialist_only=True)
    if age_years >= ADULT_AGE_YEARS:
        maximum = ABSOLUTE_MAX_MG_PER_DAY
        notes.append("from 16 years: at most 1500 mg twice daily (3000 mg/day)")
    elif weight_kg is not None:
        if age_years < 0.5:
            per_kg, band = MAX_MG_PER_KG_DAY_1_TO_6_MONTHS, "1 to <6 months"
        elif age_years < 4.0:
            per_kg, band = MAX_MG_PER_KG_DAY_6_MONTHS_TO_4_YEARS, "6 months to <4 years"
        else:
            per_kg, band = MAX_MG_PER_KG_DAY_4_TO_16_YEARS, "4 to <16 years"
        maximum = per_kg * weight_kg
        notes.append(f"age {band}: at most {per_kg:g} mg/kg/day = {maximum:.0f} mg/day at {weight_kg:.1f} kg")
        if maximum > ABSOLUTE_MAX_MG_PER_DAY:
            maximum = ABSOLUTE_MAX_MG_PER_DAY
            notes.append("capped at 3000 mg/day")
    else:  # unreachable: weight is required below 16 years (checked above)
        return DoseBounds(None, missing=("body weight (LOINC 29463-7)",), allowed=(True,) + (False,) * (N_DOSE_CLASSES - 1))
    fraction = 1.0
    specialist = False
    if egfr is None or not math.isfinite(egfr):
        assumptions.append("renal function unknown (no creatinine and height): normal renal function assumed")
    else:
        if age_years >= ADULT_AGE_YEARS:
            adult_max = next(cap for threshold, cap in ADULT_RENAL_MAX_MG_PER_DAY if egfr >= threshold or threshold == 0.0)
            if adult_max < maximum:
                maximum = adult_max
                notes.append(f"eGFR {egfr:.0f} mL/min/1.73m²: adult renal maximum {adult_max:.0f} mg/day")
        else:
            fraction = renal_fraction(egfr)
            if fraction < 1.0:
                maximum *= fraction
                notes.append(f"eGFR {egfr:.0f} mL/min/1.73m²: renal adjustment to {fraction:.0%} of the maximum")
        if egfr < ESRD_EGFR:
            specialist = True
            notes.append("eGFR below 10: dialysis-dependent dosing needs a specialist")
    return _bounds(maximum, notes, assumptions, fraction, specialist_only=specialist)


def _bounds(maximum: float, notes: list[str], assumptions: list[str], fraction: float, *, specialist_only: bool) -> DoseBounds:
    allowed = tuple(mg <= maximum + 1e-9 for mg in DOSE_CLASSES_MG)
    return DoseBounds(maximum, tuple(notes), (), tuple(assumptions), fraction, specialist_only, allowed)


def allowed_dose_mask(weight_kg: float | None, age_years: float | None, egfr: float | None) -> tuple[bool, ...]:
    """Which of the 12 dose classes are within label bounds; 0 g is always allowed.

    With bounds unknown only 0 g is allowed: the model must not choose a dose it cannot check.
    """
    return label_bounds(weight_kg, age_years, egfr).allowed


def mg_per_kg_day(mg_per_day: float | None, weight_kg: float | None) -> float | None:
    """Daily dose per kg, or None when either is unknown."""
    if mg_per_day is None or weight_kg is None or weight_kg <= 0:
        return None
    return mg_per_day / weight_kg


def max_titration_change_mg_per_day(weight_kg: float | None, age_years: float | None, weeks: float) -> float | None:
    """Largest labelled change of the daily dose over ``weeks`` (±10 mg/kg BID per 2 weeks; adults ±500 mg BID)."""
    steps = max(1.0, math.floor(weeks / TITRATION_INTERVAL_WEEKS))
    if age_years is not None and age_years >= ADULT_AGE_YEARS:
        return ADULT_STEP_MG_PER_DAY * steps
    if weight_kg is None:
        return None
    return TITRATION_STEP_MG_PER_KG_DAY * weight_kg * steps
