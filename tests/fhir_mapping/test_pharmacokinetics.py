"""Typical-value levetiracetam PK shared by the service and the simulator (domain.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fhir_mapping import pharmacokinetics as pk


def test_average_is_dose_over_clearance_at_reference_child() -> None:
    """At 25 kg and normal eGFR the average concentration is the daily dose over 24 h times 2.15 L/h."""
    state = pk.steady_state(750.0, 25.0, 100.0)
    assert state.average == pytest.approx(750.0 / (24 * 2.15))
    assert state.trough < state.average < state.peak


def test_half_life_matches_pellock() -> None:
    """The typical half-life at 25 kg is within Pellock's 6.0 ± 1.1 h (domain.md §3)."""
    half_life = float(pk.typical_parameters(25.0).half_life_h)
    assert 4.9 <= half_life <= 7.1


def test_concentrations_scale_linearly_with_dose() -> None:
    """Doubling the daily dose doubles trough, average and peak (linear PK)."""
    low, high = pk.steady_state(500.0, 30.0, 90.0), pk.steady_state(1000.0, 30.0, 90.0)
    for a, b in ((low.trough, high.trough), (low.average, high.average), (low.peak, high.peak)):
        assert b == pytest.approx(2 * a)


def test_reduced_egfr_raises_exposure_by_the_renal_factor() -> None:
    """At eGFR 40 clearance falls to 0.34 + 0.66·0.4 of normal, so the average rises by its inverse."""
    normal, reduced = pk.steady_state(750.0, 25.0, 100.0), pk.steady_state(750.0, 25.0, 40.0)
    assert reduced.average / normal.average == pytest.approx(1 / (0.34 + 0.66 * 0.4))
    assert pk.steady_state(750.0, 25.0, 150.0).average == pytest.approx(normal.average)  # capped at 100


def test_trough_is_the_concentration_at_the_end_of_the_interval() -> None:
    """The trough equals the Bateman superposition at tau, and the peak is the maximum over the interval."""
    params = pk.typical_parameters(20.0, 110.0)
    state = pk.steady_state_of(600.0, params, 2)
    curve = np.asarray(pk.concentration(np.linspace(0.0, 12.0, 1201), 600.0, params, 2))
    assert state.trough == pytest.approx(float(curve[-1]))
    assert state.peak == pytest.approx(float(curve.max()), rel=1e-4)
    assert float(curve[0]) == pytest.approx(state.trough)  # steady state: the curve starts where it ends


def test_arrays_broadcast_and_scalars_stay_floats() -> None:
    """Array inputs give arrays of the same shape; scalar inputs give floats (for the service)."""
    state = pk.steady_state(np.array([250.0, 500.0, 1000.0]), np.array([15.0, 25.0, 40.0]), None)
    assert np.shape(state.trough) == (3,)
    assert isinstance(pk.steady_state(500.0, 20.0).trough, float)


def test_invalid_inputs_raise() -> None:
    """Non-positive weight, negative doses and zero doses per day are errors, not silent numbers."""
    with pytest.raises(ValueError):
        pk.steady_state(500.0, 0.0)
    with pytest.raises(ValueError):
        pk.steady_state(-1.0, 20.0)
    with pytest.raises(ValueError):
        pk.steady_state(500.0, 20.0, doses_per_day=0)
    assert math.isfinite(pk.steady_state(0.0, 20.0).average)


def test_plain_numbers_give_the_array_path_to_the_bit() -> None:
    """steady_state of floats takes a shorter path; it must give exactly what the general one gives."""
    rng = np.random.default_rng(7)
    for _ in range(3000):
        mg = float(rng.choice([0.0, 250.0, 500.0, 1000.0, rng.uniform(0, 3000)]))
        weight = float(rng.uniform(8, 90))
        egfr = None if rng.random() < 0.3 else float(rng.uniform(5, 160))
        doses = int(rng.integers(1, 4))
        factors = {"cl_factor": float(rng.uniform(0.5, 2)), "v_factor": float(rng.uniform(0.7, 1.4))} if rng.random() < 0.5 else {}
        fast = pk.steady_state(mg, weight, egfr, doses, **factors)
        general = pk.steady_state_of(np.asarray(mg), pk.typical_parameters(np.asarray(weight), None if egfr is None else np.asarray(egfr),
                                                                          **factors), doses)
        assert (fast.trough, fast.average, fast.peak) == (float(general.trough), float(general.average), float(general.peak))
        assert all(type(x) is float for x in (fast.trough, fast.average, fast.peak))


def test_plain_numbers_refuse_what_the_array_path_refuses() -> None:
    for args in ((-1.0, 25.0), (500.0, 0.0), (500.0, -3.0), (500.0, float("nan")), (500.0, float("inf"))):
        with pytest.raises(ValueError):
            pk.steady_state(*args)
    with pytest.raises(ValueError):
        pk.steady_state(500.0, 25.0, None, 0)


def test_typical_parameters_of_plain_numbers_give_the_array_path_to_the_bit() -> None:
    rng = np.random.default_rng(11)
    for _ in range(3000):
        weight = float(rng.uniform(3, 120))
        egfr = None if rng.random() < 0.3 else float(rng.uniform(-5, 200))
        factors = {"cl_factor": float(rng.uniform(0.3, 3)), "v_factor": float(rng.uniform(0.5, 2))} if rng.random() < 0.5 else {}
        fast = pk.typical_parameters(weight, egfr, **factors)
        # 0-d arrays: the general path as plain numbers took it before (an array of length 1 may take
        # numpy's vector pow, which can round the last bit differently)
        general = pk.typical_parameters(np.asarray(weight), None if egfr is None else np.asarray(egfr),
                                        **{k: np.asarray(v) for k, v in factors.items()})
        assert (fast.clearance, fast.volume) == (float(general.clearance), float(general.volume))
        assert type(fast.clearance) is float and type(fast.volume) is float
    for weight in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            pk.typical_parameters(weight)
