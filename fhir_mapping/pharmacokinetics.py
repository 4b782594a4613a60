"""Typical-value levetiracetam population pharmacokinetics, shared by the service and the simulator.

Model (../shared/domain.md §3): one compartment with first-order oral absorption, apparent
clearance scaled allometrically on weight and by a renal factor, volume proportional to weight::

    CL/F = CL_REF · (WT / 25 kg)^0.75 · (0.34 + 0.66 · min(eGFR, 100) / 100)      [L/h]
    V/F  = V_PER_KG · WT                                                         [L]
    k    = CL/V,  tau = 24 h / doses_per_day,  D = daily dose / doses_per_day

Steady state after repeated doses D every tau (superposition of the single-dose Bateman function)::

    C(t) = D·ka / (V·(ka − k)) · [ e^(−k t) / (1 − e^(−k tau)) − e^(−ka t) / (1 − e^(−ka tau)) ]

for 0 ≤ t ≤ tau after a dose: trough C(tau), peak at
t_max = ln( ka (1 − e^(−k tau)) / (k (1 − e^(−ka tau))) ) / (ka − k), average = daily dose / (24 · CL).

CL_REF is Pellock 2001 (6–12 y: 1.43 mL/min/kg ≈ 0.086 L/h/kg at 25 kg); the renal factor reflects
that about 66% of levetiracetam is excreted unchanged in urine; V/F ≈ 0.7 L/kg from TDM data; ka from
Glauser 2007 / Wang et al. (1.5–2 /h). The simulator multiplies CL and V by between-subject factors
(``cl_factor``, ``v_factor``); the service uses the typical values (factors 1).

All functions take floats or numpy arrays (broadcasting) and return the same shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

# domain.md §3, "Suggested defaults": CL/F = 2.15 L/h × (WT/25 kg)^0.75 × renal factor (Pellock 2001).
CL_REF_L_PER_H: Final = 2.15
WEIGHT_REF_KG: Final = 25.0
ALLOMETRIC_EXPONENT_CL: Final = 0.75
# Renal factor 0.34 + 0.66·min(eGFR,100)/100: ~66% renally excreted unchanged (domain.md §3).
RENAL_NONRENAL_FRACTION: Final = 0.34
RENAL_FRACTION: Final = 0.66
EGFR_REFERENCE: Final = 100.0  # mL/min/1.73 m²; no increase of clearance above this
V_PER_KG_L: Final = 0.7  # V/F ≈ 0.7 L/kg (TDM data, domain.md §3)
KA_PER_H: Final = 1.5  # absorption rate constant, 1.5–2 /h (domain.md §3: Glauser 2007, Wang et al.)
HOURS_PER_DAY: Final = 24.0

FloatOrArray = float | npt.NDArray[np.float64]


@dataclass(frozen=True)
class PKParameters:
    """Apparent clearance (L/h), volume (L) and absorption rate constant (/h) of one child."""

    clearance: FloatOrArray
    volume: FloatOrArray
    ka: FloatOrArray

    @property
    def half_life_h(self) -> FloatOrArray:
        """Elimination half-life in hours: ln 2 · V / CL."""
        return np.log(2.0) * np.asarray(self.volume) / np.asarray(self.clearance)


@dataclass(frozen=True)
class SteadyState:
    """Steady-state concentrations in mg/L over one dosing interval."""

    trough: FloatOrArray
    average: FloatOrArray
    peak: FloatOrArray


def renal_factor(egfr: FloatOrArray | None) -> FloatOrArray:
    """Fraction of normal clearance at this eGFR (mL/min/1.73 m²); unknown eGFR counts as normal."""
    if egfr is None:
        return 1.0
    capped = np.minimum(np.asarray(egfr, dtype=float), EGFR_REFERENCE)
    return _like(egfr, RENAL_NONRENAL_FRACTION + RENAL_FRACTION * np.maximum(capped, 0.0) / EGFR_REFERENCE)


def typical_parameters(
    weight_kg: FloatOrArray,
    egfr: FloatOrArray | None = None,
    *,
    cl_factor: FloatOrArray = 1.0,
    v_factor: FloatOrArray = 1.0,
    ka: FloatOrArray = KA_PER_H,
) -> PKParameters:
    """Population PK parameters for a weight and eGFR, times individual factors (1 = typical child)."""
    if _all_numbers(weight_kg, cl_factor, v_factor) and (egfr is None or _all_numbers(egfr)):
        clearance_l_per_h, volume_l = _typical_of_numbers(float(weight_kg), None if egfr is None else float(egfr),
                                                          float(cl_factor), float(v_factor))
        return PKParameters(clearance_l_per_h, volume_l, ka)
    weight = np.asarray(weight_kg, dtype=float)
    if np.any(~np.isfinite(weight)) or np.any(weight <= 0):
        raise ValueError("weight must be a positive number of kg")
    clearance = CL_REF_L_PER_H * (weight / WEIGHT_REF_KG) ** ALLOMETRIC_EXPONENT_CL * np.asarray(renal_factor(egfr)) * np.asarray(cl_factor)
    volume = V_PER_KG_L * weight * np.asarray(v_factor)
    return PKParameters(_like(weight_kg, clearance), _like(weight_kg, volume), ka)


def concentration(
    hours_after_dose: FloatOrArray, mg_per_day: FloatOrArray, parameters: PKParameters, doses_per_day: int = 2
) -> FloatOrArray:
    """Steady-state concentration (mg/L) at a time (0..tau hours) after a dose (Bateman superposition)."""
    if doses_per_day < 1:
        raise ValueError("doses_per_day must be at least 1")
    tau = HOURS_PER_DAY / doses_per_day
    cl, v, ka = (np.asarray(x, dtype=float) for x in (parameters.clearance, parameters.volume, parameters.ka))
    k = cl / v
    t = np.asarray(hours_after_dose, dtype=float)
    dose = np.asarray(mg_per_day, dtype=float) / doses_per_day
    value = dose * ka / (v * (ka - k)) * (np.exp(-k * t) / (1.0 - np.exp(-k * tau)) - np.exp(-ka * t) / (1.0 - np.exp(-ka * tau)))
    return _like(mg_per_day, value, hours_after_dose)


def steady_state_of(mg_per_day: FloatOrArray, parameters: PKParameters, doses_per_day: int = 2) -> SteadyState:
    """Trough, average and peak at steady state for given PK parameters."""
    if doses_per_day < 1:
        raise ValueError("doses_per_day must be at least 1")
    tau = HOURS_PER_DAY / doses_per_day
    cl, v, ka = (np.asarray(x, dtype=float) for x in (parameters.clearance, parameters.volume, parameters.ka))
    k = cl / v
    t_max = np.log(ka * (1.0 - np.exp(-k * tau)) / (k * (1.0 - np.exp(-ka * tau)))) / (ka - k)
    trough = concentration(tau, mg_per_day, parameters, doses_per_day)
    peak = concentration(t_max, mg_per_day, parameters, doses_per_day)
    average = np.asarray(mg_per_day, dtype=float) / (HOURS_PER_DAY * cl)
    return SteadyState(trough, _like(mg_per_day, average, parameters.clearance), peak)


def steady_state(
    mg_per_day: FloatOrArray,
    weight_kg: FloatOrArray,
    egfr: FloatOrArray | None = None,
    doses_per_day: int = 2,
    *,
    cl_factor: FloatOrArray = 1.0,
    v_factor: FloatOrArray = 1.0,
) -> SteadyState:
    """Steady-state trough/average/peak (mg/L) of a daily dose split in ``doses_per_day`` doses.

    >>> s = steady_state(750.0, 25.0, 100.0)
    >>> round(float(s.average), 1), round(float(s.trough), 1), float(s.trough) < float(s.average) < float(s.peak)
    (14.5, 6.9, True)
    """
    if _all_numbers(mg_per_day, weight_kg, cl_factor, v_factor) and (egfr is None or _all_numbers(egfr)):
        return _steady_state_of_numbers(float(mg_per_day), float(weight_kg), None if egfr is None else float(egfr),
                                        doses_per_day, float(cl_factor), float(v_factor))
    if np.any(np.asarray(mg_per_day, dtype=float) < 0):
        raise ValueError("daily dose must be non-negative")
    parameters = typical_parameters(weight_kg, egfr, cl_factor=cl_factor, v_factor=v_factor)
    return steady_state_of(mg_per_day, parameters, doses_per_day)


def _all_numbers(*values: object) -> bool:
    return all(type(value) in (float, int) for value in values)


def _typical_of_numbers(weight_kg: float, egfr: float | None, cl_factor: float, v_factor: float) -> tuple[float, float]:
    """(CL/F, V/F) of :func:`typical_parameters` for plain numbers: the same operations in the same order
    on floats (the same results to the bit), without its array conversions. Tested against the array path."""
    if not (weight_kg > 0 and math.isfinite(weight_kg)):
        raise ValueError("weight must be a positive number of kg")
    if egfr is None:
        renal = 1.0
    else:
        renal = RENAL_NONRENAL_FRACTION + RENAL_FRACTION * max(min(egfr, EGFR_REFERENCE), 0.0) / EGFR_REFERENCE
    clearance = CL_REF_L_PER_H * (weight_kg / WEIGHT_REF_KG) ** ALLOMETRIC_EXPONENT_CL * renal * cl_factor
    return clearance, V_PER_KG_L * weight_kg * v_factor


def _steady_state_of_numbers(mg_per_day: float, weight_kg: float, egfr: float | None, doses_per_day: int,
                             cl_factor: float, v_factor: float) -> SteadyState:
    """:func:`steady_state` of plain numbers: the same operations in the same order on floats, with
    numpy's exp and log (so the results are the same to the bit), without the ~30 array conversions
    that make one card's typical-child prediction cost 40 µs. Tested against the array path."""
    if mg_per_day < 0:
        raise ValueError("daily dose must be non-negative")
    if doses_per_day < 1:
        raise ValueError("doses_per_day must be at least 1")
    cl, v = _typical_of_numbers(weight_kg, egfr, cl_factor, v_factor)
    ka = KA_PER_H
    tau = HOURS_PER_DAY / doses_per_day
    k = cl / v
    exp, log = np.exp, np.log
    t_max = float(log(ka * (1.0 - exp(-k * tau)) / (k * (1.0 - exp(-ka * tau))))) / (ka - k)
    dose = mg_per_day / doses_per_day

    def at(t: float) -> float:
        return float(dose * ka / (v * (ka - k)) * (exp(-k * t) / (1.0 - exp(-k * tau)) - exp(-ka * t) / (1.0 - exp(-ka * tau))))

    return SteadyState(at(tau), mg_per_day / (HOURS_PER_DAY * cl), at(t_max))


def _like(template: object, value: object, *more_templates: object) -> FloatOrArray:
    """Return ``value`` as a float when every template is a scalar, else as an array."""
    templates = (template, *more_templates)
    array = np.asarray(value, dtype=float)
    if array.ndim == 0 and all(np.ndim(t) == 0 for t in templates):  # type: ignore[arg-type]
        return float(array)
    return array
