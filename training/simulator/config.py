"""The simulator's one configuration: every parameter, its source and whether it is an assumption.

Each field carries a docstring (below it) and ``metadata``: ``source`` names where the number comes
from (../shared/domain.md section, or the publication it cites); ``assumption=True`` marks values that
domain.md flags **[unverified]** or that have no primary source here (growth-curve shapes, lab
reference values, visit habits, the physician's habits); they are chosen so the cohort reproduces the
published study's statistics (calibration.md shows the comparison) and should be revisited first.

Change a value with :func:`dataclasses.replace` (``replace(DEFAULT_CONFIG, single_seizure_share=0.2)``);
the configuration is saved inside every cohort (``calibration.json``) so a cohort is reproducible.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from fhir_mapping import pharmacokinetics as pk
from training.reward import REWARD_MAGNITUDE, REWARD_WEIGHTS


def _p(default: Any, source: str, *, assumption: bool = False) -> Any:
    """A configuration field with its source recorded in the field metadata."""
    return field(default=default, metadata={"source": source, "assumption": assumption})


# Adverse effects (domain.md §4) are trial shares over a paediatric adjunctive trial; they become yearly
# hazards with the trial length and exposure below. Both are assumptions: the pooled paediatric trials
# (Glauser 2006) lasted about 14 weeks at a target of 60 mg/kg/day, i.e. Cavg ≈ 29 mg/L at 25 kg with
# CL 2.15 L/h (domain.md §4). The dose relation is weak (domain.md §4): a quarter of the drug's excess
# is made proportional to exposure, the rest is present at any dose.
TRIAL_YEARS: Final = 14 * 7 / 365.25
TRIAL_AVERAGE_CONCENTRATION_MG_L: Final = 29.1
AE_DOSE_DEPENDENT_SHARE: Final = 0.25
# The trial shares average over children with and without a behavioural history (share 0.20, hazard
# × 2.5 below): divide by 0.8 + 0.2·2.5 = 1.3 to get the hazard of a child without one.
_HISTORY_AVERAGE: Final = 0.8 + 0.2 * 2.5


def _either(a: float, b: float) -> float:
    """Share with at least one of two effects reported independently."""
    return 1.0 - (1.0 - a) * (1.0 - b)


def _trial_hazard(share: float, *, history: bool = True) -> float:
    """Constant yearly hazard giving ``share`` over the trial (per child without a behavioural history)."""
    return -math.log(1.0 - share) / TRIAL_YEARS / (_HISTORY_AVERAGE if history else 1.0)


def _trial_excess(lev_share: float, placebo_share: float, *, history: bool = True) -> float:
    """Yearly hazard levetiracetam adds at the trials' exposure."""
    return _trial_hazard(lev_share, history=history) - _trial_hazard(placebo_share, history=history)


@dataclass(frozen=True)
class SimulatorConfig:
    """Every number the simulator uses (frozen; JSON round trip through :meth:`to_json`)."""

    # --- Study frame (domain.md §1) ---------------------------------------------------------
    study_start: date = _p(date(2016, 1, 1), "domain.md §1: follow-ups 2016-01-01 to 2021-04-29")  # noqa: RUF009 (date is immutable)
    """First day a child can enter follow-up."""
    study_end: date = _p(date(2021, 4, 29), "domain.md §1: follow-ups 2016-01-01 to 2021-04-29")  # noqa: RUF009 (date is immutable)
    """Administrative end of follow-up (no visit after it)."""

    # --- Patients (domain.md §4) --------------------------------------------------------------
    onset_age_mean_years: float = _p(7.0, "domain.md §4: onset peak ~7 y")
    """Mean age at the first seizure."""
    onset_age_sd_years: float = _p(1.82, "domain.md §4: onset 4–10 y in 90% (±1.645 SD = ±3 y)")
    """Standard deviation of the onset age (normal, truncated to the bounds below)."""
    onset_age_bounds_years: tuple[float, float] = _p((3.0, 13.0), "domain.md §4 (tails beyond 4–10 y)", assumption=True)
    """Truncation of the onset age."""
    male_share: float = _p(0.58, "BECT male predominance [unverified assumption]", assumption=True)
    """Share of boys."""
    presentation_delay_days: tuple[float, float] = _p((7.0, 45.0), "time from first seizure to first clinic visit", assumption=True)
    """Uniform range of days from the first seizure to the first visit."""
    behaviour_history_share: float = _p(0.20, "share with prior behavioural problems", assumption=True)
    """Share of children with a behavioural history (the stronger adverse-effect predictor, domain.md §4)."""

    # Growth: medians approximated from the CDC 2000 growth charts (not in domain.md: assumption).
    growth_ages_years: tuple[float, ...] = _p((3.0, 4.0, 7.0, 10.0, 13.0, 16.0, 18.0), "CDC 2000 growth charts (approximate medians)", assumption=True)
    """Ages at which the median weight and height are tabulated (linear interpolation between)."""
    weight_median_boys_kg: tuple[float, ...] = _p((14.3, 16.3, 23.0, 32.0, 45.0, 61.0, 68.0), "CDC 2000 growth charts (approximate medians)", assumption=True)
    """Median weight of boys at ``growth_ages_years``."""
    weight_median_girls_kg: tuple[float, ...] = _p((13.9, 16.0, 22.5, 33.0, 46.0, 54.0, 56.5), "CDC 2000 growth charts (approximate medians)", assumption=True)
    """Median weight of girls at ``growth_ages_years``."""
    height_median_boys_cm: tuple[float, ...] = _p((95.5, 103.0, 122.0, 138.0, 156.0, 174.0, 176.5), "CDC 2000 growth charts (approximate medians)", assumption=True)
    """Median height of boys at ``growth_ages_years``."""
    height_median_girls_cm: tuple[float, ...] = _p((94.5, 102.0, 121.0, 138.0, 157.0, 163.0, 163.5), "CDC 2000 growth charts (approximate medians)", assumption=True)
    """Median height of girls at ``growth_ages_years``."""
    weight_log_sd: float = _p(0.15, "spread of weight-for-age (individual percentile)", assumption=True)
    """SD of log weight around the median (the child's percentile z is fixed; a small drift below)."""
    height_log_sd: float = _p(0.045, "spread of height-for-age (individual percentile)", assumption=True)
    """SD of log height around the median."""
    percentile_drift_sd_per_year: float = _p(0.15, "children drift across percentiles slowly", assumption=True)
    """SD per year of the random walk of the weight percentile z."""

    # Renal function: creatinine follows from height and the child's eGFR (bedside Schwartz, domain.md §2).
    egfr_normal_mean: float = _p(115.0, "healthy children, bedside Schwartz eGFR ~100–130", assumption=True)
    """Mean eGFR (mL/min/1.73 m²) of children with normal renal function."""
    egfr_normal_sd: float = _p(15.0, "healthy children", assumption=True)
    """SD of normal eGFR."""
    reduced_egfr_share: float = _p(0.03, "a small share with reduced eGFR (issue #3)", assumption=True)
    """Share of children with reduced renal function."""
    reduced_egfr_range: tuple[float, float] = _p((35.0, 80.0), "reduced renal function band (Kinderformularium classes, domain.md §2)", assumption=True)
    """Uniform range of eGFR in the reduced group."""
    creatinine_cv: float = _p(0.06, "analytical + biological variation of serum creatinine", assumption=True)
    """Proportional measurement error of creatinine."""

    # --- Natural history of seizures (domain.md §4) ------------------------------------------
    single_seizure_share: float = _p(0.10, "domain.md §4: ~10% have a single seizure")
    """Share of children whose only seizure is the first."""
    baseline_rate_median_per_year: float = _p(3.0, "calibrated: untreated 29% seizure-free over 6 months (Rating 2000, domain.md §4)", assumption=True)
    """Median untreated seizure rate per year (log-normal across children)."""
    baseline_rate_log_sd: float = _p(0.9, "log-normal baseline (domain.md §4 template); spread assumed", assumption=True)
    """SD of log baseline rate."""
    remission_years_median: float = _p(2.6, "domain.md §4: remission usually 1–3 y after onset")
    """Median time from onset to spontaneous remission (log-normal)."""
    remission_years_log_sd: float = _p(0.35, "domain.md §4: 1–3 y (≈ ±1.5 SD)", assumption=True)
    """SD of log remission time."""
    remission_age_max_years: float = _p(15.5, "domain.md §4: nearly all remit by 15–16 y")
    """Age by which every child has remitted."""

    # --- Pharmacokinetics (domain.md §3; typical values live in fhir_mapping.pharmacokinetics) --
    cl_reference_l_per_h: float = _p(pk.CL_REF_L_PER_H, "domain.md §3: Pellock 2001, 0.086 L/h/kg at 25 kg")
    """Typical CL/F at 25 kg and normal eGFR (the simulator scales its individual factor by this / the shared value)."""
    cl_bsv_cv: float = _p(0.40, "domain.md §3: Tauzin 2021 external evaluation, published models under-estimate variability: 35–45% CV on CL (fitted profile: 0.30, the earlier 25–35% assumption)")
    """Between-subject coefficient of variation of CL/F (log-normal)."""
    v_bsv_cv: float = _p(0.20, "BSV on V/F", assumption=True)
    """Between-subject coefficient of variation of V/F (log-normal)."""
    residual_cv: float = _p(0.175, "domain.md §3: proportional residual error 15–20% [unverified]", assumption=True)
    """Proportional residual error of a measured levetiracetam level."""
    level_sampling_hours: tuple[float, float] = _p((9.0, 12.0), "levels drawn before the morning dose (near trough)", assumption=True)
    """Uniform range of hours after the last dose at which a level is drawn (BID, tau 12 h)."""

    # --- Pharmacodynamics (domain.md §4; profiles in PD_PROFILES below) ----------------------
    pd_profile: str = _p("sourced", "PD_PROFILES: 'sourced' (Schoemaker 2018 adapted to BECT, default) or 'fitted' (earlier EC50 0.7 mg/L)")
    """Name of the exposure–response profile these values come from (:func:`with_pd_profile`)."""
    pd_model: str = _p("log_rate_mixture", "Schoemaker, Wade & Stockis 2018 (DDMODEL00000239), domain.md §4")
    """"log_rate_mixture": responders' log seizure rate falls by log_emax·C/(EC50 + C), non-responders' not at all;
    "fraction_emax": every child's rate falls by the fraction emax·C^h/(EC50^h + C^h)."""
    responder_share: float = _p(0.90, "adapted: Schoemaker 2018's 0.335 (refractory focal epilepsy, add-on) cannot give BECT's 19% recurrence on LEV against 71% untreated (domain.md §4); see PD_PROFILES", assumption=True)
    """Share of children in whom levetiracetam lowers the seizure rate (log_rate_mixture)."""
    log_emax: float = _p(-12.0, "adapted: Schoemaker 2018 log Emax −3.13 scaled until 30 mg/kg/day gives BECT's 19% 6-month recurrence (Borggraefe 2013); see PD_PROFILES", assumption=True)
    """Typical maximum drug effect on the log seizure rate of a responder (log_rate_mixture)."""
    log_emax_iiv_variance: float = _p(0.640, "adopted: Schoemaker 2018 OMEGA(4,4) = 0.640, multiplicative on log Emax (DDMODEL00000239 final estimates)")
    """Variance of the child's η on log Emax: the child's log Emax is log_emax·exp(η) (log_rate_mixture)."""
    emax: float = _p(0.95, "fitted profile only: Emax ≈72% on top of placebo (Snoeck & Stockis 2004) raised so 20–40 mg/kg/day gives 19% recurrence", assumption=True)
    """Maximum fractional reduction of the seizure rate by levetiracetam (fraction_emax)."""
    ec50_median_mg_l: float = _p(31.5, "adopted: Schoemaker 2018 log EC50 3.45 → exp(3.45) ≈ 31.5 mg/L average concentration, paediatric offset fixed 0 (domain.md §4); fitted profile 0.7 [unverified]", assumption=True)
    """Median EC50 on the steady-state average concentration (mg/L)."""
    ec50_log_sd: float = _p(0.0, "adopted: Schoemaker 2018 has no between-child variability on EC50; fitted profile 1.0 [unverified]", assumption=True)
    """SD of log EC50 across children."""
    hill: float = _p(1.0, "adopted: Schoemaker 2018 hyperbolic Emax (no Hill coefficient)")
    """Hill coefficient."""

    # --- Adverse effects (domain.md §4: paediatric trials LEV vs placebo) -----------------------
    ae_background_per_year: float = _p(round(_trial_hazard(_either(0.05, 0.01)), 4), "domain.md §4: placebo aggression 5%, irritability 1% (either, independent) over a ~14-week trial; per child without behavioural history", assumption=True)
    """Yearly hazard of a reported behavioural problem off levetiracetam."""
    ae_lev_per_year: float = _p(round((1 - AE_DOSE_DEPENDENT_SHARE) * _trial_excess(_either(0.10, 0.07), _either(0.05, 0.01)), 4), "domain.md §4: LEV aggression 10%, irritability 7% vs 5%, 1%; the dose-independent part (dose relation weak)", assumption=True)
    """Additional yearly hazard on levetiracetam (at zero concentration)."""
    ae_per_mg_l_per_year: float = _p(round(AE_DOSE_DEPENDENT_SHARE * _trial_excess(_either(0.10, 0.07), _either(0.05, 0.01)) / TRIAL_AVERAGE_CONCENTRATION_MG_L, 5), "domain.md §4: dose relation weak; the dose-dependent part, linear in average concentration up to the trials' exposure", assumption=True)
    """Additional yearly hazard per mg/L of average concentration."""
    ae_history_multiplier: float = _p(2.5, "domain.md §4: prior behavioural history is the stronger predictor", assumption=True)
    """Hazard multiplier of behavioural effects for children with a behavioural history."""
    somnolence_background_per_year: float = _p(round(_trial_hazard(0.09, history=False), 4), "domain.md §4: somnolence 9% on placebo over a ~14-week trial", assumption=True)
    """Yearly hazard of reported somnolence off levetiracetam (recorded in the truth files; not charted)."""
    somnolence_lev_per_year: float = _p(round((1 - AE_DOSE_DEPENDENT_SHARE) * _trial_excess(0.13, 0.09, history=False), 4), "domain.md §4: somnolence 13% on LEV vs 9%; dose-independent part", assumption=True)
    """Additional yearly hazard of somnolence on levetiracetam (at zero concentration)."""
    somnolence_per_mg_l_per_year: float = _p(round(AE_DOSE_DEPENDENT_SHARE * _trial_excess(0.13, 0.09, history=False) / TRIAL_AVERAGE_CONCENTRATION_MG_L, 5), "domain.md §4: dose relation weak; dose-dependent part", assumption=True)
    """Additional yearly hazard of somnolence per mg/L of average concentration."""

    # --- Visits -------------------------------------------------------------------------------
    first_follow_up_days: tuple[float, float] = _p((30.0, 42.0), "first review about a month after a start or change (issue #3: intervals of 1–6 months)", assumption=True)
    """Uniform days to the visit after a start or dose change."""
    follow_up_days: tuple[float, ...] = _p((30.0, 61.0, 91.0, 122.0, 152.0, 183.0), "issue #3: follow-up intervals of 1–6 months")
    """Possible follow-up intervals when stable."""
    follow_up_weights: tuple[float, ...] = _p((0.10, 0.18, 0.34, 0.14, 0.08, 0.16), "chosen to reproduce the visit counts of domain.md §1", assumption=True)
    """Probabilities of the intervals above."""
    dropout_per_visit: float = _p(0.04, "chosen to reproduce the follow-up buckets of domain.md §1", assumption=True)
    """Probability of being lost to follow-up after a visit."""
    dropout_seizure_free_extra: float = _p(0.04, "seizure-free children stop coming more often", assumption=True)
    """Extra dropout probability after a seizure-free visit."""
    discharge_after_stop_days: float = _p(180.0, "children off drug and seizure-free are discharged", assumption=True)
    """Seizure-free days off levetiracetam after which the child is discharged."""
    max_age_years: float = _p(18.0, "paediatric clinic", assumption=True)
    """No visit after this age."""
    exam_class_shares: tuple[float, float, float] = _p((0.4364, 0.1375, 0.4261), "domain.md §1: good 43.64%, fair 13.75%, deficit 42.61%")
    """Population shares of the exam classes (good, fair, deficit)."""
    exam_trait_persistence: float = _p(0.8, "the exam finding is mostly a stable trait", assumption=True)
    """Probability a visit's exam class equals the child's usual one (else drawn from the shares)."""
    duration_class_shares: tuple[float, float, float] = _p((0.35, 0.55, 0.10), "BECT seizures are brief (domain.md §4)", assumption=True)
    """Shares of the longest-seizure classes under-1-min, 1-to-5-min, over-5-min."""
    lab_panel_probability: float = _p(0.35, "blood tests at about a third of visits", assumption=True)
    """Probability that a blood panel (ALT, AST, WBC, Hb, platelets) is drawn at a visit."""
    creatinine_probability: float = _p(0.30, "kidney function at about a third of visits", assumption=True)
    """Probability that creatinine is measured at a visit."""
    level_probability: float = _p(0.12, "domain.md §3: occasional TDM", assumption=True)
    """Probability that a levetiracetam level is drawn at a visit of a treated child."""
    eeg_probability: float = _p(0.25, "EEG at some visits (domain.md §1 state)", assumption=True)
    """Probability of an EEG at a visit (always at the first)."""
    weight_in_pounds_share: float = _p(0.05, "real data writes weights in [lb_av] too (domain.md §5)", assumption=True)
    """Share of weights written in pounds."""
    creatinine_umol_share: float = _p(0.25, "creatinine reported in umol/L by many labs", assumption=True)
    """Share of creatinine results written in umol/L."""

    # --- Physician (data-generating policy; label from domain.md §2) --------------------------
    treat_after_single_seizure: float = _p(
        0.1,
        "domain.md §6: \"no treatment after a single seizure or a few brief nocturnal ones; treat for frequent, "
        "prolonged or daytime seizures or at the family's request\"; the share is not published",
        assumption=True,
    )
    """Probability of starting levetiracetam after a single lifetime seizure that was not prolonged: the
    family's request (ASSUMPTION, mean across physicians; practice per domain.md §6 waits otherwise).
    Daytime seizures are not simulated apart from nocturnal ones, so a daytime single seizure is part of
    this share."""
    treat_single_sd: float = _p(0.05, "physician-to-physician variability", assumption=True)
    """SD of the single-seizure (family request) start probability across physicians."""
    treat_after_prolonged_single_seizure: float = _p(
        0.9, "domain.md §6: treat for prolonged seizures (as likely as after recurrence, below)", assumption=True)
    """Probability of starting after a single lifetime seizure that was prolonged (ASSUMPTION)."""
    prolonged_seizure_duration_class: int = _p(
        3, "over 5 minutes: the ILAE 2015 time point t1 after which a seizure is prolonged (outside convention; §6 does not define prolonged)", assumption=True)
    """Longest-seizure class (1 under 1 min, 2 1–5 min, 3 over 5 min) from which a seizure counts as prolonged."""
    treat_after_recurrence: float = _p(0.9, "BECT practice: treat recurrent seizures", assumption=True)
    """Probability of starting when seizures have recurred."""
    start_mg_per_kg_day: float = _p(20.0, "domain.md §2: start 10 mg/kg BID")
    """Starting dose."""
    maintenance_target_mg_per_kg_day: float = _p(35.0, "domain.md §2: label target up to 30 mg/kg BID; BECT practice mean ~39 mg/kg/day (Vogtareuth)", assumption=True)
    """Mean maintenance dose physicians titrate towards after the start (physician trait)."""
    maintenance_target_sd: float = _p(5.0, "physician-to-physician variability", assumption=True)
    """SD of the maintenance target across physicians."""
    maintenance_tolerance_mg_per_kg_day: float = _p(6.0, "physicians tolerate being somewhat below target", assumption=True)
    """A seizure-free child more than this below the target is titrated up (start phase and weight growth)."""
    growth_raise_probability: float = _p(0.7, "physicians titrate or adjust for growth at most such visits", assumption=True)
    """Probability of going up one class when below the target by more than the tolerance."""
    titrate_two_steps_probability: float = _p(0.2, "domain.md §2: +10 mg/kg BID every 2 weeks allows several steps between visits", assumption=True)
    """Probability of going up two classes (rather than one) after seizures."""
    taper_after_years_mean: float = _p(2.0, "domain.md §4 / issue #3: taper after about two seizure-free years")
    """Mean seizure-free time before tapering (physician trait, normal)."""
    taper_after_years_sd: float = _p(0.3, "physician-to-physician variability", assumption=True)
    """SD of the taper threshold across physicians."""
    taper_age_years: float = _p(15.5, "domain.md §4: remission by 15–16 y, then off drugs")
    """From this age a child seizure-free for a year is tapered."""
    taper_classes_per_visit: int = _p(2, "domain.md §2: withdrawal ≤10 mg/kg BID per 2 weeks", assumption=True)
    """Dose classes removed per visit while tapering."""
    ae_reduce_probability: float = _p(0.5, "dose lowered after behavioural effects at some visits", assumption=True)
    """Probability of lowering the dose by one class when a behavioural adverse effect is reported."""
    class_habit_bonus: tuple[float, ...] = _p(
        (0.0, -2.0, -0.5, -2.0, 0.5, 1.1, 0.7, -0.5, 0.0, -2.0, -1.0, -1.0),
        "prescribing habits of the study clinic, fitted to the dose counts of domain.md §1",
        assumption=True,
    )
    """Log-odds bonus of each of the 12 dose classes when the physician chooses around an intended class."""
    spread_range: tuple[float, float] = _p((0.6, 1.4), "physician-to-physician variability", assumption=True)
    """Uniform range of the physician's spread (scales the mass put on non-intended classes)."""
    round_dose_bonus: float = _p(0.4, "domain.md §2: prefer whole-tablet doses above 20 kg", assumption=True)
    """Log-odds bonus of whole-tablet daily doses (0.5, 1, 1.5, 2, 3 g) above 20 kg."""
    restart_probability: float = _p(0.8, "seizures after withdrawal: restart", assumption=True)
    """Probability of restarting levetiracetam after seizures off drug (previously treated)."""

    # --- Reward (domain.md §1) ------------------------------------------------------------------
    reward_weights: tuple[float, float, float] = _p(REWARD_WEIGHTS, "domain.md §1: R = 0.5·R1 + 0.4·R2 + 0.1·R3")
    """Weights of since-last-visit, last-3-months and last-6-months terms."""
    reward_magnitude: float = _p(REWARD_MAGNITUDE, "domain.md §1: +100 no seizure, −100 seizure, 0 unknown")
    """Magnitude of each reward term."""
    gamma: float = _p(0.9, "discount per visit (not published: project default)", assumption=True)
    """Discount factor per visit for the discounted return."""
    adverse_effect_weight: float = _p(0.0, "not published: 0 keeps the published reward (domain.md §1)")
    """Weight of the optional adverse-effect term: the reward loses weight·100 at a visit reporting a behavioural effect."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, date) else list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimulatorConfig:
        """Inverse of :meth:`to_json`; unknown keys are an error."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown configuration fields: {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            default = names[name].default
            if isinstance(default, date):
                kwargs[name] = date.fromisoformat(value)
            elif isinstance(default, tuple):
                kwargs[name] = tuple(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)


def sources(config_type: type[SimulatorConfig] = SimulatorConfig) -> list[dict[str, Any]]:
    """Each field's name, source and assumption flag (for the calibration report)."""
    return [
        {"name": f.name, "source": f.metadata.get("source", ""), "assumption": bool(f.metadata.get("assumption", False))}
        for f in dataclasses.fields(config_type)
    ]


# Exposure–response profiles as data: the configuration fields each one sets (every other field is
# shared, so both profiles meet the same children, seizure processes and physicians).
#
# "sourced" (the default) takes Schoemaker, Wade & Stockis 2018 (DDMoRe DDMODEL00000239; values read
# from the final estimates in the nlmixr2lib port inst/modeldb/ddmore/Schoemaker_2018_levetiracetam.R,
# domain.md §4). Adopted as published: the responder/non-responder mixture, a hyperbolic Emax on the
# log seizure rate driven by the average concentration, EC50 = exp(3.45) ≈ 31.5 mg/L with no
# between-child variability, the multiplicative η on log Emax (variance 0.640), and the paediatric
# offsets on Emax, EC50, placebo and the mixture (fixed 0: children share the adult relationship).
# Adapted to BECT, because the published values describe refractory focal epilepsy on add-on therapy:
# - baseline rate: BECT's own natural history (about 3 seizures a year, calibrated to 71% untreated
#   recurrence within 6 months, Rating 2000) replaces the published log baseline −1.09 + 0.42
#   (paediatric offset) per day, ≈ 186 seizures a year;
# - placebo: the published log placebo effect (−0.16) is left out, because the untreated reference is
#   itself a placebo arm (Rating 2000), so the baseline already contains it;
# - responder share and log Emax: with the published p = 0.335 and log Emax −3.13, non-responders
#   alone give (1 − 0.335)·71% ≈ 47% recurrence and 30 mg/kg/day recurs in 62% (45% with p = 1), far
#   from BECT's 19% on LEV (Borggraefe 2013). Non-responders recur as if untreated, which bounds their
#   share by 19/71 ≈ 27%; 10% is assumed (p = 0.9) and log Emax scaled (−3.13 → −12) until 30 mg/kg/day
#   gives 19%. The dose the HEAD trial used could not be read (abstract only), so 30 mg/kg/day, the
#   middle of the 20–40 mg/kg/day range, is the calibration point.
# - PK variability: 40% CV on CL (Tauzin 2021: assume 35–45%), not the earlier 30%.
# Not verified: the paper's own tables (only the DDMoRe estimates in the port were read), the
# paediatric Markov term (daily counts; the simulator has no daily counts) and the negative-binomial
# overdispersion (the simulator's seizures are Poisson within a child, log-normal across children).
# Toublanc 2008's parameter table could not be reached (abstract only: CL/F on weight, dose, CLcr and
# enzyme inducers), so the typical PK stays Pellock's (domain.md §3).
#
# "fitted" is the earlier world, kept for sensitivity analyses and to reproduce earlier results: a
# fractional Emax with EC50 0.7 mg/L (log SD 1.0) fitted to the recurrence figures, not sourced, with
# 30% CV on CL and the earlier behavioural adverse-effect hazards. Somnolence is recorded alike in both.
PD_PROFILES: Final[dict[str, dict[str, Any]]] = {
    "sourced": {
        "pd_profile": "sourced",
        "pd_model": "log_rate_mixture",
        "responder_share": 0.90,
        "log_emax": -12.0,
        "log_emax_iiv_variance": 0.640,
        "ec50_median_mg_l": 31.5,
        "ec50_log_sd": 0.0,
        "hill": 1.0,
        "cl_bsv_cv": 0.40,
        "ae_background_per_year": SimulatorConfig().ae_background_per_year,
        "ae_lev_per_year": SimulatorConfig().ae_lev_per_year,
        "ae_per_mg_l_per_year": SimulatorConfig().ae_per_mg_l_per_year,
    },
    "fitted": {
        "pd_profile": "fitted",
        "pd_model": "fraction_emax",
        "responder_share": 1.0,
        "emax": 0.95,
        "ec50_median_mg_l": 0.7,
        "ec50_log_sd": 1.0,
        "hill": 1.0,
        "cl_bsv_cv": 0.30,
        "ae_background_per_year": 0.25,
        "ae_lev_per_year": 0.25,
        "ae_per_mg_l_per_year": 0.005,
    },
}
PD_PROFILE_NAMES: Final = tuple(PD_PROFILES)


def with_pd_profile(config: SimulatorConfig, name: str) -> SimulatorConfig:
    """The same configuration in the named exposure–response world (PD_PROFILES)."""
    if name not in PD_PROFILES:
        raise ValueError(f"unknown PD profile {name!r}; choose one of {', '.join(PD_PROFILES)}")
    return dataclasses.replace(config, **PD_PROFILES[name])


DEFAULT_CONFIG = SimulatorConfig()


def ending_on(config: SimulatorConfig, end: date) -> SimulatorConfig:
    """The same configuration with its follow-up window moved (same length) to end on ``end``.

    For demonstrations and sandbox runs "today": the study's own window (2016–2021) would leave every
    child's latest weight years old, and the service rightly refuses to dose on that.
    """
    return dataclasses.replace(config, study_start=end - (config.study_end - config.study_start), study_end=end)
