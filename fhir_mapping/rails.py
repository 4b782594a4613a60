"""Clinical rails beside the label bounds: which dose classes a clinician would accept for this child.

The label bounds (:func:`fhir_mapping.dosing.label_bounds`) say which daily doses the label permits;
the clinical rails here remove, among those, the choices that point the wrong way for the child's
course (raising a child in remission, lowering one still seizing, starting after a single seizure).
Both are combined in :func:`clinical_rails` into the ONE mask that training targets, prediction,
evaluation and cards use (``RailOutcome.allowed``). Label bounds are hard and win over clinical rails;
the combined mask is never empty (0 g is always within the label).

Every rule is data (:data:`RULES`: id, statement, source). The facts the rules read are
:class:`RailFacts`, built the same way from a timeline (:func:`facts_at`, the service and the
simulator) and from a state row (:func:`facts_from_state`, the training rows), so training and serving
apply the same rails to the same child.

Sources: ../shared/domain.md §2 (label: start, step, maximum), §3 (reference trough range), §4
(natural history: single seizures, remission by the mid-teens) and §6 (BECT treatment practice:
no treatment after a single seizure, titrate up on breakthrough seizures, reduce for adverse effects
with a high level, consider withdrawal after 1–2 years seizure-free or in the mid-teens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fhir_mapping.codes import DURATION_CLASSES
from fhir_mapping.dosing import (
    ADULT_AGE_YEARS,
    ADULT_START_MG_PER_DAY,
    ADULT_STEP_MG_PER_DAY,
    DAYS_PER_YEAR,
    DOSE_CLASSES_MG,
    N_DOSE_CLASSES,
    START_MG_PER_KG_DAY,
    TITRATION_STEP_MG_PER_KG_DAY,
    DoseBounds,
    dose_class_of,
)
from fhir_mapping.features import seizure_course
from fhir_mapping.timeline import PatientTimeline, Visit

# --- Clinical thresholds (each sourced) -----------------------------------------------------
# No increase once the child has been seizure-free this long: BECT remits 1–3 years after onset and
# withdrawal is considered after 1–2 seizure-free years (domain.md §4, §6); raising a child in
# remission adds exposure without benefit.
NO_INCREASE_SEIZURE_FREE_MONTHS: Final = 12.0
# Withdrawal offered after two seizure-free years (domain.md §6: "consider withdrawal after 1–2 years
# seizure-free"; the upper end, so the offer is never premature).
WITHDRAWAL_SEIZURE_FREE_MONTHS: Final = 24.0
# ... and in the mid-teens whatever the course (domain.md §4: remission nearly all by 15–16 y; §6). The
# age offer is about adolescents: from 18 the patient is an adult whose epilepsy is not BECT's natural
# history (project reading of the source), so an adult is offered withdrawal for seizure-free time only.
WITHDRAWAL_AGE_YEARS: Final = 15.0
WITHDRAWAL_AGE_UPPER_YEARS: Final = 18.0
# "Seizures in the last 3 months" is the published R2 window (domain.md §1).
RECENT_SEIZURE_DAYS: Final = 91
SIX_MONTHS_DAYS: Final = 182  # the published R3 window (domain.md §1), as the simulator counts it
# Reference upper bound of the levetiracetam trough: newer lab guidance 10–40 or 20–40 mg/L, older
# 12–46 mg/L (domain.md §3); the newer, lower bound, so no increase is offered above it.
LEVEL_UPPER_REFERENCE_MG_L: Final = 40.0
# Starting dose below 6 months: 7 mg/kg BID (domain.md §2; START_MG_PER_KG_DAY is from 6 months).
START_MG_PER_KG_DAY_BELOW_6_MONTHS: Final = 14.0
STEP_MG_PER_KG_DAY_BELOW_6_MONTHS: Final = 14.0  # +7 mg/kg BID every 2 weeks (domain.md §2)
# A start may round down to a dose class at most 5% below the label's starting dose (project rounding
# tolerance: the classes are coarse, and 500 mg for 26 kg is 19.2 mg/kg/day); otherwise the next class up.
START_ROUNDING_TOLERANCE: Final = 0.05
# A single seizure lasting over 5 minutes is prolonged: domain.md §6 lists prolonged seizures among the
# reasons to treat; "over 5 minutes" is the ILAE time point t1 after which a seizure is unlikely to stop
# by itself (Trinka et al., Epilepsia 2015;56:1515–23, t1 = 5 min for tonic-clonic seizures; the
# stricter reading, 10 min for focal seizures with impaired awareness, would allow fewer starts). The
# index is the ordinal class "over-5-min" of fhir_mapping.codes.DURATION_CLASSES, the same time point the
# simulated physicians use (training/simulator/config.py).
PROLONGED_SEIZURE_DURATION_CLASS: Final = DURATION_CLASSES.index("over-5-min")
SIX_MONTHS_YEARS: Final = 0.5
MONTHS_PER_YEAR: Final = 12.0


@dataclass(frozen=True)
class Rule:
    """One clinical rail or guidance rule as data: its id, what it says, and where that comes from.

    ``kind`` is "rail" (removes dose classes from the mask) or "guidance" (what the card shows when
    the model abstains; removes nothing).
    """

    id: str
    statement: str
    source: str
    kind: str = "rail"


RULES: Final[tuple[Rule, ...]] = (
    Rule("R-LABEL-BOUNDS", "Never above the label maximum for age, weight and renal function; 0 g only when it cannot be computed.",
         "FDA Keppra label / EU SmPC, domain.md §2"),
    Rule("R-NO-INCREASE-SEIZURE-FREE", "No increase after 12 months or more without a seizure.",
         "domain.md §4 (remission 1–3 y after onset) and §6 (withdrawal considered after 1–2 seizure-free years)"),
    Rule("R-NO-DECREASE-WHILE-SEIZING",
         "No decrease while seizures occurred in the last 3 months (or since the last visit, when the chart does not say when), unless an adverse "
         "effect or a measured level above the reference explains it.",
         "domain.md §6 (breakthrough seizures on a low dose: titrate up within the label; reduce for adverse effects with a high level)"),
    Rule("R-START-AT-LABEL-DOSE", "A start from 0 is the label's starting dose for the age (the smallest dose class at most 5% below it); higher doses are reached by titration at review.",
         "FDA Keppra label / EU SmPC, domain.md §2 (7 mg/kg BID below 6 months, 10 mg/kg BID from 6 months, 500 mg BID from 16 years)"),
    Rule("R-NO-START-AFTER-SINGLE-SEIZURE",
         "No start recommended after a single lifetime seizure (watchful waiting; treatment is the alternative), unless the seizure reported "
         "at this visit lasted over 5 minutes or the family asks for treatment.",
         "domain.md §4 (about 10% have a single seizure) and §6 (no treatment after a single seizure; treat for prolonged seizures or at the "
         "family's request); over 5 minutes: ILAE time point t1 (Trinka et al. 2015)"),
    Rule("R-NO-INCREASE-HIGH-LEVEL",
         "No increase when the measured level (or the individual predicted trough) is above the reference upper bound of 40 mg/L.",
         "domain.md §3 (reference trough 10–40 / 20–40 mg/L, newer lab guidance)"),
    Rule("R-WITHDRAWAL-OFFERED", "Withdrawal is offered, not imposed, after 2 years seizure-free or at 15 to 17 years of age.",
         "domain.md §4 (remission nearly all by 15–16 y) and §6 (consider withdrawal after 1–2 years seizure-free, and in the mid-teens)"),
    Rule("R-TAPER-ONLY-ON-LEV", "\"Taper\" is said only of a child taking levetiracetam; a child not on it gets \"none\" or \"start\".",
         "CONTRACT: action measured against the dose the child takes (domain.md §6: withdraw gradually)"),
    Rule("G-RAISE-BREAKTHROUGH", "Seizures in the last 3 months below the label maximum: raise by the label step (10 mg/kg BID; adults 500 mg BID).",
         "domain.md §2 (step) and §6 (breakthrough seizures: titrate up within the label before changing drug)", "guidance"),
    Rule("G-AT-MAXIMUM", "Seizures at the label maximum or with a high level: keep, check adherence, consider another medicine with a specialist.",
         "domain.md §2 (maximum) and §6 (titrate within the label before changing drug)", "guidance"),
    Rule("G-LOWER-ADVERSE-HIGH-LEVEL", "Adverse effect with a level above the reference: lower by the label step.",
         "domain.md §3 (reference) and §6 (somnolence or behavioural change with a high level: reduce)", "guidance"),
    Rule("G-REVIEW-ADVERSE", "Adverse effect without a high level: keep the dose and review (the dose relation is weak).",
         "domain.md §4 (adverse effects: dose relation weak, behavioural history the stronger predictor)", "guidance"),
    Rule("G-OFFER-TAPER", "Seizure-free 2 years or in the mid-teens: offer gradual withdrawal, one dose class at a time and never faster than −10 mg/kg BID every 2 weeks.",
         "domain.md §2 (withdrawal step) and §6", "guidance"),
    Rule("G-KEEP", "On levetiracetam, seizure-free, no adverse effect: keep the dose.", "domain.md §6", "guidance"),
    Rule("G-WATCHFUL-WAITING", "A single lifetime seizure, not treated: watchful waiting; treatment is the alternative for prolonged or daytime seizures or at the family's request.",
         "domain.md §4 and §6", "guidance"),
    Rule("G-START-PROLONGED", "A single lifetime seizure lasting over 5 minutes, not treated: treatment is reasonable; if chosen, start at the label's starting dose (watchful waiting is the alternative).",
         "domain.md §2 (start) and §6 (treat for prolonged seizures); ILAE time point t1 (Trinka et al. 2015)", "guidance"),
    Rule("G-START-FAMILY-REQUEST", "A single lifetime seizure, not treated, and the family asks for treatment: start at the label's starting dose (watchful waiting remains reasonable).",
         "domain.md §2 (start) and §6 (treat at the family's request)", "guidance"),
    Rule("G-START-RECURRENT", "Recurrent seizures, not treated, a seizure in the last 6 months: start at the label's starting dose if treatment is chosen.",
         "domain.md §2 (start) and §6 (treat for frequent, prolonged or daytime seizures)", "guidance"),
    Rule("G-NO-TREATMENT-SEIZURE-FREE", "Not treated and no seizure in the last 6 months: no levetiracetam needed now.",
         "domain.md §6 (many children need no daily anti-seizure medication)", "guidance"),
    Rule("G-CANNOT-SAY", "Bounds unknown, the current dose unreadable or the seizure history not reported: no guidance can be given.",
         "project safety policy (never a dose on unknown bounds, domain.md §2)", "guidance"),
)
RULE_BY_ID: Final = {rule.id: rule for rule in RULES}


@dataclass(frozen=True)
class RailFacts:
    """What the rails and the guidance need, at one decision point (None: unknown)."""

    on_levetiracetam: bool  # an order in effect with a dose > 0 (or in effect but unreadable)
    current_mg_per_day: float | None  # None: on LEV but unreadable
    weight_kg: float | None
    age_years: float | None
    seizure_last_3_months: bool | None
    months_seizure_free: float | None  # since the last seizure (None: unknown)
    lifetime_seizures: int | None  # seizures reported so far
    adverse_effect: bool | None  # somnolence / behaviour reported at this visit
    measured_level_mg_l: float | None  # latest measured LEV level
    predicted_level_mg_l: float | None = None  # individual predicted trough at the current dose
    seizure_duration_class: int | None = None  # of the seizures reported at this visit (codes.DURATION_CLASSES)
    family_requests_treatment: bool | None = None  # recorded at this visit (not in the state: rails only)
    seizure_last_6_months: bool | None = None  # a seizure within 6 months (reported, or implied by the interval)
    seizure_since_last_visit: bool | None = None
    ever_on_levetiracetam: bool = False  # treated before this visit (a recurrence after withdrawal is not a first seizure)

    @property
    def breakthrough(self) -> bool:
        """Seizures on the current course: in the last 3 months, or since the last visit when the chart does
        not say whether within 3 months (a note's "seizures since the last review" on a 4-month interval)."""
        return bool(self.seizure_last_3_months) or (self.seizure_last_3_months is None and bool(self.seizure_since_last_visit))

    @property
    def waits_after_a_single_seizure(self) -> bool:
        """Watchful waiting holds: one lifetime seizure (or none), brief, the family not asking for treatment,
        never treated before (domain.md §6). The one reading the rail and the guidance share."""
        return (self.lifetime_seizures is not None and self.lifetime_seizures <= 1 and not self.prolonged_seizure
                and not self.family_requests_treatment and not self.ever_on_levetiracetam)

    @property
    def prolonged_seizure(self) -> bool:
        """A seizure reported at this visit lasted over 5 minutes."""
        return self.seizure_duration_class is not None and self.seizure_duration_class >= PROLONGED_SEIZURE_DURATION_CLASS


@dataclass(frozen=True)
class FiredRule:
    rule_id: str
    message: str
    removed_classes: tuple[int, ...]


@dataclass(frozen=True)
class Guidance:
    """The label/practice guidance for the situation, shown when the model abstains."""

    action: str  # start | raise | keep | lower | taper | none | no-recommendation
    rule_id: str
    text: str
    mg_per_day: float | None


@dataclass(frozen=True)
class RailOutcome:
    allowed: tuple[bool, ...]  # 12 classes: label bounds AND clinical rails (never all False)
    fired: tuple[FiredRule, ...]
    guidance: Guidance | None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Ids of the rails that fired and of the guidance, in order, for the card's ``rules``."""
        ids = [f.rule_id for f in self.fired]
        if self.guidance is not None and self.guidance.rule_id not in ids:
            ids.append(self.guidance.rule_id)
        return tuple(ids)


# --- Facts --------------------------------------------------------------------------------------


def facts_at(timeline: PatientTimeline, visit_index: int) -> RailFacts:
    """The facts at a visit, read from the timeline (the dose is the one taken on arrival, as in the state).

    Seizure-free time runs from the last visit that reported a seizure (or from the first visit when
    none did): a lower bound, since the seizure happened before that visit. Seizures in the last 3
    months are the visit's report, or implied by a seizure since a previous visit at most 91 days ago.
    """
    visits = timeline.visits[: visit_index + 1]
    visit = visits[-1]
    current: float | None
    if visit.lev_before_unreadable is not None:
        on_lev, current = True, None
    else:
        current = visit.lev_before.mg_per_day if visit.lev_before is not None else 0.0
        on_lev = current > 0
    level = visit.labs.get("lev_level")
    months, lifetime = _history(visits)
    interval = _interval_days(visit.days_since_previous_visit, None if timeline.onset is None else (visit.date - timeline.onset).days)
    return RailFacts(
        on_levetiracetam=on_lev,
        current_mg_per_day=current,
        weight_kg=visit.weight_kg,
        age_years=visit.age_years,
        seizure_last_3_months=_recent_seizure(visit.seizure_last_3_months, visit.seizure_since_last_visit, interval),
        months_seizure_free=months,
        lifetime_seizures=lifetime,
        adverse_effect=visit.behaviour_adverse_effect,
        measured_level_mg_l=level.value if level is not None else None,
        seizure_duration_class=visit.seizure_duration_class,
        family_requests_treatment=visit.family_requests_treatment,
        seizure_last_6_months=_within(visit.seizure_last_6_months, visit.seizure_since_last_visit, interval, SIX_MONTHS_DAYS),
        seizure_since_last_visit=visit.seizure_since_last_visit,
        ever_on_levetiracetam=any((v.lev_before is not None and v.lev_before.mg_per_day > 0) or v.lev_before_unreadable is not None
                                  for v in visits),
    )


def _history(visits: list[Visit]) -> tuple[float | None, int | None]:
    """Months since the last reported seizure and the lifetime count, read as the state reads them.

    A count of one that is only a lower bound (a seizure reported without its number) is unknown: the
    rails never take "seizures, number not recorded" for a single seizure."""
    course = seizure_course(visits)
    if course is None:
        return None, None
    lifetime = course.total if course.exact or course.total >= 2 else None
    return (visits[-1].date - course.last_seizure).days / DAYS_PER_YEAR * MONTHS_PER_YEAR, lifetime


def _interval_days(days_since_previous: float | None, days_since_onset: float | None) -> float | None:
    """How long ago the visit's interval began: the previous visit, or at the first visit the onset (the first
    seizure), so that "seizures since onset" two months after it are seizures within 3 months."""
    return days_since_previous if days_since_previous is not None else days_since_onset


def _recent_seizure(reported: bool | None, since_last_visit: bool | None, days_since_previous: float | None) -> bool | None:
    return _within(reported, since_last_visit, days_since_previous, RECENT_SEIZURE_DAYS)


def _within(reported: bool | None, since_last_visit: bool | None, days_since_previous: float | None, days: int) -> bool | None:
    """A seizure within ``days``: the visit's report, or implied by a seizure since a visit at most that long ago."""
    if reported is not None:
        return bool(reported)
    if since_last_visit and days_since_previous is not None and days_since_previous <= days:
        return True
    return None


def facts_from_state(values: npt.ArrayLike, observed: npt.ArrayLike) -> RailFacts:
    """The same facts from a raw state row (``fhir_mapping.features.state_row``: NaN or unobserved = missing)."""
    from fhir_mapping.features import FEATURE_SPEC

    row = np.asarray(values, dtype=np.float64).ravel()
    seen = np.asarray(observed, dtype=bool).ravel() & ~np.isnan(row)
    index = {name: i for i, name in enumerate(FEATURE_SPEC.names)}

    def get(name: str) -> float | None:
        i = index[name]
        return float(row[i]) if seen[i] else None

    def flag(name: str) -> bool | None:
        value = get(name)
        return None if value is None else value >= 0.5

    dose = get("lev_mg_per_day")
    years_free = get("years_since_last_seizure")
    years_onset = get("years_since_onset")
    interval = _interval_days(get("days_since_previous_visit"), None if years_onset is None else round(years_onset * DAYS_PER_YEAR))
    lifetime = get("seizures_reported_so_far")
    duration = get("seizure_duration_class")
    return RailFacts(
        on_levetiracetam=dose is None or dose > 0,  # the state leaves the dose missing only when unreadable
        current_mg_per_day=dose,
        weight_kg=get("weight_kg"),
        age_years=get("age_years"),
        seizure_last_3_months=_recent_seizure(flag("seizure_last_3_months"), flag("seizure_since_last_visit"), interval),
        months_seizure_free=None if years_free is None else years_free * MONTHS_PER_YEAR,
        lifetime_seizures=None if lifetime is None else round(lifetime),
        adverse_effect=flag("behaviour_adverse_effect"),
        measured_level_mg_l=get("lab_lev_level"),
        seizure_duration_class=None if duration is None else round(duration),
        seizure_last_6_months=_within(flag("seizure_last_6_months"), flag("seizure_since_last_visit"), interval, SIX_MONTHS_DAYS),
        seizure_since_last_visit=flag("seizure_since_last_visit"),
        ever_on_levetiracetam=bool(flag("ever_on_levetiracetam")),
    )


# --- Rails ----------------------------------------------------------------------------------------


def starting_dose_mg_per_day(age_years: float | None, weight_kg: float | None, renal_fraction: float = 1.0) -> float | None:
    """The label's starting daily dose (domain.md §2), reduced by the renal fraction; None when unknown."""
    if age_years is None:
        return None
    if age_years >= ADULT_AGE_YEARS:
        return ADULT_START_MG_PER_DAY * renal_fraction
    if weight_kg is None or weight_kg <= 0:
        return None
    per_kg = START_MG_PER_KG_DAY_BELOW_6_MONTHS if age_years < SIX_MONTHS_YEARS else START_MG_PER_KG_DAY
    return per_kg * weight_kg * renal_fraction


def starting_class(start_mg_per_day: float) -> int:
    """The smallest positive dose class at least the starting dose (within the rounding tolerance)."""
    floor = start_mg_per_day * (1.0 - START_ROUNDING_TOLERANCE)
    return next((i for i in range(1, N_DOSE_CLASSES) if DOSE_CLASSES_MG[i] >= floor - 1e-9), N_DOSE_CLASSES - 1)


def label_step_mg_per_day(age_years: float | None, weight_kg: float | None) -> float | None:
    """One labelled titration step of the daily dose (domain.md §2); None when unknown."""
    if age_years is None:
        return None
    if age_years >= ADULT_AGE_YEARS:
        return ADULT_STEP_MG_PER_DAY
    if weight_kg is None or weight_kg <= 0:
        return None
    per_kg = STEP_MG_PER_KG_DAY_BELOW_6_MONTHS if age_years < SIX_MONTHS_YEARS else TITRATION_STEP_MG_PER_KG_DAY
    return per_kg * weight_kg


def _step_words(age_years: float | None) -> str:
    """The label step of :func:`label_step_mg_per_day` in the words of the label (per dose, twice daily)."""
    if age_years is not None and age_years >= ADULT_AGE_YEARS:
        return f"{ADULT_STEP_MG_PER_DAY / 2:g} mg twice daily"
    per_kg = STEP_MG_PER_KG_DAY_BELOW_6_MONTHS if age_years is not None and age_years < SIX_MONTHS_YEARS else TITRATION_STEP_MG_PER_KG_DAY
    return f"{per_kg / 2:g} mg/kg twice daily"


def level_is_high(facts: RailFacts, *, include_prediction: bool = True) -> bool:
    """A measured level (or, when asked, the individual prediction) above the reference upper bound."""
    levels = [facts.measured_level_mg_l] + ([facts.predicted_level_mg_l] if include_prediction else [])
    return any(level is not None and math.isfinite(level) and level > LEVEL_UPPER_REFERENCE_MG_L for level in levels)


def seizure_free_months(facts: RailFacts) -> float | None:
    """Months seizure-free (a lower bound), or 0 when a seizure in the last 3 months contradicts a longer count.

    The count runs from the last visit that reported a seizure; a window the chart denies lifts it ("no
    seizure in the last 3 months" after a seizure reported at this visit's 4-month interval is 3 months,
    not 0)."""
    if facts.seizure_last_3_months:
        return 0.0
    months = facts.months_seizure_free
    floor = (SIX_MONTHS_YEARS * MONTHS_PER_YEAR if facts.seizure_last_6_months is False
             else RECENT_SEIZURE_DAYS / DAYS_PER_YEAR * MONTHS_PER_YEAR if facts.seizure_last_3_months is False else None)
    if floor is None:
        return months
    return floor if months is None else max(months, floor)


def withdrawal_indicated(facts: RailFacts) -> bool:
    """Withdrawal offered: on LEV, no seizure in the last 3 months, and 2 years seizure-free or 15 to 17 years old."""
    if not facts.on_levetiracetam or facts.seizure_last_3_months:
        return False
    months = facts.months_seizure_free
    quiet = facts.seizure_last_3_months is False or (months is not None and months * DAYS_PER_YEAR / MONTHS_PER_YEAR >= RECENT_SEIZURE_DAYS)
    if not quiet:
        return False
    long_free = months is not None and months >= WITHDRAWAL_SEIZURE_FREE_MONTHS
    teen = facts.age_years is not None and WITHDRAWAL_AGE_YEARS <= facts.age_years < WITHDRAWAL_AGE_UPPER_YEARS
    return long_free or teen


def clinical_rails(facts: RailFacts, bounds: DoseBounds, *, skip: frozenset[str] = frozenset()) -> RailOutcome:
    """The one mask (label bounds AND clinical rails), the rails that fired, and the guidance.

    Label bounds win: a rail never removes the highest class the label allows at or below the current
    dose, so the mask is never empty. ``skip`` names rails not to apply: for measuring what a rail
    costs or gains in evaluation only, never in serving.
    """
    unknown = skip - set(RULE_BY_ID)
    if unknown:
        raise ValueError(f"unknown rule ids {sorted(unknown)}")
    label = list(bounds.allowed) if len(bounds.allowed) == N_DOSE_CLASSES else [True] + [False] * (N_DOSE_CLASSES - 1)
    label[0] = True  # 0 g is always within the label
    allowed = list(label)
    fired: list[FiredRule] = []

    def remove(rule_id: str, message: str, classes: list[int]) -> None:
        if rule_id in skip:
            return
        removed = tuple(i for i in classes if allowed[i])
        for i in removed:
            allowed[i] = False
        fired.append(FiredRule(rule_id, message, removed))

    current = facts.current_mg_per_day
    current_class = dose_class_of(current) if current is not None and math.isfinite(current) and current >= 0 else None
    months = seizure_free_months(facts)
    if facts.on_levetiracetam and current_class is not None:
        if months is not None and months >= NO_INCREASE_SEIZURE_FREE_MONTHS:
            remove("R-NO-INCREASE-SEIZURE-FREE", f"seizure-free for {months:.0f} months: no increase",
                   list(range(current_class + 1, N_DOSE_CLASSES)))
        if level_is_high(facts):
            which = "measured" if level_is_high(facts, include_prediction=False) else "predicted"
            value = facts.measured_level_mg_l if which == "measured" else facts.predicted_level_mg_l
            remove("R-NO-INCREASE-HIGH-LEVEL", f"{which} level {value:g} mg/L above {LEVEL_UPPER_REFERENCE_MG_L:g} mg/L: no increase",
                   list(range(current_class + 1, N_DOSE_CLASSES)))
        if facts.breakthrough:
            explained = bool(facts.adverse_effect) or level_is_high(facts, include_prediction=False)
            if not explained:
                # The label wins: when it forces a lower dose, the highest dose it allows stays open.
                highest_label = max(i for i in range(current_class + 1) if label[i])
                when = "in the last 3 months" if facts.seizure_last_3_months else "since the last visit"
                remove("R-NO-DECREASE-WHILE-SEIZING", f"seizures {when}: no decrease",
                       list(range(0, min(current_class, highest_label))))
        if withdrawal_indicated(facts) and "R-WITHDRAWAL-OFFERED" not in skip:
            fired.append(FiredRule("R-WITHDRAWAL-OFFERED", _withdrawal_reason(facts), ()))
    elif not facts.on_levetiracetam:
        if facts.waits_after_a_single_seizure:
            remove("R-NO-START-AFTER-SINGLE-SEIZURE",
                   f"{'a single seizure' if facts.lifetime_seizures == 1 else 'no seizure'} reported: watchful waiting, no start",
                   list(range(1, N_DOSE_CLASSES)))
        start = starting_dose_mg_per_day(facts.age_years, facts.weight_kg, bounds.renal_fraction)
        if start is not None:
            start_class = starting_class(start)
            # The label starts low and titrates every 2 weeks (domain.md §2): a start above the starting
            # dose would skip the steps that let a child's tolerance show (somnolence, behaviour: §4).
            remove("R-START-AT-LABEL-DOSE", f"a start is the label's starting dose, {start:.0f} mg/day",
                   [i for i in range(1, N_DOSE_CLASSES) if i != start_class])
    fired = [f for f in fired if f.removed_classes or f.rule_id == "R-WITHDRAWAL-OFFERED"]
    if not any(allowed):  # unreachable: 0 g is kept by every rail but no-decrease, which stops at the label
        allowed = label
    return RailOutcome(tuple(allowed), tuple(fired), guidance_for(facts, bounds, tuple(allowed)))


def _withdrawal_reason(facts: RailFacts) -> str:
    months = seizure_free_months(facts)
    if months is not None and months >= WITHDRAWAL_SEIZURE_FREE_MONTHS:
        return f"seizure-free for {months / MONTHS_PER_YEAR:.1f} years: gradual withdrawal may be offered"
    return f"age {facts.age_years:.0f} years: BECT remits by the mid-teens; gradual withdrawal may be offered"


# --- Guidance -------------------------------------------------------------------------------------


def _nearest_allowed(target_mg: float, allowed: tuple[bool, ...], *, above: int | None = None) -> int | None:
    """The allowed class nearest to ``target_mg`` (strictly above class ``above``), None when there is none."""
    candidates = [i for i in range(N_DOSE_CLASSES) if allowed[i] and (above is None or i > above)]
    if not candidates:
        return None
    return min(candidates, key=lambda i: (abs(DOSE_CLASSES_MG[i] - target_mg), DOSE_CLASSES_MG[i]))


def _step(current_class: int, step_mg: float | None, allowed: tuple[bool, ...], *, up: bool) -> int | None:
    """One labelled step up or down: the furthest allowed class within one step of the current dose,
    or the adjacent allowed class when the step is smaller than the gap between classes."""
    current = DOSE_CLASSES_MG[current_class]
    side = [i for i in range(N_DOSE_CLASSES) if allowed[i] and (i > current_class if up else i < current_class)]
    if not side:
        return None
    reach = step_mg if step_mg is not None else 0.0
    within = [i for i in side if abs(DOSE_CLASSES_MG[i] - current) <= reach + 1e-9]
    if within:
        return max(within) if up else min(within)
    return min(side) if up else max(side)


def guidance_for(facts: RailFacts, bounds: DoseBounds, allowed: tuple[bool, ...]) -> Guidance:
    """The label/practice guidance for the situation (domain.md §2, §6); its dose is within ``allowed``."""

    def say(action: str, rule_id: str, text: str, dose_class: int | None = None) -> Guidance:
        return Guidance(action, rule_id, text, None if dose_class is None else DOSE_CLASSES_MG[dose_class])

    if not bounds.known or bounds.specialist_only:
        return say("no-recommendation", "G-CANNOT-SAY", "the label bounds cannot be computed for this child: no dose can be checked")
    current = facts.current_mg_per_day
    if facts.on_levetiracetam:
        if current is None:
            return say("no-recommendation", "G-CANNOT-SAY", "the dose of the levetiracetam order in effect could not be read")
        current_class = dose_class_of(current)
        step = label_step_mg_per_day(facts.age_years, facts.weight_kg)
        high_measured = level_is_high(facts, include_prediction=False)
        if facts.adverse_effect and high_measured:
            lower = _step(current_class, step, allowed, up=False)
            if lower is not None and lower > 0:
                return say("lower", "G-LOWER-ADVERSE-HIGH-LEVEL",
                           f"adverse effect with a level of {facts.measured_level_mg_l:g} mg/L: lower by the label step", lower)
            return say("taper", "G-LOWER-ADVERSE-HIGH-LEVEL",
                       f"adverse effect with a level of {facts.measured_level_mg_l:g} mg/L: reduce gradually", lower)
        if facts.breakthrough:
            if facts.adverse_effect:
                return say("keep", "G-REVIEW-ADVERSE", "seizures and an adverse effect: keep the dose and weigh a change with the family",
                           current_class if allowed[current_class] else None)
            if level_is_high(facts):
                return say("keep", "G-AT-MAXIMUM", f"seizures with a level above {LEVEL_UPPER_REFERENCE_MG_L:g} mg/L: check adherence and sampling time; consider another medicine",
                           current_class if allowed[current_class] else None)
            raise_to = _step(current_class, step, allowed, up=True)
            if raise_to is None:
                return say("keep", "G-AT-MAXIMUM", "seizures at the label maximum: check adherence; consider another medicine with a specialist",
                           current_class if allowed[current_class] else None)
            when = "in the last 3 months" if facts.seizure_last_3_months else "since the last visit"
            return say("raise", "G-RAISE-BREAKTHROUGH", f"seizures {when}: raise by the label step ({_step_words(facts.age_years)})", raise_to)
        if withdrawal_indicated(facts):
            # Gradual: the next dose class down, which the label's fastest rate (−10 mg/kg BID every
            # 2 weeks, domain.md §2) always allows; the whole label step at once is the fastest taper.
            down = max((i for i in range(current_class) if allowed[i]), default=None)
            return say("taper", "G-OFFER-TAPER", _withdrawal_reason(facts) + " (one step at a time, at most −10 mg/kg twice daily every 2 weeks)", down)
        if facts.adverse_effect:
            return say("keep", "G-REVIEW-ADVERSE", "adverse effect without a high level: keep the dose and review",
                       current_class if allowed[current_class] else None)
        if facts.seizure_last_3_months is None and facts.months_seizure_free is None:
            return say("no-recommendation", "G-CANNOT-SAY", "no seizure report: the course cannot be judged")
        return say("keep", "G-KEEP", "seizure-free on levetiracetam: keep the dose", current_class if allowed[current_class] else None)
    # Not on levetiracetam: never "taper" (R-TAPER-ONLY-ON-LEV).
    if facts.lifetime_seizures is None:
        if facts.seizure_last_3_months or facts.seizure_since_last_visit:
            return say("no-recommendation", "G-CANNOT-SAY", "seizures reported, their number not recorded: ask how many "
                       "(a single seizure: watchful waiting; recurrent seizures: start at the label's starting dose)")
        return say("no-recommendation", "G-CANNOT-SAY", "no seizure report: whether to treat cannot be judged")
    def start_at_label_dose(rule_id: str, text: str) -> Guidance:
        start = starting_dose_mg_per_day(facts.age_years, facts.weight_kg, bounds.renal_fraction)
        start_class = _nearest_allowed(DOSE_CLASSES_MG[starting_class(start)], allowed, above=0) if start is not None else None
        if start_class is None:
            return say("no-recommendation", "G-CANNOT-SAY", "the label's starting dose is not within the bounds for this child")
        return say("start", rule_id, text, start_class)

    if facts.lifetime_seizures == 1 and facts.prolonged_seizure:
        return start_at_label_dose("G-START-PROLONGED", "a single seizure lasting over 5 minutes: treatment is reasonable; if chosen, "
                                   "start at the label's starting dose (watchful waiting is the alternative)")
    if facts.lifetime_seizures == 1 and facts.family_requests_treatment:
        return start_at_label_dose("G-START-FAMILY-REQUEST", "a single seizure and the family asks for treatment: start at the label's "
                                   "starting dose (watchful waiting remains reasonable)")
    if facts.waits_after_a_single_seizure:
        return say("none", "G-WATCHFUL-WAITING",
                   "a single seizure: watchful waiting; treatment is the alternative for prolonged or daytime seizures or at the family's request")
    if facts.seizure_last_3_months or facts.seizure_last_6_months:
        # Recurrent seizures, the latest within the 6 months the study's outcome looks back (domain.md §1),
        # are a course that is still active: a follow-up 4 months after a second seizure is not seizure-free.
        return start_at_label_dose("G-START-RECURRENT", "recurrent seizures: if treatment is chosen, start at the label's starting dose (10 mg/kg twice daily)")
    free = facts.months_seizure_free
    if facts.seizure_last_6_months is None and (free is None or free < SIX_MONTHS_YEARS * MONTHS_PER_YEAR):
        # Never claim "no seizure in the last 6 months" that the chart does not support.
        return say("no-recommendation", "G-CANNOT-SAY", "recurrent seizures, the latest not dated: ask when it was (within 6 months: "
                   "start at the label's starting dose; otherwise no levetiracetam needed now)")
    return say("none", "G-NO-TREATMENT-SEIZURE-FREE", "not treated and no seizure in the last 6 months: no levetiracetam needed now")


def action_of(facts: RailFacts, recommended_mg_per_day: float | None) -> str:
    """The action word of a recommendation, measured against the dose the child takes (R-TAPER-ONLY-ON-LEV).

    Not on levetiracetam: "start" (> 0) or "none"; on it: "raise" / "keep" / "lower" by dose class,
    "taper" when the recommendation is 0 g or a decrease while withdrawal is offered.
    """
    if recommended_mg_per_day is None:
        return "no-recommendation"
    if not facts.on_levetiracetam:
        return "start" if recommended_mg_per_day > 0 else "none"
    if facts.current_mg_per_day is None:
        return "no-recommendation"
    now, then = dose_class_of(facts.current_mg_per_day), dose_class_of(recommended_mg_per_day)
    if then == now:
        return "keep"
    if then > now:
        return "raise"
    return "taper" if then == 0 or withdrawal_indicated(facts) else "lower"


def agrees_with_guidance(facts: RailFacts, guidance: Guidance | None, recommended_mg_per_day: float) -> bool:
    """The model's choice points the way the practice guidance does (same action word), or there is no guidance.

    A model choice is offered as recommended only when it agrees: the model may choose the dose, never
    the direction against the label and practice guidance (the service and its evaluation both apply it).
    """
    if guidance is None or guidance.action == "no-recommendation":
        return True
    return guidance.action == action_of(facts, recommended_mg_per_day)


def rails_at(timeline: PatientTimeline, visit_index: int, bounds: DoseBounds) -> RailOutcome:
    """:func:`clinical_rails` on :func:`facts_at` (convenience for the service and the simulator)."""
    return clinical_rails(facts_at(timeline, visit_index), bounds)
