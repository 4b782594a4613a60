"""The individual PK estimate from measured levels: recovery of a known clearance, interval coverage,
sampling times read from the record, unit conversions, and every bad input turned into a problem.

Charts are FHIR read by the real mapping (fhir_mapping.build); levels come from the shared forward
model (fhir_mapping.pharmacokinetics) with a known individual clearance and volume.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.build import build_timeline
from fhir_mapping.dosing import schwartz_egfr
from fhir_mapping.pk_estimate import (
    OMEGA_CL,
    OMEGA_V,
    SIGMA,
    LevelUsed,
    Timing,
    _LevelModel,
    estimate_at,
    level_lines,
)
from fhir_mapping.problems import ProblemKind
from fhir_mapping.units import convert
from tests.fhir_mapping.factory import history, lev_order, quantity

START = date(2020, 1, 6)
VISIT_DAYS = [START + timedelta(days=91 * i) for i in range(4)]
# factory.history: weight 28 + i kg, height 130 + i cm, creatinine 0.5 mg/dL; 500 mg/day from visit 1,
# 750 mg/day from visit 2 (twice daily).
DOSE_ON_ARRIVAL = {2: 500.0, 3: 750.0}


def _truth(visit: int, cl_factor: float, v_factor: float) -> pk.PKParameters:
    return pk.typical_parameters(28.0 + visit, schwartz_egfr(130.0 + visit, 0.5), cl_factor=cl_factor, v_factor=v_factor)


def _level(oid: str, visit: int, value: float, *, clock: str | None = None, note: str | None = None, unit: str = "mg/L") -> dict[str, Any]:
    resource = quantity(oid, "lev_level", VISIT_DAYS[visit], value, unit=unit, eid=f"p1-e{visit}")
    resource["effectiveDateTime"] = VISIT_DAYS[visit].isoformat() + (f"T{clock}:00Z" if clock else "")
    if note:
        resource["note"] = [{"text": note}]
    return resource


def _clock(hours: float) -> str:
    minutes = round(hours * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _timeline(*levels: dict[str, Any], extra: tuple[dict[str, Any], ...] = ()) -> Any:
    return build_timeline(history() + list(levels) + list(extra))


def test_recovers_a_known_clearance_from_levels_at_recorded_times() -> None:
    """Three noiseless levels at known times of a child clearing 1.8× (and another 0.55×) the typical rate."""
    for cl_factor, v_factor in ((1.8, 1.0), (0.55, 1.2)):
        levels = []
        for n, (visit, hours) in enumerate(((2, 11.5), (3, 2.0), (3, 6.0))):
            value = float(pk.concentration(hours, DOSE_ON_ARRIVAL[visit], _truth(visit, cl_factor, v_factor)))
            levels.append(_level(f"lv{n}", visit, round(value, 2), note=f"drawn {hours} h after the morning dose"))
        assessment = estimate_at(_timeline(*levels), VISIT_DAYS[3])
        assert assessment is not None and assessment.has_estimate, assessment
        true_cl = float(_truth(3, cl_factor, v_factor).clearance)
        estimate, low, high = assessment.clearance_l_per_h  # type: ignore[misc]
        assert abs(estimate / true_cl - 1) < 0.10
        assert low < true_cl < high
        assert len(assessment.levels) == 3
        # A prediction at another dose follows the child's own clearance, not the typical child's.
        true_trough = float(pk.steady_state_of(1500.0, _truth(3, cl_factor, v_factor)).trough)
        median, t_low, t_high = assessment.individual_trough(1500.0)  # type: ignore[misc]
        assert t_low < true_trough < t_high
        assert abs(median / true_trough - 1) < 0.25


def test_posterior_intervals_cover_the_truth_about_ninety_percent_of_the_time() -> None:
    """Children drawn from the priors, one level each at a recalled time: the 90% CL/F interval covers ~90%."""
    rng = np.random.default_rng(13)
    covered, n = 0, 120
    for _ in range(n):
        cl_factor, v_factor = math.exp(OMEGA_CL * rng.standard_normal()), math.exp(OMEGA_V * rng.standard_normal())
        hours = float(rng.uniform(1.0, 12.0))
        recall_error = 0.75 * float(rng.standard_normal())
        value = float(pk.concentration(hours + recall_error if hours + recall_error > 0 else hours, 750.0, _truth(3, cl_factor, v_factor)))
        value *= math.exp(SIGMA * rng.standard_normal())
        level = _level("lv", 3, round(value, 2), clock=_clock(20.0 + hours + recall_error), note="Time of last dose: 20:00")
        assessment = estimate_at(_timeline(level), VISIT_DAYS[3])
        assert assessment is not None and assessment.clearance_l_per_h is not None
        _, low, high = assessment.clearance_l_per_h
        covered += low <= float(_truth(3, cl_factor, v_factor).clearance) <= high
    assert 0.82 <= covered / n <= 0.97, covered / n


@pytest.mark.parametrize(("note", "clock", "times_of_day", "kind", "hours"), [
    ("Time of last dose: 20:00", "08:30", (), "recorded", 12.5),
    ("last dose at 7.15", "10:15", (), "recorded", 3.0),
    ("2,5 hours after the dose", None, (), "recorded", 2.5),
    ("Trough level, pre-dose", "07:50", (), "trough", None),
    (None, "11:00", ("08:00:00", "20:00:00"), "recorded", 3.0),
    (None, None, (), "unknown", None),
    ("peak?? drawn whenever", "99:99", (), "unknown", None),
])
def test_sampling_time_is_read_from_the_note_the_clock_and_the_order(note: str | None, clock: str | None, times_of_day: tuple[str, ...], kind: str, hours: float | None) -> None:
    resources = history()
    if times_of_day:
        for resource in resources:
            if resource["resourceType"] == "MedicationRequest":
                resource["dosageInstruction"][0]["timing"]["repeat"]["timeOfDay"] = list(times_of_day)
    level = _level("lv", 3, 12.0, clock=clock, note=note)
    assessment = estimate_at(build_timeline([*resources, level]), VISIT_DAYS[3])
    assert assessment is not None and assessment.latest is not None
    assert assessment.latest.timing.kind == kind
    if hours is not None:
        assert assessment.latest.timing.hours_after_dose == pytest.approx(hours, abs=0.02)


def test_a_level_drawn_a_day_after_a_change_is_not_read_as_steady_state() -> None:
    """The model's concentration after n doses equals the explicit sum of single doses (superposition)."""
    params = pk.typical_parameters(30.0, 100.0)
    ka, k = pk.KA_PER_H, float(params.clearance) / float(params.volume)
    tau, hours, n = 12.0, 3.0, 2
    level = LevelUsed("x", date(2026, 1, 1), 10.0, Timing("recorded", hours), 1000.0, 2, 500.0, n, 30.0, 100.0)
    model = _LevelModel([level])
    rows = model.index == 0

    def single(t: float, dose: float) -> float:
        return dose * ka / (float(params.volume) * (ka - k)) * (math.exp(-k * t) - math.exp(-ka * t))

    for row in np.flatnonzero(rows):
        h = float(model.hours[row])
        explicit = sum(single(h + j * tau, 500.0 if j < n else 250.0) for j in range(400))
        got = float(np.exp(model.log_concentration(np.zeros((1, 2)))[0, row]))
        assert got == pytest.approx(explicit, rel=1e-6)
    central = float(np.exp(model.log_concentration(np.zeros((1, 2)))[0, 2]))  # the recorded time itself
    assert float(pk.concentration(hours, 500.0, params)) < central < 0.99 * float(pk.concentration(hours, 1000.0, params))


def test_levels_in_umol_per_l_and_ug_per_ml_convert_through_the_one_unit_table() -> None:
    assert convert(100.0, "umol/L", "drug_level") == pytest.approx(17.021)
    assert convert(100.0, None, "drug_level", "µmol/L") == pytest.approx(17.021)
    assert convert(2.0, "mmol/L", "drug_level") == pytest.approx(340.42)
    assert convert(20.0, "ug/mL", "drug_level") == 20.0
    assert convert(53.0, "umol/L", "creatinine") == pytest.approx(0.5994, abs=1e-4)  # creatinine keeps its own factor
    molar = estimate_at(_timeline(_level("lv", 3, 94.0, unit="umol/L", note="trough")), VISIT_DAYS[3])
    mass = estimate_at(_timeline(_level("lv", 3, 94.0 * 0.17021, note="trough")), VISIT_DAYS[3])
    assert molar is not None and mass is not None and molar.latest is not None
    assert molar.latest.mg_per_l == pytest.approx(16.0, abs=0.01)
    assert molar.clearance_l_per_h == pytest.approx(mass.clearance_l_per_h, rel=1e-6)


def _contradictory_orders() -> tuple[dict[str, Any], ...]:
    return (lev_order("dup-a", 1000.0, VISIT_DAYS[2] + timedelta(days=10)), lev_order("dup-b", 2000.0, VISIT_DAYS[2] + timedelta(days=10)))


@pytest.mark.parametrize(("level", "extra", "kind", "words"), [
    (_level("lv", 3, 12.0, unit="mg/mmol"), (), ProblemKind.UNKNOWN_UNIT, "unit"),
    (_level("lv", 3, -4.0), (), ProblemKind.INVALID_VALUE, "outside"),
    (_level("lv", 3, 620.0), (), ProblemKind.INVALID_VALUE, "outside"),
    (_level("lv", 3, 0.0), (), ProblemKind.INVALID_VALUE, "undetectable"),
    (_level("lv", 0, 15.0), (), ProblemKind.INVALID_VALUE, "before any levetiracetam order"),
    (_level("lv", 3, 15.0), _contradictory_orders(), ProblemKind.AMBIGUOUS, "different doses"),
])
def test_bad_input_is_a_problem_and_no_estimate(level: dict[str, Any], extra: tuple[dict[str, Any], ...], kind: ProblemKind, words: str) -> None:
    assessment = estimate_at(_timeline(level, extra=extra), VISIT_DAYS[3])
    assert assessment is not None
    assert not assessment.has_estimate
    assert [p.kind for p in assessment.problems] == [kind]
    assert words in assessment.problems[0].message
    assert assessment.individual_trough(750.0) is None
    assert assessment.clearance_l_per_h is None
    lines = level_lines(assessment, 750.0, 1000.0)
    assert lines and all(line.startswith("- Levetiracetam level not used:") for line in lines)
    assert assessment.decision_problems()[0]["item"] == "levetiracetam level"


def test_no_level_no_assessment_and_levels_after_the_decision_date_are_not_seen() -> None:
    assert estimate_at(_timeline(), VISIT_DAYS[3]) is None
    assert estimate_at(_timeline(_level("lv", 3, 15.0)), VISIT_DAYS[2]) is None


def test_card_lines_compare_with_a_typical_child_and_predict_current_and_recommended_doses() -> None:
    assessment = estimate_at(_timeline(_level("lv", 3, 14.0, note="trough")), VISIT_DAYS[3])
    assert assessment is not None and assessment.has_estimate
    lines = level_lines(assessment, 750.0, 1500.0)
    assert lines[0].startswith(f"- Measured 14 mg/L on {VISIT_DAYS[3].isoformat()} (trough); a typical child on 750 mg/day: ")
    assert any(line.startswith("- Predicted for this child at the current 750 mg/day: trough ") for line in lines)
    assert any(line.startswith("- Predicted for this child at the recommended 1500 mg/day: trough ") for line in lines)
    assert "no established therapeutic range" in lines[-1]
    typical = assessment.typical
    assert typical is not None and typical[1] < typical[0] < typical[2]
    low_dose, high_dose = assessment.individual_trough(750.0), assessment.individual_trough(1500.0)
    assert low_dose is not None and high_dose is not None
    assert high_dose[0] == pytest.approx(2 * low_dose[0], rel=0.02)  # linear kinetics
    assert any("within what children" in note for note in assessment.interpretation)


@pytest.mark.parametrize(("value", "note", "clock", "reading"), [
    (60.0, None, None, "non-trough sample?"),
    (0.6, "trough", None, "poor adherence?"),
    (90.0, "Time of last dose: 20:00", "08:00", "high exposure"),
])
def test_readings_of_unusual_levels(value: float, note: str | None, clock: str | None, reading: str) -> None:
    assessment = estimate_at(_timeline(_level("lv", 3, value, note=note, clock=clock)), VISIT_DAYS[3])
    assert assessment is not None and assessment.has_estimate
    assert any(note_text.startswith(reading) for note_text in assessment.interpretation), assessment.interpretation


def test_the_rail_helper_gives_the_median_individual_trough_or_none() -> None:
    from fhir_mapping.pk_estimate import predicted_trough_mg_l

    assessment = estimate_at(_timeline(_level("lv", 3, 30.0, note="trough")), VISIT_DAYS[3])
    assert assessment is not None
    trough = assessment.individual_trough(750.0)
    assert trough is not None and predicted_trough_mg_l(assessment, 750.0) == trough[0]
    assert 20.0 < trough[0] < 40.0  # a measured trough of 30 mg/L on this dose predicts about that trough
    assert predicted_trough_mg_l(None, 750.0) is None and predicted_trough_mg_l(assessment, None) is None
    bad = estimate_at(_timeline(_level("lv", 3, 30.0, unit="mg/mmol")), VISIT_DAYS[3])
    assert predicted_trough_mg_l(bad, 750.0) is None


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**6), st.text(max_size=5)),
    note=st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["last dose 25:99", "99 hours after the dose", "trough", "last dose at 7.15"])),
    stamp=st.one_of(st.text(max_size=30), st.sampled_from(["2020-10-05T99:99:00Z", "2020-10-05T23:59:00+14:00", "2020-10", "2020-10-05"])),
    unit=st.sampled_from(["mg/L", "umol/L", "µg/mL", "mmol/L", "IU", "", "mg/dL"]),
)
def test_no_level_record_makes_the_estimate_raise(value: object, note: str | None, stamp: str, unit: str) -> None:
    level = _level("lv", 3, 12.0, unit=unit or "mg/L", note=note)
    level["valueQuantity"]["value"] = value
    level["effectiveDateTime"] = stamp
    assessment = estimate_at(_timeline(level), VISIT_DAYS[3])
    if assessment is not None:
        level_lines(assessment, 750.0, 1000.0)
        assert assessment.has_estimate or assessment.problems


def test_volume_is_reported_only_when_levels_at_different_times_inform_it() -> None:
    """One trough says little about V/F; a six-level profile over the interval narrows it (20% residual)."""
    truth = _truth(3, 1.0, 1.5)
    trough_only = estimate_at(_timeline(_level("lv", 3, round(float(pk.concentration(11.5, 750.0, truth)), 2), note="trough")), VISIT_DAYS[3])
    assert trough_only is not None and not trough_only.volume_informed
    profile = [_level(f"lv{n}", 3, round(float(pk.concentration(h, 750.0, truth)), 2), note=f"{h} h after the dose") for n, h in enumerate((1.0, 2.0, 3.0, 5.0, 8.0, 11.5))]
    informed = estimate_at(_timeline(*profile), VISIT_DAYS[3])
    assert informed is not None and informed.volume_informed and informed.volume_l is not None
    _, low, high = informed.volume_l
    assert low < float(truth.volume) < high
    assert any("V/F" in line for line in level_lines(informed, 750.0, None))


def test_a_timeline_not_read_from_fhir_uses_the_visits_levels_and_orders() -> None:
    """The simulator's own timeline has no level records: the visits' levels and orders are used."""
    from training.simulator.cohort import simulate_cohort
    from training.simulator.config import DEFAULT_CONFIG

    config = dataclasses.replace(DEFAULT_CONFIG, level_probability=1.0)
    run = next(r for r in simulate_cohort(10, 3, config) if any("lev_level" in v.labs for v in r.visits))
    visit = next(v for v in run.timeline.visits if "lev_level" in v.labs)
    assessment = estimate_at(run.timeline, visit.date)
    assert assessment is not None and assessment.has_estimate and assessment.latest is not None
    assert assessment.latest.timing.kind == "unknown"
    assert assessment.latest.mg_per_day == visit.lev_mg_per_day_before


def _trough_on(day: date, value: float, oid: str) -> dict[str, Any]:
    resource = quantity(oid, "lev_level", day, value)
    resource["effectiveDateTime"] = day.isoformat()
    resource["note"] = [{"text": "trough"}]
    return resource


@pytest.mark.parametrize(("earlier", "latest", "reading"), [
    ((15.0, 16.0), 3.0, "poor adherence? 3.0 mg/L is lower than"),  # a drop from the child's own levels
    ((0.6, 0.55), 0.6, "low for 750 mg/day but like this child's earlier levels"),  # a fast clearer, consistently
])
def test_the_latest_level_is_read_against_the_childs_earlier_levels(earlier: tuple[float, float], latest: float, reading: str) -> None:
    days = [VISIT_DAYS[2] + timedelta(days=30), VISIT_DAYS[2] + timedelta(days=60)]
    levels = [_trough_on(day, value, f"old{n}") for n, (day, value) in enumerate(zip(days, earlier, strict=True))]
    assessment = estimate_at(_timeline(*levels, _trough_on(VISIT_DAYS[3], latest, "new")), VISIT_DAYS[3])
    assert assessment is not None and assessment.own_percentile is not None
    assert any(note.startswith(reading) for note in assessment.interpretation), assessment.interpretation
    assert "this child's earlier levels" in " ".join(assessment.interpretation)


def test_the_reading_and_the_rail_share_one_upper_reference() -> None:
    from fhir_mapping import pk_estimate, rails

    assert pk_estimate.REFERENCE_HIGH_MG_L == rails.LEVEL_UPPER_REFERENCE_MG_L


# --- The estimate's arithmetic against the model evaluated directly -------------------------------
def _varied_levels(seed: int) -> list[LevelUsed]:
    """One to three levels of a child drawn from the priors: any timing, regimen, recent or old dose change."""
    rng = np.random.default_rng(seed)
    weight = float(rng.uniform(12.0, 60.0))
    egfr = [None, 35.0, 80.0, 120.0][int(rng.integers(4))]
    per_day = int(rng.integers(1, 4))
    tau = 24.0 / per_day
    truth = pk.typical_parameters(weight, egfr, cl_factor=math.exp(OMEGA_CL * rng.standard_normal()),
                                  v_factor=math.exp(OMEGA_V * rng.standard_normal()))
    levels = []
    for n in range(int(rng.integers(1, 4))):
        kind = ["recorded", "trough", "unknown"][int(rng.integers(3))]
        hours = float(rng.uniform(0.3, tau)) if kind != "trough" else tau - 0.5
        mg = float(rng.choice([250.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0]))
        value = float(pk.concentration(hours, mg, truth, per_day)) * math.exp(SIGMA * rng.standard_normal())
        levels.append(LevelUsed(f"lv{n}", date(2025, 1, 1) + timedelta(days=40 * n), round(value, 2),
                                Timing(kind, hours if kind == "recorded" else None), mg, per_day,
                                float(rng.choice([0.0, mg / 2, 2 * mg])), int(rng.choice([1, 2, 5, 60, 400])), weight, egfr))
    return levels


def _exact_mode(model: _LevelModel, start: np.ndarray) -> np.ndarray:
    """The posterior's mode to a gradient of 1e-9, by scipy's BFGS from ``start`` (central differences)."""
    from scipy.optimize import minimize

    step = 1e-5

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        log_p = model.log_posterior(x[None, :] + step * np.asarray([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float))
        return -float(log_p[0]), -np.asarray([log_p[1] - log_p[2], log_p[3] - log_p[4]]) / (2 * step)

    return np.asarray(minimize(negative, start, jac=True, method="BFGS", options={"gtol": 1e-9, "maxiter": 500}).x)


@pytest.mark.parametrize("seed", range(40))
def test_the_map_is_the_posterior_mode(seed: int) -> None:
    """The refined MAP is the mode to within 1e-6 on the log scale (CL/F and V/F to a millionth; a card
    shows two or three digits), and never below the best grid point."""
    model = _LevelModel(_varied_levels(seed))
    grid, weights, mode = model.posterior()
    start = grid[int(np.argmax(weights))]
    exact = _exact_mode(model, start)
    assert np.abs(mode - exact).max() < 1e-6, (mode, exact)
    found = mode.copy()
    assert model.log_posterior(mode[None, :])[0] >= model.log_posterior(start[None, :])[0]
    assert np.array_equal(mode, found)  # evaluating a point leaves it as it was


@pytest.mark.parametrize("seed", range(15))
def test_the_refinement_from_a_poor_start_climbs_to_a_local_maximum(seed: int) -> None:
    """Started three or four grid cells away from the best grid point, the refinement never ends lower
    than where it started and ends where the gradient vanishes and the posterior is locally concave."""
    from fhir_mapping.pk_estimate import _FINE, _STENCIL, _ascent_step

    model = _LevelModel(_varied_levels(seed))
    grid, weights, _ = model.posterior()
    start = grid[int(np.argmax(weights))]
    cell = (grid.max(axis=0) - grid.min(axis=0)) / (np.asarray(_FINE) - 1)
    for shift in ((3, 0), (-3, 2), (0, -4), (4, 4)):
        far = start + np.asarray(shift) * cell
        found = model.mode_near(far, cell)
        assert model.log_posterior(found[None, :].copy())[0] >= model.log_posterior(far[None, :].copy())[0]
        log_p = model.log_posterior(found[None, :] + _STENCIL)
        step, newton = _ascent_step(log_p, np.full(2, float(_STENCIL[1, 0])), cell)
        assert newton and step is not None and np.abs(step).max() < 1e-4, (shift, found, step)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray | None) -> tuple[float, float, float]:
    """(median, 5th, 95th percentile): each value at the middle of its weight, linear in between."""
    order = np.argsort(values)
    w = np.full(values.size, 1.0 / values.size) if weights is None else weights[order]
    cumulative = np.cumsum(w) - 0.5 * w
    median, low, high = np.interp([0.5, 0.05, 0.95], cumulative / cumulative[-1], values[order])
    return float(median), float(low), float(high)


@pytest.mark.parametrize("seed", range(20))
def test_the_predictions_and_readings_are_the_model_evaluated_directly(seed: int) -> None:
    """Every number a card shows but the MAP, recomputed here from the posterior grid and the fixed draws
    with pharmacokinetics' own functions: the estimate's shared and in-place arithmetic changes none."""
    from fhir_mapping import pk_estimate

    levels = _varied_levels(seed)
    latest = levels[-1]
    assessment = pk_estimate._assess(latest.measured_on, levels, latest.weight_kg, latest.egfr, latest.doses_per_day)
    eta, weights = assessment._eta, assessment._weights
    assert eta is not None and weights is not None
    typical = pk.typical_parameters(latest.weight_kg, latest.egfr)
    grid_params = pk.PKParameters(float(typical.clearance) * np.exp(eta[:, 0]), float(typical.volume) * np.exp(eta[:, 1]), pk.KA_PER_H)
    for mg in (250.0, latest.mg_per_day, 1750.0):
        state = pk.steady_state_of(np.full(eta.shape[0], mg), grid_params, latest.doses_per_day)
        assert assessment.individual_trough(mg) == pytest.approx(_weighted_quantiles(np.asarray(state.trough), weights), rel=1e-12)
        assert assessment.individual_average(mg) == pytest.approx(_weighted_quantiles(np.asarray(state.average), weights), rel=1e-12)

    draws = pk_estimate._PRIOR_DRAWS
    prior_params = pk.PKParameters(float(typical.clearance) * np.exp(OMEGA_CL * draws[:, 0]), float(typical.volume) * np.exp(OMEGA_V * draws[:, 1]), pk.KA_PER_H)
    typical_troughs = pk.steady_state_of(np.full(len(draws), latest.mg_per_day), prior_params, latest.doses_per_day).trough
    assert assessment.typical == pytest.approx(_weighted_quantiles(np.asarray(typical_troughs), None), rel=1e-12)

    # Where the latest level falls among typical children: each draw's sampling time by inverse CDF, then
    # the superposed dose series (the current order's doses since it started, the previous regime before).
    model = _LevelModel(levels)
    rows = np.flatnonzero(model.index == len(levels) - 1)
    cumulative = np.cumsum(np.exp(model.log_w[rows]))
    pick = rows[np.minimum(np.searchsorted(cumulative / cumulative[-1], pk_estimate._PRIOR_UNIFORMS), rows.size - 1)]
    cl, v = prior_params.clearance, prior_params.volume
    k = np.asarray(cl) / np.asarray(v)
    ka, tau = pk.KA_PER_H, 24.0 / latest.doses_per_day

    def series(t: np.ndarray) -> np.ndarray:
        return np.asarray(ka / (v * (ka - k)) * (np.exp(-k * t) / (1 - np.exp(-k * tau)) - np.exp(-ka * t) / (1 - np.exp(-ka * tau))))

    hours, shift = model.hours[pick], latest.doses_of_current * tau
    dose, previous = latest.mg_per_day / latest.doses_per_day, latest.previous_mg_per_day / latest.doses_per_day
    c = dose * (series(hours) - series(hours + shift)) + previous * series(hours + shift)
    below = np.mean(np.log(np.maximum(c, 1e-9)) + SIGMA * draws[:, 2] < math.log(latest.mg_per_l))
    assert assessment.latest_percentile == pytest.approx(float(below), abs=1e-12)

    # The 90% interval of CL/F: eta_cl's marginal on the grid's cells.
    points, inverse = np.unique(eta[:, 0], return_inverse=True)
    mass = np.bincount(inverse, weights=weights)
    half = np.diff(points) / 2
    edges = np.concatenate(([points[0] - half[0]], points[:-1] + half, [points[-1] + half[-1]]))
    low, high = np.interp([0.05, 0.95], np.concatenate(([0.0], np.cumsum(mass))) / mass.sum(), edges)
    assert assessment.clearance_l_per_h is not None
    assert assessment.clearance_l_per_h[1:] == pytest.approx((float(typical.clearance) * math.exp(low), float(typical.clearance) * math.exp(high)), rel=1e-12)


def test_the_grid_axes_are_numpys_linspace() -> None:
    from fhir_mapping.pk_estimate import _spaced

    rng = np.random.default_rng(4)
    for _ in range(2000):
        low = float(rng.normal()) * 10 ** int(rng.integers(-3, 3))
        high = low + float(rng.uniform(1e-6, 10))
        count = int(rng.integers(2, 40))
        assert np.array_equal(_spaced(low, high, count), np.linspace(low, high, count))
