"""The child's own levetiracetam pharmacokinetics from measured levels: a Bayesian (MAP) estimate.

Model (the one of :mod:`fhir_mapping.pharmacokinetics`, domain.md §3): one compartment, first-order
oral absorption, the typical CL/F and V/F of a child of this weight and eGFR times individual
factors ``exp(eta_cl)`` and ``exp(eta_v)``; ka stays at its typical value (sparse routine levels say
nothing about absorption). Between-subject variability is log-normal, the residual error
proportional (normal on the log scale)::

    eta_cl ~ N(0, OMEGA_CL²), eta_v ~ N(0, OMEGA_V²),  log C_measured = log C(h; eta) + eps,  eps ~ N(0, SIGMA²)

``h`` is the time since the last dose at the draw. When the record gives it (a note "3 h after the
dose", or the draw's clock time with the last dose's clock time from the note or the order's
``timeOfDay``) it is taken with a recall error; a trough flag ("trough", "pre-dose") places it
just before the next dose; otherwise it is unknown and integrated out, uniformly over the dosing
interval. The concentration at ``h`` superposes the current dose (``n`` doses since the order
started) on the previous regime, so a level drawn a day after a change is not read as steady state.

Why a grid and a few Newton steps, not a library: no maintained Python package fits this model (the
precision-dosing tools are R, posologyr and mapbayr, or closed, DoseMeRx, InsightRX; Tucuxi is
C++), and the posterior is two-dimensional. The posterior is evaluated on a grid fitted to where it
has mass (first a coarse grid over the prior, then a fine grid over the region holding all but
e^-9 of the peak density), which gives its quantiles exactly up to the grid step, also when it is skewed
or bimodal (an unknown sampling time can leave "near-peak and slow clearance" and "trough and normal
clearance" both plausible), where a Laplace approximation would be overconfident. Newton's method
refines the MAP from the best grid point (gradient and Hessian by central differences, nine points in
one evaluation; :meth:`_LevelModel.mode_near`): for two parameters a general optimiser's set-up and
line search cost more than the fit. What a card asks of the posterior at any dose (the predicted
trough and average) is prepared once per assessment.

Public API (CONTRACT §4): :func:`estimate_at`, :func:`level_lines` and
:meth:`LevelAssessment.individual_trough`. Nothing here raises on bad input: a level in an unknown
unit, a negative or absurd value, a level before any levetiracetam order, or a dose history that
cannot say what the child took becomes a :class:`~fhir_mapping.problems.Problem` and no estimate.

How the clinical rails and the cards use it::

    assessment = estimate_at(timeline, visit.date)            # None: no level in the last year
    # rails (RailFacts.predicted_level_mg_l): this child's median trough at the current dose, or None
    predicted = predicted_trough_mg_l(assessment, current_mg)
    # cards: the detail lines, and the problems in the decision's shape when there is no estimate
    lines = level_lines(assessment, current_mg, recommended_mg) if assessment else []
    problems = assessment.decision_problems() if assessment else []

Compare a predicted trough with :data:`REFERENCE_HIGH_MG_L` (the laboratory reference, not a
therapeutic range); ``individual_trough(mg)[2]`` is its 95th percentile for a cautious rail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.build import PLAUSIBLE_RANGES
from fhir_mapping.dosing import TROUGH_REFERENCE_MG_L
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.timeline import DoseSpan, DrugLevel, PatientTimeline, Visit

Array = npt.NDArray[np.float64]
Numbers = Sequence[float] | Array

# --- Priors and error model (domain.md §3) -------------------------------------------------------
# Between-subject variability of CL/F: 40% CV, the middle of the 35–45% that the external evaluation
# of paediatric models in 194 children (Tauzin et al. 2021, J Clin Pharmacol 61(10)) says to assume
# (published models under-estimate it; domain.md's older 25–35% is unverified).
CL_BSV_CV: Final = 0.40
# V/F: the 2023 paediatric TDM cohort (Eur J Hosp Pharm 30(6):359; domain.md §3 "a 2023 cohort")
# reports V 0.7 (IQR 0.58–0.85) L/kg: log-SD = ln(0.85/0.58) / 1.349 = 0.28.
OMEGA_V: Final = 0.28
# Proportional residual error 15–20% (domain.md §3, unverified): the upper end, since routine levels
# carry assay and recording errors beyond those of trials.
RESIDUAL_CV: Final = 0.20
OMEGA_CL: Final = math.sqrt(math.log1p(CL_BSV_CV**2))
SIGMA: Final = math.sqrt(math.log1p(RESIDUAL_CV**2))
# Assumptions (no source here): a recalled dose time is off by about 45 min (SD); a level called
# "trough" is drawn between 3 h before and 1 h after the next dose was due.
DOSE_TIME_RECALL_SD_H: Final = 0.75
TROUGH_EARLY_H: Final = 3.0
TROUGH_LATE_H: Final = 1.0
# A level guides today's dose only if recent: clearance changes with growth and maturation
# (Wallin 2010: CL/F 1.7× higher at 0–4 y than at 12–17 y, domain.md §3). Project choice.
LEVEL_LOOKBACK_DAYS: Final = 365
MAX_LEVELS: Final = 6  # the most recent ones; older add little once several are known
# Above this a level is a unit or typing error, not a measurement: the mapping's limit (500 mg/L, over
# 10× the top of the older trough reference 46 mg/L, domain.md §3), checked again for other timelines.
ABSURD_LEVEL_MG_L: Final = PLAUSIBLE_RANGES["lev_level"][1]
DEFAULT_DOSES_PER_DAY: Final = 2  # the label's twice-daily regimen when the order does not say
# "Unusual for a child on this dose": outside the 95% band of typical children (timing and residual
# error included). A 90% band would question one typical child in ten; there is no adherence data to
# weigh a narrower band against (project choice).
PERCENTILE_LOW, PERCENTILE_HIGH = 0.025, 0.975
INTERVAL: Final = (0.05, 0.95)  # every interval shown is a 90% interval
# Reference (trough), the newer lab guidance of domain.md §3, 10–40 mg/L (or 20–40; older 12–46):
# the upper bound equals the clinical rails' LEVEL_UPPER_REFERENCE_MG_L ("no increase above the
# reference"; a test keeps them equal, and this module does not import the rails, which may import it).
# Levetiracetam has no established therapeutic range and no established toxic level.
REFERENCE_LOW_MG_L: Final = 10.0
REFERENCE_HIGH_MG_L: Final = 40.0
OLDER_REFERENCE_MG_L: Final = TROUGH_REFERENCE_MG_L

# Grids (hours within the interval; factors on the log scale, in prior SDs).
_UNKNOWN_TIME_POINTS = 12
_TROUGH_POINTS = 5
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(5)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()
_COARSE = (17, 7)
_FINE = (25, 13)
_COARSE_SPAN_SD = (5.5, 3.5)
_COARSE_RANGES = ((-_COARSE_SPAN_SD[0] * OMEGA_CL, _COARSE_SPAN_SD[0] * OMEGA_CL), (-_COARSE_SPAN_SD[1] * OMEGA_V, _COARSE_SPAN_SD[1] * OMEGA_V))
_COARSE_STEP = np.asarray([2 * _COARSE_SPAN_SD[0] * OMEGA_CL / (_COARSE[0] - 1), 2 * _COARSE_SPAN_SD[1] * OMEGA_V / (_COARSE[1] - 1)])
_NEGLIGIBLE_LOG_DENSITY = 9.0
_WASHED_OUT = 16.0
# Where e^-(k × hours since the order started) is below e^-50 (2e-22) the doses before the order change
# no bit of a double's level (its last bit is 1e-16 of it): their terms are left out exactly.
_BELOW_LAST_BIT = 50.0
_NEGLIGIBLE_TERM = -700.0  # log of a sampling time's share below which it adds nothing a double holds
_PRIOR_SD = np.asarray([[OMEGA_CL], [OMEGA_V]])  # the priors' SDs as a column, against (2, points) arrays
# The MAP's refinement (numerical choices, no clinical meaning): central differences of step 1e-4 on
# the log scale (a relative change of 0.01% in CL/F or V/F) on a 3x3 stencil give the gradient and
# Hessian; Newton's method stops once its step is below 1e-4 and takes that step: its error squares
# with each step, so the MAP is then within about 1e-7 of the mode on the log scale (at most 1.4e-7 on
# the tests' varied charts; scipy's BFGS at its gtol of 1e-3 was up to 5e-5 off), CL/F and V/F to a
# millionth, far below the two or three digits a card shows.
_DERIVATIVE_STEP = 1e-4
_STENCIL = _DERIVATIVE_STEP * np.asarray([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=float)
_MODE_TOLERANCE = 1e-4
# _STENCIL's nine points as (row, column) of a 3x3 block of the fine grid around its centre.
_STENCIL_CELLS = (np.asarray([1, 2, 0, 1, 1, 2, 2, 0, 0]), np.asarray([1, 1, 1, 2, 0, 2, 0, 2, 0]))
_MODE_ITERATIONS = 30
# Fixed draws for the typical child's (prior) intervals: deterministic, the same on every call.
_PRIOR_RNG = np.random.default_rng(20261120)
_PRIOR_DRAWS = _PRIOR_RNG.standard_normal((2000, 3))
_PRIOR_UNIFORMS = _PRIOR_RNG.random(2000)  # sampling times, drawn by inverse CDF
# The same draws as factors on the typical CL/F and V/F and as residual errors, and the (equal-weight)
# cumulative shares of their sorted values: functions of the constants above, made once.
_PRIOR_CL_FACTORS = np.exp(OMEGA_CL * _PRIOR_DRAWS[:, 0])
_PRIOR_V_FACTORS = np.exp(OMEGA_V * _PRIOR_DRAWS[:, 1])
_PRIOR_RESIDUALS = SIGMA * _PRIOR_DRAWS[:, 2]
_PRIOR_SHARES = np.cumsum(np.full(len(_PRIOR_DRAWS), 1.0 / len(_PRIOR_DRAWS))) - 0.5 / len(_PRIOR_DRAWS)
_PRIOR_SHARES /= _PRIOR_SHARES[-1]
# Words of a note that say a level was a trough, and the two ways a note gives the time since the dose.
_TROUGH_WORDS = re.compile(r"\b(trough|pre-?dose|before (?:the )?(?:morning |evening |next )?dose)\b", re.IGNORECASE)
_HOURS_AFTER = re.compile(r"(\d{1,2}(?:[.,]\d+)?)\s*(?:h|hr|hrs|hours?)\s+(?:after|post|since)\b", re.IGNORECASE)
_LAST_DOSE_CLOCK = re.compile(r"last dose[^0-9]{0,24}(\d{1,2})[:h.](\d{2})", re.IGNORECASE)
_CLOCK = re.compile(r"T(\d{2}):(\d{2})")


@dataclass(frozen=True)
class Timing:
    """What the record says about when the level was drawn relative to the last dose."""

    kind: str  # "recorded" | "trough" | "unknown"
    hours_after_dose: float | None = None  # recorded kind only

    def describe(self) -> str:
        if self.kind == "recorded" and self.hours_after_dose is not None:
            if self.hours_after_dose < 0:
                return f"drawn {-self.hours_after_dose:.1f} h before the recorded dose time"
            return f"{self.hours_after_dose:.1f} h after a dose"
        if self.kind == "trough":
            return "trough"
        return "time since the dose unknown"


@dataclass(frozen=True)
class LevelUsed:
    """One measured level with the dose regime and body size it is read against."""

    source: str
    measured_on: date
    mg_per_l: float
    timing: Timing
    mg_per_day: float
    doses_per_day: int
    previous_mg_per_day: float
    doses_of_current: int  # doses of the current order taken before the draw
    weight_kg: float
    egfr: float | None

    @property
    def tau_h(self) -> float:
        return pk.HOURS_PER_DAY / self.doses_per_day


Interval = tuple[float, float, float]  # (central value, 5th, 95th percentile)


@dataclass(frozen=True)
class LevelAssessment:
    """What the measured levels say about this child, at the decision date ``as_of``.

    ``problems`` non-empty means no estimate (``has_estimate`` False): the card names them instead.
    ``clearance_l_per_h`` is the MAP individual CL/F with its 90% posterior interval; ``volume_l`` the
    same for V/F, reported only when the levels inform it (``volume_informed``). ``typical`` is a
    typical child's trough on the dose the latest level was drawn on (median, 90% interval between
    children). ``interpretation`` holds plain-language readings ("non-trough sample? …").
    """

    as_of: date
    levels: tuple[LevelUsed, ...] = ()
    problems: tuple[Problem, ...] = ()
    interpretation: tuple[str, ...] = ()
    weight_kg: float | None = None
    egfr: float | None = None
    doses_per_day: int = DEFAULT_DOSES_PER_DAY
    typical: Interval | None = None
    typical_clearance_l_per_h: float | None = None
    clearance_l_per_h: Interval | None = None
    volume_l: Interval | None = None
    volume_informed: bool = False
    latest_percentile: float | None = None  # where the latest level falls among typical children (0..1)
    own_percentile: float | None = None  # where it falls among what this child's earlier levels predict
    _eta: Array | None = field(default=None, repr=False, compare=False)  # posterior grid points (n, 2)
    _weights: Array | None = field(default=None, repr=False, compare=False)
    _predictions: _Predictions | None = field(default=None, repr=False, compare=False)  # made from _eta and _weights

    @property
    def has_estimate(self) -> bool:
        return not self.problems and self._eta is not None and self.weight_kg is not None

    @property
    def latest(self) -> LevelUsed | None:
        return self.levels[-1] if self.levels else None

    def individual_trough(self, mg_per_day: float) -> Interval | None:
        """This child's predicted steady-state trough (mg/L) on ``mg_per_day``: (median, 5th, 95th).

        Today's weight and eGFR, the current number of doses a day, the posterior of this child's
        CL/F and V/F (parameter uncertainty; the interval is where the child's true trough lies, not
        a future measurement's). None when there is no estimate (see ``problems``).
        """
        return self._predict(mg_per_day, "trough")

    def individual_average(self, mg_per_day: float) -> Interval | None:
        """This child's predicted steady-state average concentration (mg/L): (median, 5th, 95th)."""
        return self._predict(mg_per_day, "average")

    def typical_trough(self, mg_per_day: float) -> Interval | None:
        """A typical child's trough at today's weight and eGFR: (median, 5th, 95th) between children."""
        if self.weight_kg is None or mg_per_day <= 0:
            return None
        return _prior_quantiles(_typical_troughs(mg_per_day, self.weight_kg, self.egfr, self.doses_per_day))

    def decision_problems(self) -> list[dict[str, str]]:
        """The problems in the shape of the card decision's ``problems`` (CONTRACT §1)."""
        kinds = {ProblemKind.UNKNOWN_UNIT: "unreadable", ProblemKind.UNREADABLE_DOSE: "unreadable", ProblemKind.MISSING: "missing"}
        return [{"kind": kinds.get(p.kind, "implausible"), "item": "levetiracetam level", "detail": p.message} for p in self.problems]

    def _predict(self, mg_per_day: float, which: str) -> Interval | None:
        if not self.has_estimate or self.weight_kg is None or self._eta is None or self._weights is None:
            return None
        if self._predictions is None:
            typical = pk.typical_parameters(self.weight_kg, self.egfr)
            return _Predictions.of(float(typical.clearance), float(typical.volume), self.doses_per_day, self._eta, self._weights).at(mg_per_day, which)
        predictions = self._predictions
        return predictions.at(mg_per_day, which)


@dataclass(frozen=True)
class _Predictions:
    """This child's steady-state trough and average over the posterior grid on today's regimen, for
    any dose: the dose-free factors of ``pharmacokinetics.concentration`` at one interval after the
    dose and of ``steady_state_of``'s average, each already in its values' order with the posterior's
    cumulative shares. Made once per assessment, so each dose the card asks about costs a scaling and
    an interpolation (the same numbers as evaluating the model at that dose)."""

    doses_per_day: int
    trough_denominator: Array  # V/F (ka − k), in the troughs' order
    trough_series: Array  # the accumulated doses' Bateman terms at t = tau, same order
    trough_shares: Array
    average_denominator: Array  # 24 h × CL/F, in the averages' order
    average_shares: Array

    @classmethod
    def of(cls, typical_cl: float, typical_v: float, doses_per_day: int, eta: Array, weights: Array) -> _Predictions:
        """From the typical CL/F and V/F at today's weight and eGFR and the posterior grid."""
        cl = typical_cl * np.exp(eta[:, 0])
        v = typical_v * np.exp(eta[:, 1])
        ka, tau = pk.KA_PER_H, pk.HOURS_PER_DAY / doses_per_day
        k = cl / v
        denominator = v * (ka - k)
        series = np.exp(-k * tau) / (1.0 - np.exp(-k * tau)) - np.exp(-ka * tau) / (1.0 - np.exp(-ka * tau))
        trough_order = np.argsort(ka / denominator * series)
        average = pk.HOURS_PER_DAY * cl
        average_order = np.argsort(1.0 / average)
        return cls(doses_per_day, denominator[trough_order], series[trough_order], _shares(weights[trough_order]),
                   average[average_order], _shares(weights[average_order]))

    def at(self, mg_per_day: float, which: str) -> Interval:
        if mg_per_day <= 0:
            return (0.0, 0.0, 0.0)
        if which == "trough":
            values = mg_per_day / self.doses_per_day * pk.KA_PER_H / self.trough_denominator * self.trough_series
            return _interpolated(values, self.trough_shares)
        return _interpolated(mg_per_day / self.average_denominator, self.average_shares)


def predicted_trough_mg_l(assessment: LevelAssessment | None, mg_per_day: float | None) -> float | None:
    """This child's median predicted trough (mg/L) on ``mg_per_day``; None without an estimate or dose."""
    if assessment is None or mg_per_day is None:
        return None
    predicted = assessment.individual_trough(mg_per_day)
    return None if predicted is None else predicted[0]


# --- Entry point --------------------------------------------------------------------------------
def estimate_at(timeline: PatientTimeline, as_of: date) -> LevelAssessment | None:
    """The assessment of the levetiracetam levels measured up to ``as_of`` (within a year).

    None when no level was measured in that window. Otherwise an assessment that either carries an
    estimate or names the problems that prevent one. Never raises on the timeline's content.
    """
    recorded = _recorded_levels(timeline, as_of)
    if not recorded:
        return None
    spans = _dose_history(timeline)
    weight, egfr, doses_per_day = _today(timeline, as_of, spans)
    problems: list[Problem] = []
    used: list[LevelUsed] = []
    for level in recorded[-MAX_LEVELS:]:
        read = _read_level(level, timeline, spans)
        if isinstance(read, Problem):
            problems.append(read)
        else:
            used.append(read)
    if weight is None:
        problems.append(Problem(ProblemKind.MISSING, "no body weight: the level cannot be read against a child's size", f"Patient/{timeline.patient_id}", ""))
    if problems or not used or weight is None:
        return LevelAssessment(as_of, tuple(used), tuple(problems), weight_kg=weight, egfr=egfr, doses_per_day=doses_per_day)
    try:
        return _assess(as_of, used, weight, egfr, doses_per_day)
    except (ValueError, ArithmeticError) as error:  # a value the checks above did not foresee: say so, never raise
        failed = Problem(ProblemKind.INVALID_VALUE, f"the levels could not be fitted ({type(error).__name__})", used[-1].source, "")
        return LevelAssessment(as_of, tuple(used), (failed,), weight_kg=weight, egfr=egfr, doses_per_day=doses_per_day)


def _assess(as_of: date, used: list[LevelUsed], weight: float, egfr: float | None, doses_per_day: int) -> LevelAssessment:
    model = _LevelModel(used)
    coarse_prior, coarse_levels = model.log_terms(_COARSE_POINTS)  # the earlier levels' posterior shares them
    eta, weights, eta_map = model.posterior(coarse_log_p=_summed(coarse_prior, coarse_levels))
    latest = used[-1]
    typical_cl, v_typical = model.typical_at(weight, egfr)
    (cl_low, cl_high), (v_low, v_high) = _marginal_intervals(eta, weights)
    clearance = (typical_cl * math.exp(eta_map[0]), typical_cl * math.exp(cl_low), typical_cl * math.exp(cl_high))
    mean_v = float(np.sum(weights * eta[:, 1]))
    sd_v = math.sqrt(max(float(np.sum(weights * (eta[:, 1] - mean_v) ** 2)), 0.0))
    percentile, latest_typical = model.prior_reading(len(used) - 1)
    last = len(used) - 1
    own = (model.levels_between(0, last).predictive_percentile(model.levels_between(last, last + 1), _summed(coarse_prior, coarse_levels[:last]))
           if last else None)
    if latest_typical is None:
        latest_typical = _typical_troughs(latest.mg_per_day, latest.weight_kg, latest.egfr, latest.doses_per_day)
    predictions = _Predictions.of(typical_cl, v_typical, doses_per_day, eta, weights)
    return LevelAssessment(
        as_of, tuple(used), (), _readings(latest, percentile, own, predictions.at(latest.mg_per_day, "trough")),
        weight, egfr, doses_per_day,
        typical=_prior_quantiles(latest_typical),
        typical_clearance_l_per_h=typical_cl,
        clearance_l_per_h=clearance,
        volume_l=(v_typical * math.exp(eta_map[1]), v_typical * math.exp(v_low), v_typical * math.exp(v_high)),
        volume_informed=sd_v < 0.7 * OMEGA_V,  # the levels narrowed V/F's SD by 30% or more
        latest_percentile=percentile,
        own_percentile=own,
        _eta=eta, _weights=weights, _predictions=predictions,
    )


# --- Reading the timeline -----------------------------------------------------------------------
def _recorded_levels(timeline: PatientTimeline, as_of: date) -> list[DrugLevel]:
    """Levels on or before ``as_of`` within the look-back window, oldest first, one per Observation."""
    window_start = as_of - timedelta(days=LEVEL_LOOKBACK_DAYS)
    levels = list(timeline.lev_levels)
    if not levels:  # a timeline not read from FHIR (the simulator's own): the visits' carried levels
        seen: set[date] = set()
        for visit in timeline.visits:
            measured = visit.labs.get("lev_level")
            if measured is not None and measured.measured_on not in seen:
                seen.add(measured.measured_on)
                levels.append(DrugLevel(f"level of {measured.measured_on.isoformat()}", measured.measured_on, measured.value))
    chosen = [lv for lv in levels if window_start <= lv.measured_on <= as_of]
    return sorted(chosen, key=lambda lv: (lv.measured_on, lv.effective))


def _dose_history(timeline: PatientTimeline) -> list[DoseSpan]:
    """The levetiracetam orders placed in time, from FHIR; else rebuilt from the visits' orders."""
    if timeline.lev_history:
        return sorted(timeline.lev_history, key=lambda s: (s.start, s.source))
    spans: list[DoseSpan] = []
    for visit in timeline.visits:
        order = visit.lev
        if spans and (order is None or order.source != spans[-1].source) and spans[-1].end is None:
            spans[-1] = DoseSpan(spans[-1].source, spans[-1].start, visit.date, spans[-1].mg_per_day, spans[-1].doses_per_day)
        if order is not None and (not spans or order.source != spans[-1].source):
            spans.append(DoseSpan(order.source, order.authored_on or visit.date, None, order.mg_per_day, order.doses_per_day))
    return spans


def _today(timeline: PatientTimeline, as_of: date, spans: Sequence[DoseSpan]) -> tuple[float | None, float | None, int]:
    """Weight, eGFR and doses a day at the decision point (the last visit on or before ``as_of``)."""
    visits = [v for v in timeline.visits if v.date <= as_of]
    weight = next((v.weight_kg for v in reversed(visits) if v.weight_kg is not None), None)
    egfr = next((v.egfr for v in reversed(visits) if v.egfr is not None), None)
    current = _in_effect(spans, as_of + timedelta(days=1))
    per_day = current.doses_per_day if current is not None and not isinstance(current, Problem) else None
    return weight, egfr, _doses_per_day(per_day)


def _doses_per_day(value: float | None) -> int:
    if value is None or not math.isfinite(value) or value < 1:
        return DEFAULT_DOSES_PER_DAY
    return round(value)


def _in_effect(spans: Sequence[DoseSpan], day: date) -> DoseSpan | Problem | None:
    """The order the child took on ``day`` before any change made that day (started before it).

    The latest-started order wins (a newer order supersedes an older one); two orders started the
    same day with different doses contradict each other.
    """
    started = [s for s in spans if s.start < day]
    if not started:
        return None
    latest_start = max(s.start for s in started)
    tied = [s for s in started if s.start == latest_start]
    doses = {s.mg_per_day for s in tied}
    if len(doses) > 1 and None in doses:
        return Problem(ProblemKind.UNREADABLE_DOSE, f"a levetiracetam order started on {latest_start.isoformat()} has an unreadable dose", ", ".join(s.source for s in tied), "dosageInstruction")
    if len(doses) > 1:
        return Problem(ProblemKind.AMBIGUOUS, f"levetiracetam orders started on {latest_start.isoformat()} give different doses "
                       f"({', '.join(_fmt(d) for d in sorted(d for d in doses if d is not None))} mg/day): which one was taken is unknown",
                       ", ".join(s.source for s in tied), "")
    chosen = tied[0]
    if chosen.end is not None and chosen.end < chosen.start:
        return Problem(ProblemKind.AMBIGUOUS, "levetiracetam order ends before it starts", chosen.source, "dosageInstruction.timing.repeat.boundsPeriod")
    return chosen if chosen.end is None or chosen.end >= day else None


def _read_level(level: DrugLevel, timeline: PatientTimeline, spans: Sequence[DoseSpan]) -> LevelUsed | Problem:
    where = level.source
    if level.problem is not None:  # the mapping's own words name its internal key; the card needs the drug's name
        problem = level.problem
        return Problem(problem.kind, problem.message.replace("lev_level", f"levetiracetam level of {level.measured_on.isoformat()}"), problem.resource, problem.path)
    value = level.mg_per_l
    if value is None or not math.isfinite(value) or value < 0 or value > ABSURD_LEVEL_MG_L:
        return Problem(ProblemKind.INVALID_VALUE, f"levetiracetam level {value!s} mg/L is not a possible measurement (0–{ABSURD_LEVEL_MG_L:g})", where, "valueQuantity.value")
    day = level.measured_on
    if not spans or day < spans[0].start:
        return Problem(ProblemKind.INVALID_VALUE, f"levetiracetam level dated {day.isoformat()}, before any levetiracetam order", where, "effectiveDateTime")
    order = _in_effect(spans, day)
    if isinstance(order, Problem):
        return order
    if order is None:
        if all(s.start >= day for s in spans):
            return Problem(ProblemKind.AMBIGUOUS, f"levetiracetam level drawn on {day.isoformat()}, the day levetiracetam started: not at steady state and the doses taken are unknown", where, "effectiveDateTime")
        return Problem(ProblemKind.AMBIGUOUS, f"levetiracetam level {_fmt(value)} mg/L on {day.isoformat()} but no levetiracetam order in effect that day: the dose history and the level disagree", where, "effectiveDateTime")
    if order.mg_per_day is None:
        return Problem(ProblemKind.UNREADABLE_DOSE, "the levetiracetam dose taken when the level was drawn is unreadable", order.source, "dosageInstruction")
    if value == 0:
        return Problem(ProblemKind.INVALID_VALUE, f"levetiracetam undetectable (0 mg/L) on {_fmt(order.mg_per_day)} mg/day: not fitted; is the child taking it?", where, "valueQuantity.value")
    if order.doses_per_day is not None and (not math.isfinite(order.doses_per_day) or order.doses_per_day < 1):
        return Problem(ProblemKind.UNREADABLE_DOSE, "a levetiracetam regimen of fewer than one dose a day: the time since the last dose cannot be placed", order.source, "dosageInstruction.timing")
    per_day = _doses_per_day(order.doses_per_day)
    previous = _in_effect(spans, order.start)
    previous_mg = previous.mg_per_day if isinstance(previous, DoseSpan) and previous.mg_per_day is not None else 0.0
    weight, egfr = _size_on(timeline.visits, day)
    if weight is None:
        return Problem(ProblemKind.MISSING, f"no body weight near the level of {day.isoformat()}", where, "")
    timing = _timing(level, order, per_day)
    return LevelUsed(where, day, float(value), timing, float(order.mg_per_day), per_day, float(previous_mg),
                     max(1, (day - order.start).days * per_day), weight, egfr)


def _size_on(visits: Sequence[Visit], day: date) -> tuple[float | None, float | None]:
    """Weight and eGFR at the visit on or before ``day`` (else the first visit after it)."""
    before = [v for v in visits if v.date <= day and v.weight_kg is not None]
    chosen = before[-1] if before else next((v for v in visits if v.weight_kg is not None), None)
    return (chosen.weight_kg, chosen.egfr) if chosen is not None else (None, None)


def _timing(level: DrugLevel, order: DoseSpan, doses_per_day: int) -> Timing:
    """Hours since the last dose from the note or the clock times, else a trough flag, else unknown."""
    tau = pk.HOURS_PER_DAY / doses_per_day
    note = level.note or ""
    hours = _HOURS_AFTER.search(note)
    if hours:
        value = float(hours.group(1).replace(",", "."))
        if 0 <= value <= 48:
            return Timing("recorded", value)
    drawn = _CLOCK.search(level.effective or "")
    if drawn:
        drawn_h = int(drawn.group(1)) + int(drawn.group(2)) / 60
        last = _LAST_DOSE_CLOCK.search(note)
        dose_clocks = [int(last.group(1)) + int(last.group(2)) / 60] if last else _order_clocks(order.times_of_day)
        dose_clocks = [c for c in dose_clocks if 0 <= c < 24]
        if dose_clocks and 0 <= drawn_h < 24:
            since = min((drawn_h - c) % 24 for c in dose_clocks)
            if since > tau + TROUGH_LATE_H and since - 24 > -TROUGH_EARLY_H:
                since -= 24  # a dose time recalled just after the draw: drawn just before or just after it
            return Timing("recorded", round(since, 2))
    if _TROUGH_WORDS.search(note):
        return Timing("trough")
    return Timing("unknown")


def _order_clocks(times: Sequence[str]) -> list[float]:
    clocks = []
    for text in times:
        parts = text.split(":")
        try:
            clocks.append(int(parts[0]) + int(parts[1]) / 60)
        except (ValueError, IndexError):
            continue
    return clocks


# --- The model ----------------------------------------------------------------------------------
class _LevelModel:
    """Log posterior of (eta_cl, eta_v) given the levels, with the sampling times integrated out."""

    _ROW_ARRAYS = ("hours", "log_w", "tau", "dose", "previous_dose", "shift", "cl", "v", "log_y", "absorbed_now",
                   "absorbed_before", "change", "minus_hours", "minus_hours_before")
    _LEVEL_ARRAYS = ("level_tau", "level_shift", "level_cl", "level_v", "minus_level_tau")

    def __init__(self, levels: Sequence[LevelUsed]) -> None:
        # One row per (level, sampling time); the levels' own terms are per level, repeated on their rows.
        grids = [_hour_grid(level.timing, level.tau_h) for level in levels]
        self.typical: dict[tuple[float, float | None], tuple[float, float]] = {}  # (weight, eGFR): typical CL/F, V/F
        for level in levels:
            self.typical_at(level.weight_kg, level.egfr)
        typical = self.typical
        per_level = np.asarray([(level.tau_h, level.mg_per_day / level.doses_per_day, level.previous_mg_per_day / level.doses_per_day,
                                 level.doses_of_current * level.tau_h, *typical[level.weight_kg, level.egfr], math.log(level.mg_per_l))
                                for level in levels], dtype=float).reshape(-1, 7)
        self.n_levels = len(levels)
        counts = [hours.size for hours, _ in grids]
        self.index = np.repeat(np.arange(self.n_levels), counts)
        self.starts = np.cumsum([0, *counts[:-1]]) if counts else np.zeros(0, dtype=int)  # rows are grouped by level
        self.hours = np.concatenate([hours for hours, _ in grids]) if grids else np.empty(0)
        self.log_w = np.log(np.concatenate([weights for _, weights in grids])) if grids else np.empty(0)
        self.level_tau, self.level_shift, self.level_cl, self.level_v = per_level[:, 0], per_level[:, 3], per_level[:, 4], per_level[:, 5]
        self.tau, self.dose, self.previous_dose, self.shift, self.cl, self.v, self.log_y = per_level[self.index].T

        # Terms that do not depend on the individual factors, computed once per fit.
        ka = pk.KA_PER_H
        self.absorbed_now = np.exp(-ka * self.hours) / (1 - np.exp(-ka * self.tau))
        self.absorbed_before = np.exp(-ka * (self.hours + self.shift)) / (1 - np.exp(-ka * self.tau))
        # The rows of one level share its regime and body size, so the elimination terms are per level and
        # only the sampling times are per row; negated once here (exact) so that each call saves a pass.
        self.change = self.previous_dose - self.dose
        self.minus_hours = -self.hours
        self.minus_hours_before = -(self.hours + self.shift)
        self.minus_level_tau = -self.level_tau

    def levels_between(self, first: int, stop: int) -> _LevelModel:
        """The model of levels ``first`` to ``stop - 1`` alone: the same rows and terms, sliced."""
        row_start = int(self.starts[first])
        rows = slice(row_start, int(self.starts[stop]) if stop < self.n_levels else self.hours.size)
        part = object.__new__(_LevelModel)
        part.typical = self.typical
        part.n_levels = stop - first
        part.index = self.index[rows] - first
        part.starts = self.starts[first:stop] - row_start
        for name in self._ROW_ARRAYS:
            setattr(part, name, getattr(self, name)[rows])
        for name in self._LEVEL_ARRAYS:
            setattr(part, name, getattr(self, name)[first:stop])
        return part

    def typical_at(self, weight: float, egfr: float | None) -> tuple[float, float]:
        """The typical child's CL/F and V/F at this weight and eGFR (levels of one visit share them)."""
        known = self.typical.get((weight, egfr))
        if known is None:
            params = pk.typical_parameters(weight, egfr)
            known = self.typical[weight, egfr] = (float(params.clearance), float(params.volume))
        return known

    def log_concentration(self, eta: Array) -> Array:
        """log C at every (grid point, row): shape (points, rows)."""
        return self._log_concentration_by_row(np.ascontiguousarray(eta.T)).T

    def _log_concentration_by_row(self, eta_by_axis: Array) -> Array:
        """log C at every (row, grid point): shape (rows, points), so that each row's points are contiguous
        and the sums over a level's rows are sums of whole rows. Steps in place, with the same operations
        as the whole-array expressions (products and sums taken in either order are the same numbers)."""
        ka = pk.KA_PER_H
        factors = np.exp(eta_by_axis)  # (2, points)
        v = self.level_v[:, None] * factors[1]  # (levels, points)
        k = self.level_cl[:, None] * factors[0]
        k /= v
        gap = ka - k
        if (np.abs(gap) < 1e-6).any():  # absorption and elimination equal: the Bateman form's limit
            k = np.where(np.abs(gap) < 1e-6, ka * (1 - 1e-6), k)
            gap = ka - k
        scale = np.divide(ka, np.multiply(v, gap, out=v), out=v)
        accumulate = np.multiply(k, self.minus_level_tau[:, None], out=gap)
        np.exp(accumulate, out=accumulate)
        np.subtract(1, accumulate, out=accumulate)
        np.divide(1, accumulate, out=accumulate)
        # Doses before the current order: only where they have not washed out (e^-16 of the level).
        recent = k.min(axis=1) * self.level_shift < _WASHED_OUT
        if self.n_levels > 1:  # one row per sampling time; with one level the (1, points) rows broadcast
            k, scale, accumulate, recent = k[self.index], scale[self.index], accumulate[self.index], recent[self.index]
        c = self._doses(k, self.minus_hours[:, None], accumulate, self.absorbed_now[:, None], scale, self.dose[:, None])
        if recent.all():
            c += self._doses(k, self.minus_hours_before[:, None], accumulate, self.absorbed_before[:, None], scale, self.change[:, None])
        elif recent.any():  # some levels only (several levels: the rows are per sampling time already)
            rows = np.flatnonzero(recent)
            c[rows] += self._doses(k[rows], self.minus_hours_before[rows, None], accumulate[rows], self.absorbed_before[rows, None],
                                   scale[rows], self.change[rows, None])
        np.maximum(c, 1e-9, out=c)
        return np.log(c, out=c)

    @staticmethod
    def _doses(k: Array, minus_hours: Array, accumulate: Array, absorbed: Array, scale: Array, dose: Array) -> Array:
        """dose · scale · (exp(−k·t) · accumulate − absorbed): a regime's level, as a new array."""
        c = k * minus_hours
        np.exp(c, out=c)
        c *= accumulate
        c -= absorbed
        c *= scale
        c *= dose
        return c

    def log_posterior(self, eta: Array) -> Array:
        return _summed(*self.log_terms(eta))

    def log_terms(self, eta: Array) -> tuple[Array, Array]:
        """The log prior at every point (points,) and each level's log likelihood (levels, points), the
        sampling times integrated out: a model of some of the levels has the same terms for them."""
        eta_by_axis = np.ascontiguousarray(eta.T)  # (2, points)
        per_row = np.subtract(self.log_y[:, None], self._log_concentration_by_row(eta_by_axis))  # (rows, points)
        per_row /= SIGMA
        np.square(per_row, out=per_row)
        per_row *= 0.5
        np.subtract(self.log_w[:, None], per_row, out=per_row)
        top = np.maximum.reduceat(per_row, self.starts, axis=0)  # (levels, points)
        per_row -= top[self.index] if self.n_levels > 1 else top
        # Terms below e^-700 of their level's largest cannot change its sum (of at least 1) by a bit; held
        # there, exp skips its slow path for results that underflow.
        np.maximum(per_row, _NEGLIGIBLE_TERM, out=per_row)
        np.exp(per_row, out=per_row)
        per_level = np.add.reduceat(per_row, self.starts, axis=0)
        np.log(per_level, out=per_level)
        per_level += top
        standardised = eta_by_axis / _PRIOR_SD  # a new array: eta_by_axis may be the caller's eta itself
        np.square(standardised, out=standardised)
        log_prior = standardised[0] + standardised[1]
        log_prior *= -0.5
        return log_prior, per_level

    def posterior(self, *, refine: bool = True, coarse_log_p: Array | None = None) -> tuple[Array, Array, Array]:
        """Fine posterior grid (points, 2), its normalised weights, and the MAP (2,); without
        ``refine`` the MAP is the best grid point (enough where only the grid's weights are used).
        ``coarse_log_p``: the log posterior on the coarse grid where it is known already."""
        log_p = self.log_posterior(_COARSE_POINTS) if coarse_log_p is None else coarse_log_p
        keep = _COARSE_POINTS[log_p > log_p.max() - _NEGLIGIBLE_LOG_DENSITY]
        low, high = keep.min(axis=0) - _COARSE_STEP, keep.max(axis=0) + _COARSE_STEP
        fine = _grid((low[0], high[0]), (low[1], high[1]), _FINE)
        log_fine = self.log_posterior(fine)
        best = int(np.argmax(log_fine))
        weights = np.exp(log_fine - log_fine[best])
        weights /= weights.sum()
        start = fine[best]
        if not refine:
            return fine, weights, start
        cell = (high - low) / (np.asarray(_FINE) - 1)
        i, j = divmod(best, _FINE[1])
        guess = None
        if 0 < i < _FINE[0] - 1 and 0 < j < _FINE[1] - 1:  # the grid's own 3x3 around its best point: a first step for free
            around = log_fine.reshape(_FINE)[i - 1:i + 2, j - 1:j + 2]
            guess, _ = _ascent_step(around[_STENCIL_CELLS], cell, cell)
        return fine, weights, self.mode_near(start, cell, guess, float(log_fine[best]))

    def mode_near(self, start: Array, cell: Numbers, first_step: Numbers | None = None, start_log_p: float = -math.inf) -> Array:
        """The posterior's mode near ``start`` (the best fine-grid point): Newton's method on the log
        posterior, its gradient and Hessian by central differences from one call on a 3x3 stencil.

        ``first_step`` (from the fine grid's values around ``start``, whose log posterior is
        ``start_log_p``) is tried first; where it does not raise the log posterior the search starts
        at ``start`` itself. A step is at most a grid cell on each axis (``cell``: the fine grid's
        spacing; the best grid point is within a cell of the mode), it is halved while it does not raise
        the log posterior, and where the Hessian is not negative definite the step follows the gradient.
        It stops when the Newton step is below :data:`_MODE_TOLERANCE` and returns the point with that
        last step taken (not evaluated: uphill on the local quadratic, and the mode is then within about
        the step's square); otherwise never a point with a lower log posterior than ``start``.
        """
        best_x, best_log_p = (float(start[0]), float(start[1])), -math.inf  # plain floats: two numbers need no arrays
        x, step = best_x, None
        if first_step is not None:
            step = (float(first_step[0]), float(first_step[1]))
            x, best_log_p = (best_x[0] + step[0], best_x[1] + step[1]), start_log_p
        spacing = (_DERIVATIVE_STEP, _DERIVATIVE_STEP)
        for _ in range(_MODE_ITERATIONS):
            log_p = self.log_posterior(_STENCIL + x).tolist()
            centre = log_p[0]
            if not (math.isfinite(centre) and centre >= best_log_p):  # the last step went too far: half of it
                if step is None:
                    break
                if first_step is not None:  # the grid's guess did not help: from the grid point itself
                    first_step, best_log_p, x, step = None, -math.inf, best_x, None
                    continue
                step = (step[0] / 2, step[1] / 2)
                x = (best_x[0] + step[0], best_x[1] + step[1])
                continue
            first_step = None
            best_x, best_log_p = x, centre
            found, newton = _ascent_step(log_p, spacing, cell)
            if found is None:
                break
            step = found
            if newton and abs(step[0]) < _MODE_TOLERANCE and abs(step[1]) < _MODE_TOLERANCE:
                return np.asarray([best_x[0] + step[0], best_x[1] + step[1]])
            x = (best_x[0] + step[0], best_x[1] + step[1])
        return np.asarray(best_x)

    def predictive_percentile(self, new: _LevelModel, coarse_log_p: Array | None = None) -> float:
        """Fraction of this posterior's predictions for the one level of ``new`` (its sampling time and
        residual error included) that fall below the measured value: how a new level compares with the
        earlier ones."""
        eta, weights, _ = self.posterior(refine=False, coarse_log_p=coarse_log_p)
        below = ndtr((new.log_y[None, :] - new.log_concentration(eta)) / SIGMA)  # (points, sampling times)
        return float(np.sum(weights[:, None] * np.exp(new.log_w)[None, :] * below))

    def prior_reading(self, level: int) -> tuple[float, Array | None]:
        """The fraction of typical children (prior, sampling time and residual error) below this level,
        and the steady-state troughs (mg/L) of the same typical children on its dose (one per draw;
        None where some child's elimination equals absorption, left to ``pharmacokinetics``)."""
        first, end = int(self.starts[level]), int(self.starts[level + 1]) if level + 1 < self.n_levels else self.hours.size
        pick = first + _sampling_time_picks(self.log_w[first:end])
        # One level: one regime and body size, so only the sampling time varies between the draws. Each step
        # in place (2,000 draws): the same arithmetic as the whole-array expressions, without their temporaries.
        ka = pk.KA_PER_H
        v = self.v[first] * _PRIOR_V_FACTORS
        k = self.cl[first] * _PRIOR_CL_FACTORS
        k /= v
        gap = ka - k
        dose, previous, tau = self.dose[first], self.previous_dose[first], self.tau[first]
        troughs: Array | None = None
        shared = not (np.abs(gap) < 1e-6).any()
        if not shared:  # absorption and elimination equal: the Bateman form's limit
            k = np.where(np.abs(gap) < 1e-6, ka * (1 - 1e-6), k)
            gap = ka - k
        denominator = np.multiply(v, gap, out=v)
        exp_tau = np.multiply(k, -tau)
        np.exp(exp_tau, out=exp_tau)
        accumulation = np.subtract(1, exp_tau)
        if shared:  # pharmacokinetics.concentration at t = tau: the same operations, on the terms shared here
            troughs = np.divide(dose * ka, denominator)
            exp_tau /= accumulation
            exp_tau -= np.exp(-ka * tau) / (1.0 - np.exp(-ka * tau))
            troughs *= exp_tau
        scale = np.divide(ka, denominator, out=gap)
        # Per mg, a dose every tau hours forever, t hours after the latest one: the sum over past doses of the
        # single-dose Bateman function (for t > tau, the level when the next dose is late). Subtracting the same
        # series shifted by n·tau leaves the n most recent doses; the two series share k and the accumulation.
        now = self._series(k, self.minus_hours[pick], accumulation, self.absorbed_now[pick], scale)
        # The doses before the order, for the draws where they are part of the level a double holds (elsewhere
        # they are below its last bit and c = dose · now exactly).
        reach = np.flatnonzero(k * self.shift[first] <= _BELOW_LAST_BIT + math.log1p(previous / dose)) if dose > 0 else np.arange(k.size)
        if reach.size == k.size:
            before = self._series(k, self.minus_hours_before[pick], accumulation, self.absorbed_before[pick], scale)
            c = np.subtract(now, before, out=now)
            c *= dose
            c += np.multiply(before, previous, out=before)
        else:
            c = np.multiply(now, dose)
            if reach.size:
                reached = pick[reach]
                before = self._series(k[reach], self.minus_hours_before[reached], accumulation[reach], self.absorbed_before[reached], scale[reach])
                part = np.subtract(now[reach], before)
                part *= dose
                part += np.multiply(before, previous, out=before)
                c[reach] = part
        log_c = np.log(np.maximum(c, 1e-9, out=c), out=c)
        log_c += _PRIOR_RESIDUALS
        return float(np.count_nonzero(log_c < self.log_y[first])) / log_c.size, troughs

    @staticmethod
    def _series(k: Array, minus_hours: Array, accumulation: Array, absorbed: Array, scale: Array) -> Array:
        """scale · (exp(−k·t) / accumulation − absorbed), in place in ``minus_hours`` (a fresh array)."""
        series = np.multiply(k, minus_hours, out=minus_hours)
        np.exp(series, out=series)
        series /= accumulation
        series -= absorbed
        series *= scale
        return series


def _sampling_time_picks(log_w: Array) -> Array:
    """For each fixed draw, its sampling time among a level's (by inverse CDF of their weights ``exp(log_w)``)."""
    for known, picks in _KNOWN_PICKS:  # the three sampling-time grids _hour_grid makes: their picks are constants
        if np.array_equal(known, log_w):
            return picks
    cumulative = np.cumsum(np.exp(log_w))
    return np.minimum(np.searchsorted(cumulative / cumulative[-1], _PRIOR_UNIFORMS), log_w.size - 1)


def _summed(log_prior: Array, per_level: Array) -> Array:
    """The log posterior from its terms (``_LevelModel.log_terms``)."""
    return np.asarray(log_prior + (per_level.sum(axis=0) if len(per_level) > 1 else per_level[0]))


def _ascent_step(log_p: Numbers, spacing: Numbers, cell: Numbers) -> tuple[tuple[float, float] | None, bool]:
    """A step up the log posterior from the centre of a 3x3 stencil (``log_p`` in ``_STENCIL``'s order,
    ``spacing`` its steps on the two axes), scaled to at most a ``cell`` on each axis, and whether it is
    Newton's (the maximum of the local quadratic, -H⁻¹g) or, where the Hessian is not negative
    definite, along the gradient. None where the differences are not finite."""
    f = [float(value) for value in log_p]
    h0, h1, cell0, cell1 = float(spacing[0]), float(spacing[1]), float(cell[0]), float(cell[1])
    g0, g1 = (f[1] - f[2]) / (2 * h0), (f[3] - f[4]) / (2 * h1)
    h00, h11 = (f[1] - 2 * f[0] + f[2]) / h0**2, (f[3] - 2 * f[0] + f[4]) / h1**2
    h01 = (f[5] - f[6] - f[7] + f[8]) / (4 * h0 * h1)
    if not all(map(math.isfinite, (g0, g1, h00, h11, h01))):
        return None, False
    determinant = h00 * h11 - h01 * h01
    newton = h00 < 0 and determinant > 0
    if newton:
        d0, d1 = -(h11 * g0 - h01 * g1) / determinant, -(h00 * g1 - h01 * g0) / determinant
    else:
        length = math.hypot(g0 / cell0, g1 / cell1) or 1.0
        d0, d1 = g0 / length, g1 / length
    longest = max(abs(d0) / cell0, abs(d1) / cell1)
    if longest > 1:  # shortened as a whole: still uphill
        d0, d1 = d0 / longest, d1 / longest
    return (d0, d1), newton


def _hour_grid(timing: Timing, tau: float) -> tuple[Array, Array]:
    """Hours after the last dose and their weights (summing to 1) for a sampling-time distribution."""
    if timing.kind == "recorded" and timing.hours_after_dose is not None:
        hours = timing.hours_after_dose + DOSE_TIME_RECALL_SD_H * _GH_NODES
        # Before the recalled dose means after the one before it (a pre-dose draw).
        return np.maximum(np.where(hours < 0, hours + tau, hours), 0.05), _GH_WEIGHTS.copy()
    if timing.kind == "trough":
        low, high = max(tau - TROUGH_EARLY_H, 0.0), tau + TROUGH_LATE_H
        count = _TROUGH_POINTS
    else:
        low, high = 0.0, tau
        count = _UNKNOWN_TIME_POINTS
    edges = _spaced(low, high, count + 1)
    return (edges[:-1] + edges[1:]) / 2, np.full(count, 1.0 / count)


def _grid(cl_range: tuple[float, float], v_range: tuple[float, float], shape: tuple[int, int]) -> Array:
    """Every (eta_cl, eta_v) of a regular grid, eta_cl major: shape (points, 2)."""
    points = np.empty((*shape, 2))
    points[:, :, 0] = _spaced(*cl_range, shape[0])[:, None]
    points[:, :, 1] = _spaced(*v_range, shape[1])[None, :]
    return points.reshape(-1, 2)


def _spaced(low: float, high: float, count: int) -> Array:
    """``np.linspace(low, high, count)`` for low < high and count > 1, the same numbers without its
    argument handling (a third of a grid's cost)."""
    values = np.arange(count, dtype=float)
    values *= (high - low) / (count - 1)
    values += low
    values[-1] = high
    return values


_COARSE_POINTS = _grid(*_COARSE_RANGES, _COARSE)
_KNOWN_PICKS: list[tuple[Array, Array]] = []
_KNOWN_PICKS.extend((np.log(weights), _sampling_time_picks(np.log(weights)))
                    for weights in (_GH_WEIGHTS, np.full(_TROUGH_POINTS, 1.0 / _TROUGH_POINTS), np.full(_UNKNOWN_TIME_POINTS, 1.0 / _UNKNOWN_TIME_POINTS)))
for _constant in (_COARSE_POINTS, _COARSE_STEP, _STENCIL, _PRIOR_SD, _PRIOR_DRAWS, _PRIOR_UNIFORMS, _PRIOR_CL_FACTORS, _PRIOR_V_FACTORS,
                  _PRIOR_RESIDUALS, _PRIOR_SHARES, _GH_NODES, _GH_WEIGHTS, *(array for pair in _KNOWN_PICKS for array in pair)):
    _constant.setflags(write=False)  # shared by every call: none may write into them


def _typical_troughs(mg_per_day: float, weight: float, egfr: float | None, doses_per_day: int) -> Array:
    """Steady-state troughs (mg/L) of the typical children of the fixed draws at this weight and eGFR."""
    typical = pk.typical_parameters(weight, egfr)
    params = pk.PKParameters(float(typical.clearance) * _PRIOR_CL_FACTORS, float(typical.volume) * _PRIOR_V_FACTORS, pk.KA_PER_H)
    return np.asarray(pk.concentration(pk.HOURS_PER_DAY / doses_per_day, np.full(len(_PRIOR_DRAWS), float(mg_per_day)), params, doses_per_day))


def _marginal_intervals(eta: Array, weights: Array) -> tuple[tuple[float, float], tuple[float, float]]:
    """90% intervals of eta_cl and eta_v on the fine grid (``_FINE``, eta_cl major): their marginals."""
    mass = weights.reshape(_FINE)
    return _cell_interval(eta[::_FINE[1], 0], mass.sum(axis=1)), _cell_interval(eta[:_FINE[1], 1], mass.sum(axis=0))


def _cell_interval(points: Array, mass: Array) -> tuple[float, float]:
    """90% interval of one coordinate from its marginal mass on increasing grid points, with the CDF
    linear within each cell (a grid point stands for the cell around it)."""
    half = points[1:] - points[:-1]  # np.diff's own arithmetic
    half /= 2
    edges = np.empty(points.size + 1)
    np.add(points[:-1], half, out=edges[1:-1])
    edges[0], edges[-1] = points[0] - half[0], points[-1] + half[-1]
    cdf = np.empty(points.size + 1)
    cdf[0] = 0.0
    np.add.accumulate(mass, out=cdf[1:])  # np.cumsum
    cdf /= cdf[-1]
    low, high = np.interp(INTERVAL, cdf, edges)
    return float(low), float(high)


def _shares(weights: Array) -> Array:
    """Cumulative shares of weighted values already sorted, each value at the middle of its weight."""
    cumulative = np.cumsum(weights) - 0.5 * weights
    cumulative /= cumulative[-1] if cumulative[-1] > 0 else 1.0
    return cumulative


def _interpolated(sorted_values: Array, shares: Array) -> Interval:
    """(median, 5th, 95th percentile) of sorted values with their cumulative shares."""
    median, low, high = np.interp([0.5, INTERVAL[0], INTERVAL[1]], shares, sorted_values)
    return float(median), float(low), float(high)


def _prior_quantiles(values: Array) -> Interval:
    """(median, 5th, 95th percentile) of one value per fixed draw, the draws weighing alike."""
    return _interpolated(np.sort(values), _PRIOR_SHARES)


# --- Interpretation and card lines ------------------------------------------------------------
def _readings(latest: LevelUsed, latest_percentile: float, own: float | None, trough_now: Interval) -> tuple[str, ...]:
    """Plain readings of the latest level: against this child's earlier levels when there are any
    (a drop from the child's own history, not a fast clearance, suggests missed doses), else against
    typical children on the dose. ``trough_now``: this child's predicted trough on the latest dose."""
    notes: list[str] = []
    share = own if own is not None else latest_percentile
    dose = _fmt(latest.mg_per_day)
    level = _fmt(latest.mg_per_l)
    whom = "this child's earlier levels predict" if own is not None else f"children on {dose} mg/day would show"
    early = latest.timing.kind == "unknown" or (latest.timing.hours_after_dose is not None and latest.timing.hours_after_dose < latest.tau_h - TROUGH_EARLY_H)
    if share < PERCENTILE_LOW:
        notes.append(f"poor adherence? {level} mg/L is lower than {_share(1 - share)} of what {whom}; missed doses are the usual cause"
                     + ("" if own is not None else " (or a fast clearance)"))
    elif share > PERCENTILE_HIGH:
        if early:
            notes.append(f"non-trough sample? {level} mg/L is higher than {_share(share)} of what {whom}; a level drawn a few hours "
                         "after a dose reads high")
        else:
            notes.append(f"slow clearance or more taken than ordered? {level} mg/L near the trough is higher than {_share(share)} of "
                         f"what {whom} (kidney function?)")
    elif own is not None and not PERCENTILE_LOW <= latest_percentile <= PERCENTILE_HIGH:
        side = "low" if latest_percentile < PERCENTILE_LOW else "high"
        notes.append(f"{side} for {dose} mg/day but like this child's earlier levels: a {'fast' if side == 'low' else 'slow'} "
                     "clearance rather than a one-off")
    if trough_now[0] > REFERENCE_HIGH_MG_L:
        notes.append(f"high exposure: this child's predicted trough on {dose} mg/day, {_fmt(trough_now[0])} mg/L, is above the "
                     f"laboratory reference (up to {REFERENCE_HIGH_MG_L:g} mg/L; no toxic level is established)")
    if not notes:
        notes.append(f"the level is within what children on {dose} mg/day show")
    return tuple(notes)


def level_lines(assessment: LevelAssessment, current_mg: float | None, recommended_mg: float | None) -> list[str]:
    """Markdown lines (list items) for the card's detail about the measured level(s).

    The measured level against a typical child on that dose, the reading of it, this child's CL/F,
    and the predicted trough and average at the current and the recommended dose, all with 90%
    intervals; or the problems that prevent an estimate. The reference is the laboratory's, never
    called a therapeutic range (there is none for levetiracetam).
    """
    lines: list[str] = []
    latest = assessment.latest
    if assessment.problems:
        for problem in assessment.problems:
            lines.append(f"- Levetiracetam level not used: {problem.message}.")
        return lines
    if latest is None or not assessment.has_estimate:
        return lines
    typical = assessment.typical
    typical_text = f"; a typical child on {_fmt(latest.mg_per_day)} mg/day: {_interval(typical)} mg/L (trough)" if typical else ""
    more = f" ({len(assessment.levels)} levels used)" if len(assessment.levels) > 1 else ""
    lines.append(f"- Measured {_fmt(latest.mg_per_l)} mg/L on {latest.measured_on.isoformat()} ({latest.timing.describe()}){typical_text}{more}.")
    lines.extend(f"- Reading: {note}." for note in assessment.interpretation)
    if assessment.clearance_l_per_h is not None and assessment.typical_clearance_l_per_h is not None:
        cl = assessment.clearance_l_per_h
        volume = f"; V/F {_interval(assessment.volume_l)} L" if assessment.volume_informed and assessment.volume_l else ""
        lines.append(f"- This child's clearance CL/F: {cl[0]:.2f} [{cl[1]:.2f}–{cl[2]:.2f}] L/h (typical child of this weight "
                     f"{assessment.typical_clearance_l_per_h:.2f} L/h){volume}.")
    shown: set[float] = set()
    for label, mg in (("current", current_mg), ("recommended", recommended_mg)):
        if mg is None or mg in shown:
            continue
        shown.add(mg)
        trough, average = assessment.individual_trough(mg), assessment.individual_average(mg)
        if trough is None or average is None:
            continue
        lines.append(f"- Predicted for this child at the {label} {_fmt(mg)} mg/day: trough {_interval(trough)} mg/L, "
                     f"average {_interval(average)} mg/L.")
    older_low, older_high = OLDER_REFERENCE_MG_L
    lines.append(f"- Laboratory reference (trough) {REFERENCE_LOW_MG_L:g}–{REFERENCE_HIGH_MG_L:g} mg/L (older guidance "
                 f"{older_low:g}–{older_high:g}); levetiracetam has no established therapeutic range. Intervals are 90%.")
    return lines


def _share(fraction: float) -> str:
    """A share of children in words; the fixed draws cannot resolve beyond 99%."""
    return "over 99%" if fraction > 0.99 else f"{100 * fraction:.0f}%"


def _interval(value: Interval | None) -> str:
    if value is None:
        return "?"
    return f"{_fmt(value[0])} [{_fmt(value[1])}–{_fmt(value[2])}]"


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"
