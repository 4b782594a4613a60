"""Label bounds, renal adjustment and the dose-class rounding rule (domain.md §1–§2)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_mapping import dosing
from fhir_mapping.dosing import DOSE_CLASSES_MG, allowed_dose_mask, dose_class_of, label_bounds, schwartz_egfr


def test_published_dose_classes() -> None:
    """The action space is the 12 published classes, in grams."""
    assert dosing.DOSE_CLASSES_G == (0, 0.125, 0.25, 0.375, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 3)


@pytest.mark.parametrize(
    ("mg", "expected_g"),
    [(0, 0.0), (62.4, 0.0), (62.5, 0.0), (62.6, 0.125), (740, 0.75), (875, 0.75), (876, 1.0), (2500, 2.0), (2501, 3.0), (9000, 3.0)],
)
def test_rounding_rule(mg: float, expected_g: float) -> None:
    """Nearest class on the mg scale; exact midpoints go to the lower class; above 3 g maps to 3 g."""
    assert dosing.DOSE_CLASSES_G[dose_class_of(mg)] == expected_g


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_rounding_rejects_invalid(bad: float) -> None:
    """Negative or non-finite doses are refused, not rounded."""
    with pytest.raises(ValueError):
        dose_class_of(bad)


@given(st.integers(min_value=0, max_value=11))
def test_class_round_trip(index: int) -> None:
    """Every class's own dose maps back to that class."""
    assert dose_class_of(dosing.dose_mg_of(index)) == index


@pytest.mark.parametrize(
    ("weight", "age", "expected_max"),
    [
        (25.0, 8.0, 1500.0),  # 60 mg/kg/day (30 mg/kg BID) from 4 to <16 y
        (60.0, 15.0, 3000.0),  # 60 mg/kg/day = 3600, capped at 3000 mg/day
        (14.0, 3.0, 700.0),  # 50 mg/kg/day (25 mg/kg BID) from 6 mo to <4 y
        (6.0, 0.3, 252.0),  # 42 mg/kg/day (21 mg/kg BID) from 1 to <6 mo
        (45.0, 17.0, 3000.0),  # adult: 1500 mg BID
    ],
)
def test_label_maximum_by_age_band(weight: float, age: float, expected_max: float) -> None:
    """The maximum daily dose follows the label's age bands and the 3000 mg/day cap."""
    bounds = label_bounds(weight, age, egfr=110.0)
    assert bounds.max_mg_per_day == pytest.approx(expected_max)


def test_not_labelled_below_one_month() -> None:
    """Below 1 month only 0 g is allowed and a specialist is named."""
    bounds = label_bounds(3.5, 0.05, egfr=None)
    assert bounds.max_mg_per_day == 0.0 and bounds.specialist_only
    assert bounds.allowed == (True,) + (False,) * 11


@pytest.mark.parametrize(("egfr", "fraction"), [(120, 1.0), (80, 1.0), (79.9, 0.66), (50, 0.66), (49, 0.5), (30, 0.5), (29, 0.33), (12, 0.33)])
def test_pediatric_renal_fractions(egfr: float, fraction: float) -> None:
    """Kinderformularium: GFR 50–80 → 66%, 30–50 → 50%, 10–30 → 33% of the maximum."""
    bounds = label_bounds(30.0, 9.0, egfr)
    assert bounds.max_mg_per_day == pytest.approx(1800.0 * fraction)


@pytest.mark.parametrize(("egfr", "cap"), [(90, 3000), (60, 2000), (40, 1500), (20, 1000)])
def test_adult_renal_table(egfr: float, cap: float) -> None:
    """From 16 years the adult label's renal table caps the daily dose."""
    assert label_bounds(70.0, 17.0, egfr).max_mg_per_day == cap


def test_esrd_needs_specialist() -> None:
    """Below eGFR 10 the bounds flag dialysis-dependent dosing for a specialist."""
    assert label_bounds(30.0, 9.0, 8.0).specialist_only


def test_missing_weight_and_age_are_named() -> None:
    """Without weight or birth date no dose can be checked: only 0 g is allowed, and what is missing is named."""
    bounds = label_bounds(None, None, None)
    assert not bounds.known
    assert any("weight" in m for m in bounds.missing) and any("birthDate" in m for m in bounds.missing)
    assert bounds.allowed == (True,) + (False,) * 11


def test_unknown_renal_function_is_an_explicit_assumption() -> None:
    """An unknown eGFR is stated as an assumption, never silently."""
    assert any("renal function unknown" in a for a in label_bounds(25.0, 8.0, None).assumptions)


@given(
    weight=st.floats(min_value=2.0, max_value=150.0),
    age=st.floats(min_value=0.0, max_value=25.0),
    egfr=st.one_of(st.none(), st.floats(min_value=1.0, max_value=200.0)),
)
def test_mask_never_allows_more_than_the_maximum(weight: float, age: float, egfr: float | None) -> None:
    """Every allowed class is at or below the computed maximum, and 0 g is always allowed."""
    bounds = label_bounds(weight, age, egfr)
    mask = allowed_dose_mask(weight, age, egfr)
    assert mask[0]
    assert bounds.max_mg_per_day is not None
    for allowed, mg in zip(mask, DOSE_CLASSES_MG, strict=True):
        assert (mg <= bounds.max_mg_per_day + 1e-9) == allowed


def test_schwartz_formula() -> None:
    """Bedside Schwartz: 0.413 × height / creatinine (Schwartz, JASN 2009)."""
    assert schwartz_egfr(120.0, 0.4) == pytest.approx(123.9)
    with pytest.raises(ValueError):
        schwartz_egfr(120.0, 0.0)


def test_titration_limit() -> None:
    """±10 mg/kg BID every 2 weeks: 20 mg/kg/day per 2-week step; adults 1000 mg/day per step."""
    assert dosing.max_titration_change_mg_per_day(25.0, 8.0, weeks=4) == pytest.approx(1000.0)
    assert dosing.max_titration_change_mg_per_day(70.0, 17.0, weeks=2) == pytest.approx(1000.0)
