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

Why scipy.optimize and a grid, not a library: no maintained Python package fits this model (the
precision-dosing tools are R, posologyr and mapbayr, or closed, DoseMeRx, InsightRX; Tucuxi is
C++), and the posterior is two-dimensional. The posterior is evaluated on a grid fitted to where it
has mass (first a coarse grid over the prior, then a fine grid over the region holding all but
e^-9 of the peak density), which gives its quantiles exactly up to the grid step, also when it is skewed
or bimodal (an unknown sampling time can leave "near-peak and slow clearance" and "trough and normal
clearance" both plausible), where a Laplace approximation would be overconfident. scipy.optimize
refines the MAP from the best grid point.

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
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import ndtr

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.build import PLAUSIBLE_RANGES
from fhir_mapping.dosing import TROUGH_REFERENCE_MG_L
from fhir_mapping.problems import Problem, ProblemKind
from fhir_mapping.timeline import DoseSpan, DrugLevel, PatientTimeline, Visit

Array = npt.NDArray[np.float64]

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
_NEGLIGIBLE_LOG_DENSITY = 9.0
_WASHED_OUT = 16.0
# Fixed draws for the typical child's (prior) intervals: deterministic, the same on every call.
_PRIOR_RNG = np.random.default_rng(20261120)
_PRIOR_DRAWS = _PRIOR_RNG.standard_normal((2000, 3))
_PRIOR_UNIFORMS = _PRIOR_RNG.random(2000)  # sampling times, drawn by inverse CDF
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
        eta = np.column_stack((OMEGA_CL * _PRIOR_DRAWS[:, 0], OMEGA_V * _PRIOR_DRAWS[:, 1]))
        values = _steady(mg_per_day, self.weight_kg, self.egfr, self.doses_per_day, eta).trough
        return _quantiles(np.asarray(values), None)

    def decision_problems(self) -> list[dict[str, str]]:
        """The problems in the shape of the card decision's ``problems`` (CONTRACT §1)."""
        kinds = {ProblemKind.UNKNOWN_UNIT: "unreadable", ProblemKind.UNREADABLE_DOSE: "unreadable", ProblemKind.MISSING: "missing"}
        return [{"kind": kinds.get(p.kind, "implausible"), "item": "levetiracetam level", "detail": p.message} for p in self.problems]

    def _predict(self, mg_per_day: float, which: str) -> Interval | None:
        if not self.has_estimate or self.weight_kg is None or self._eta is None:
            return None
        if mg_per_day <= 0:
            return (0.0, 0.0, 0.0)
        state = _steady(mg_per_day, self.weight_kg, self.egfr, self.doses_per_day, self._eta)
        return _quantiles(np.asarray(state.trough if which == "trough" else state.average), self._weights)


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
    eta, weights, eta_map = model.posterior()
    latest = used[-1]
    typical_cl = float(pk.typical_parameters(weight, egfr).clearance)
    cl_low, cl_high = _marginal_interval(eta[:, 0], weights)
    clearance = (typical_cl * math.exp(eta_map[0]), typical_cl * math.exp(cl_low), typical_cl * math.exp(cl_high))
    v_typical = float(pk.typical_parameters(weight, egfr).volume)
    v_low, v_high = _marginal_interval(eta[:, 1], weights)
    mean_v = float(np.sum(weights * eta[:, 1]))
    sd_v = math.sqrt(max(float(np.sum(weights * (eta[:, 1] - mean_v) ** 2)), 0.0))
    percentile = model.prior_percentile(len(used) - 1)
    own = _LevelModel(used[:-1]).predictive_percentile(latest) if len(used) > 1 else None
    latest_typical = _steady(latest.mg_per_day, latest.weight_kg, latest.egfr, latest.doses_per_day,
                             np.column_stack((OMEGA_CL * _PRIOR_DRAWS[:, 0], OMEGA_V * _PRIOR_DRAWS[:, 1]))).trough
    assessment = LevelAssessment(
        as_of, tuple(used), (), (), weight, egfr, doses_per_day,
        typical=_quantiles(np.asarray(latest_typical), None),
        typical_clearance_l_per_h=typical_cl,
        clearance_l_per_h=clearance,
        volume_l=(v_typical * math.exp(eta_map[1]), v_typical * math.exp(v_low), v_typical * math.exp(v_high)),
        volume_informed=sd_v < 0.7 * OMEGA_V,  # the levels narrowed V/F's SD by 30% or more
        latest_percentile=percentile,
        own_percentile=own,
        _eta=eta, _weights=weights,
    )
    return _with_interpretation(assessment)


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

    def __init__(self, levels: Sequence[LevelUsed]) -> None:
        rows: list[tuple[int, float, float, float, float, float, float, float, float, float]] = []
        for index, level in enumerate(levels):
            params = pk.typical_parameters(level.weight_kg, level.egfr)
            tau = level.tau_h
            for hours, weight in zip(*_hour_grid(level.timing, tau), strict=True):
                rows.append((index, hours, weight, tau, level.mg_per_day / level.doses_per_day,
                             level.previous_mg_per_day / level.doses_per_day, level.doses_of_current * tau,
                             float(params.clearance), float(params.volume), math.log(level.mg_per_l)))
        table = np.asarray(rows, dtype=float)
        self.index = table[:, 0].astype(int)
        self.hours, self.log_w, self.tau, self.dose, self.previous_dose, self.shift, self.cl, self.v, self.log_y = (
            table[:, 1], np.log(table[:, 2]), table[:, 3], table[:, 4], table[:, 5], table[:, 6], table[:, 7], table[:, 8], table[:, 9])
        self.n_levels = len(levels)

        # Terms that do not depend on the individual factors, computed once per fit.
        ka = pk.KA_PER_H
        self.absorbed_now = np.exp(-ka * self.hours) / (1 - np.exp(-ka * self.tau))
        self.absorbed_before = np.exp(-ka * (self.hours + self.shift)) / (1 - np.exp(-ka * self.tau))
        self.starts = np.flatnonzero(np.r_[True, self.index[1:] != self.index[:-1]])  # rows are grouped by level

    def log_concentration(self, eta: Array) -> Array:
        """log C at every (grid point, row): shape (points, rows)."""
        ka = pk.KA_PER_H
        v = self.v[None, :] * np.exp(eta[:, 1:2])
        k = self.cl[None, :] * np.exp(eta[:, 0:1]) / v
        k = np.where(np.abs(ka - k) < 1e-6, ka * (1 - 1e-6), k)
        scale = ka / (v * (ka - k))
        accumulate = 1 / (1 - np.exp(-k * self.tau[None, :]))
        now = scale * (np.exp(-k * self.hours[None, :]) * accumulate - self.absorbed_now[None, :])
        c = self.dose[None, :] * now
        # Doses before the current order: only where they have not washed out (e^-16 of the level).
        recent = np.flatnonzero(k.min(axis=0) * self.shift < _WASHED_OUT)
        if recent.size:
            before = scale[:, recent] * (np.exp(-k[:, recent] * (self.hours + self.shift)[None, recent]) * accumulate[:, recent] - self.absorbed_before[None, recent])
            c[:, recent] += (self.previous_dose[None, recent] - self.dose[None, recent]) * before
        return np.log(np.maximum(c, 1e-9))

    def log_posterior(self, eta: Array) -> Array:
        residual = (self.log_y[None, :] - self.log_concentration(eta)) / SIGMA
        per_row = self.log_w[None, :] - 0.5 * residual**2
        top = np.maximum.reduceat(per_row, self.starts, axis=1)
        per_level = top + np.log(np.add.reduceat(np.exp(per_row - top[:, self.index]), self.starts, axis=1))
        prior = -0.5 * ((eta[:, 0] / OMEGA_CL) ** 2 + (eta[:, 1] / OMEGA_V) ** 2)
        return np.asarray(prior + per_level.sum(axis=1))

    def posterior(self, *, refine: bool = True) -> tuple[Array, Array, Array]:
        """Fine posterior grid (points, 2), its normalised weights, and the MAP (2,); without
        ``refine`` the MAP is the best grid point (enough where only the grid's weights are used)."""
        coarse = _grid((-_COARSE_SPAN_SD[0] * OMEGA_CL, _COARSE_SPAN_SD[0] * OMEGA_CL), (-_COARSE_SPAN_SD[1] * OMEGA_V, _COARSE_SPAN_SD[1] * OMEGA_V), _COARSE)
        log_p = self.log_posterior(coarse)
        keep = coarse[log_p > log_p.max() - _NEGLIGIBLE_LOG_DENSITY]
        step = np.asarray([2 * _COARSE_SPAN_SD[0] * OMEGA_CL / (_COARSE[0] - 1), 2 * _COARSE_SPAN_SD[1] * OMEGA_V / (_COARSE[1] - 1)])
        low, high = keep.min(axis=0) - step, keep.max(axis=0) + step
        fine = _grid((low[0], high[0]), (low[1], high[1]), _FINE)
        log_fine = self.log_posterior(fine)
        weights = np.exp(log_fine - log_fine.max())
        weights /= weights.sum()
        start = fine[int(np.argmax(log_fine))]
        if not refine:
            return fine, weights, start
        result = minimize(self._negative_and_gradient, start, jac=True, method="BFGS", options={"gtol": 1e-3, "maxiter": 30})
        best = np.asarray(result.x, dtype=float) if np.isfinite(result.fun) and result.fun <= -log_fine.max() else start
        return fine, weights, best

    def _negative_and_gradient(self, x: Array) -> tuple[float, Array]:
        """−log posterior and its central-difference gradient, the five points evaluated in one call."""
        step = 1e-4
        points = np.asarray(x, dtype=float)[None, :] + step * np.asarray([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float)
        log_p = self.log_posterior(points)
        gradient = -np.asarray([log_p[1] - log_p[2], log_p[3] - log_p[4]]) / (2 * step)
        return -float(log_p[0]), gradient

    def predictive_percentile(self, level: LevelUsed) -> float:
        """Fraction of this posterior's predictions for ``level`` (its sampling time and residual error
        included) that fall below the measured value: how a new level compares with the earlier ones."""
        eta, weights, _ = self.posterior(refine=False)
        new = _LevelModel([level])
        below = ndtr((new.log_y[None, :] - new.log_concentration(eta)) / SIGMA)  # (points, sampling times)
        return float(np.sum(weights[:, None] * np.exp(new.log_w)[None, :] * below))

    def prior_percentile(self, level: int) -> float:
        """Fraction of typical children (prior, sampling time and residual error) below this level."""
        rows = np.flatnonzero(self.index == level)
        cumulative = np.cumsum(np.exp(self.log_w[rows]))
        pick = rows[np.minimum(np.searchsorted(cumulative / cumulative[-1], _PRIOR_UNIFORMS), rows.size - 1)]
        cl = self.cl[pick] * np.exp(OMEGA_CL * _PRIOR_DRAWS[:, 0])
        v = self.v[pick] * np.exp(OMEGA_V * _PRIOR_DRAWS[:, 1])
        now = _unit_series(self.hours[pick], cl, v, self.tau[pick])
        before = _unit_series(self.hours[pick] + self.shift[pick], cl, v, self.tau[pick])
        c = self.dose[pick] * (now - before) + self.previous_dose[pick] * before
        log_c = np.log(np.maximum(c, 1e-9)) + SIGMA * _PRIOR_DRAWS[:, 2]
        return float(np.mean(log_c < self.log_y[rows[0]]))


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
    edges = np.linspace(low, high, count + 1)
    return (edges[:-1] + edges[1:]) / 2, np.full(count, 1.0 / count)


def _unit_series(t: Array, cl: Array, v: Array, tau: Array) -> Array:
    """Concentration per mg of a dose given every tau hours forever, t hours after the latest one.

    The sum over past doses of the single-dose Bateman function; for t > tau it is the level when the
    next dose is late. Subtracting the same series shifted by n·tau leaves the n most recent doses.
    """
    ka = pk.KA_PER_H
    k = cl / v
    k = np.where(np.abs(ka - k) < 1e-6, ka * (1 - 1e-6), k)
    return np.asarray(ka / (v * (ka - k)) * (np.exp(-k * t) / (1 - np.exp(-k * tau)) - np.exp(-ka * t) / (1 - np.exp(-ka * tau))))


def _grid(cl_range: tuple[float, float], v_range: tuple[float, float], shape: tuple[int, int]) -> Array:
    a, b = np.meshgrid(np.linspace(*cl_range, shape[0]), np.linspace(*v_range, shape[1]), indexing="ij")
    return np.column_stack((a.ravel(), b.ravel()))


def _steady(mg_per_day: float, weight: float, egfr: float | None, doses_per_day: int, eta: Array) -> pk.SteadyState:
    typical = pk.typical_parameters(weight, egfr)
    params = pk.PKParameters(float(typical.clearance) * np.exp(eta[:, 0]), float(typical.volume) * np.exp(eta[:, 1]), pk.KA_PER_H)
    return pk.steady_state_of(np.full(eta.shape[0], float(mg_per_day)), params, doses_per_day)


def _marginal_interval(axis_values: Array, weights: Array) -> tuple[float, float]:
    """90% interval of one coordinate of the grid posterior: its marginal on the grid's cells, with
    the CDF linear within each cell (a grid point stands for the cell around it)."""
    points, inverse = np.unique(axis_values, return_inverse=True)
    mass = np.bincount(inverse, weights=weights, minlength=points.size)
    if points.size == 1:
        return float(points[0]), float(points[0])
    half = np.diff(points) / 2
    edges = np.concatenate(([points[0] - half[0]], points[:-1] + half, [points[-1] + half[-1]]))
    cdf = np.concatenate(([0.0], np.cumsum(mass)))
    low, high = np.interp(INTERVAL, cdf / cdf[-1], edges)
    return float(low), float(high)


def _quantiles(values: Array, weights: Array | None) -> Interval:
    """(median, 5th, 95th percentile) of weighted values."""
    order = np.argsort(values)
    v = values[order]
    w = np.full(v.size, 1.0 / v.size) if weights is None else weights[order]
    cumulative = np.cumsum(w) - 0.5 * w
    cumulative /= cumulative[-1] if cumulative[-1] > 0 else 1.0
    median, low, high = np.interp([0.5, INTERVAL[0], INTERVAL[1]], cumulative, v)
    return float(median), float(low), float(high)


# --- Interpretation and card lines ------------------------------------------------------------
def _with_interpretation(assessment: LevelAssessment) -> LevelAssessment:
    """Plain readings of the latest level: against this child's earlier levels when there are any
    (a drop from the child's own history, not a fast clearance, suggests missed doses), else against
    typical children on the dose."""
    latest = assessment.latest
    notes: list[str] = []
    if latest is None or assessment.latest_percentile is None:
        return assessment
    own = assessment.own_percentile
    share = own if own is not None else assessment.latest_percentile
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
    elif own is not None and not PERCENTILE_LOW <= assessment.latest_percentile <= PERCENTILE_HIGH:
        side = "low" if assessment.latest_percentile < PERCENTILE_LOW else "high"
        notes.append(f"{side} for {dose} mg/day but like this child's earlier levels: a {'fast' if side == 'low' else 'slow'} "
                     "clearance rather than a one-off")
    trough_now = assessment.individual_trough(latest.mg_per_day)
    if trough_now is not None and trough_now[0] > REFERENCE_HIGH_MG_L:
        notes.append(f"high exposure: this child's predicted trough on {dose} mg/day, {_fmt(trough_now[0])} mg/L, is above the "
                     f"laboratory reference (up to {REFERENCE_HIGH_MG_L:g} mg/L; no toxic level is established)")
    if not notes:
        notes.append(f"the level is within what children on {dose} mg/day show")
    return replace(assessment, interpretation=tuple(notes))


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
