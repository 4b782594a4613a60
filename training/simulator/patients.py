"""Simulated children: traits, growth, renal function, PK/PD parameters and the natural seizure process.

Everything a child *is* is drawn once here from the configuration (../shared/domain.md §1–4); what
happens at visits (treatment, observed seizures) is decided in :mod:`training.simulator.simulate`.

Seizures (domain.md §4): untreated, a child has seizures as a Poisson process of rate λ0 (log-normal
across children; ~10% have only the first seizure) from onset until spontaneous remission (log-normal
1–3 y after onset, and by 15.5 y at the latest). Treatment thins that process: a seizure at time t
happens when its mark u ~ U(0, 1) is below 1 − E(C), E(C) the fractional rate reduction at the
steady-state average concentration C: in the sourced profile 1 − exp(log Emax · C / (EC50 + C)) for
responders and 0 for non-responders (Schoemaker 2018, adapted to BECT: config.PD_PROFILES), in the
fitted profile Emax · C^h / (EC50^h + C^h). Thinning the same
marked events gives every policy the same underlying child (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.dosing import DAYS_PER_YEAR, SCHWARTZ_K
from training.simulator.config import SimulatorConfig


@dataclass(frozen=True)
class PhysicianTraits:
    """One physician's habits (physician-to-physician variability)."""

    physician_index: int
    spread: float
    taper_after_years: float
    treat_single: float  # share of families asking for treatment after a seizure, untreated (domain.md §6); honoured
    treat_recurrence: float
    maintenance_target: float


@dataclass
class Child:
    """The true, hidden parameters of one simulated child."""

    index: int
    patient_id: str
    id_base: int  # 128-bit base for this child's deterministic resource UUIDs
    sex: str
    birth_date: date
    onset_date: date
    first_visit_date: date
    weight_z: float
    weight_drift_per_year: float
    height_z: float
    egfr: float
    behaviour_history: bool
    single_seizure: bool
    baseline_rate_per_year: float
    remission_date: date
    cl_factor: float
    v_factor: float
    ec50_mg_l: float
    exam_trait: int
    seizure_days: np.ndarray  # integer days since onset of natural (untreated) seizures, sorted
    seizure_marks: np.ndarray  # U(0,1) marks: a seizure happens under treatment iff mark < 1 − effect
    physician: PhysicianTraits
    seed: int  # seeds the child's visit stream (common random numbers across policies)
    responder: bool = True  # levetiracetam lowers this child's seizure rate (log_rate_mixture)
    log_emax: float = 0.0  # this responder's maximum effect on the log seizure rate (log_rate_mixture)

    def age_years(self, day: date) -> float:
        return (day - self.birth_date).days / DAYS_PER_YEAR

    def weight_kg(self, day: date, config: SimulatorConfig) -> float:
        """True weight: the sex-specific median at this age times the child's (drifting) percentile."""
        age = self.age_years(day)
        medians = config.weight_median_boys_kg if self.sex == "male" else config.weight_median_girls_kg
        median = float(np.interp(age, config.growth_ages_years, medians))
        z = self.weight_z + self.weight_drift_per_year * (day - self.onset_date).days / DAYS_PER_YEAR
        return median * float(np.exp(config.weight_log_sd * z))

    def height_cm(self, day: date, config: SimulatorConfig) -> float:
        """True height: the sex-specific median at this age times the child's percentile."""
        medians = config.height_median_boys_cm if self.sex == "male" else config.height_median_girls_cm
        median = float(np.interp(self.age_years(day), config.growth_ages_years, medians))
        return median * float(np.exp(config.height_log_sd * self.height_z))

    def creatinine_mg_dl(self, day: date, config: SimulatorConfig) -> float:
        """True serum creatinine implied by height and eGFR through bedside Schwartz (domain.md §2)."""
        return SCHWARTZ_K * self.height_cm(day, config) / self.egfr

    def pk_parameters(self, day: date, config: SimulatorConfig) -> pk.PKParameters:
        """Individual PK parameters at this day's weight: typical values times BSV factors."""
        scale = config.cl_reference_l_per_h / pk.CL_REF_L_PER_H
        return pk.typical_parameters(self.weight_kg(day, config), self.egfr, cl_factor=self.cl_factor * scale, v_factor=self.v_factor)

    def average_concentration(self, mg_per_day: float, day: date, config: SimulatorConfig) -> float:
        """Steady-state average concentration (mg/L) of a daily dose BID at this day's weight."""
        if mg_per_day <= 0:
            return 0.0
        # Average at steady state = daily dose / (24 h · CL/F), same model as fhir_mapping.pharmacokinetics.
        weight = self.weight_kg(day, config)
        renal = pk.RENAL_NONRENAL_FRACTION + pk.RENAL_FRACTION * min(self.egfr, pk.EGFR_REFERENCE) / pk.EGFR_REFERENCE
        clearance = config.cl_reference_l_per_h * (weight / pk.WEIGHT_REF_KG) ** pk.ALLOMETRIC_EXPONENT_CL * renal * self.cl_factor
        return mg_per_day / (pk.HOURS_PER_DAY * clearance)

    def drug_effect(self, concentration: float, config: SimulatorConfig) -> float:
        """Fractional reduction of the seizure rate at an average concentration (mg/L), per ``config.pd_model``.

        log_rate_mixture (Schoemaker 2018): a responder's rate is multiplied by
        exp(log_emax · C^h / (EC50^h + C^h)); a non-responder's is unchanged. fraction_emax: the rate
        falls by emax · C^h / (EC50^h + C^h).
        """
        if concentration <= 0:
            return 0.0
        c_h = concentration**config.hill
        occupancy = c_h / (self.ec50_mg_l**config.hill + c_h)
        if config.pd_model == "log_rate_mixture":
            return 0.0 if not self.responder else float(1.0 - np.exp(self.log_emax * occupancy))
        if config.pd_model == "fraction_emax":
            return config.emax * occupancy
        raise ValueError(f"unknown pd_model {config.pd_model!r}")


_VERSION_4_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_4_BITS = (0x4000 << 64) | (0x8000 << 48)


def _uuid(value: int) -> str:
    """A version-4-shaped UUID string from 128 bits (same result as ``uuid.UUID(int=..., version=4)``)."""
    h = f"{(value & _VERSION_4_MASK) | _VERSION_4_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def resource_uuid(child: Child, counter: int) -> str:
    """Deterministic UUID of the ``counter``-th resource of a child."""
    return _uuid(child.id_base + (counter << 20))


def draw_physicians(config: SimulatorConfig, rng: np.random.Generator, count: int = 40) -> list[PhysicianTraits]:
    """A pool of physicians with their own habits."""
    physicians = []
    for index in range(count):
        physicians.append(
            PhysicianTraits(
                physician_index=index,
                spread=float(rng.uniform(*config.spread_range)),
                taper_after_years=float(max(1.0, rng.normal(config.taper_after_years_mean, config.taper_after_years_sd))),
                treat_single=float(np.clip(config.treat_after_single_seizure + rng.normal(0, config.treat_single_sd), 0.0, 1.0)),
                treat_recurrence=float(np.clip(config.treat_after_recurrence + rng.normal(0, 0.05), 0.0, 1.0)),
                maintenance_target=float(max(15.0, rng.normal(config.maintenance_target_mg_per_kg_day, config.maintenance_target_sd))),
            )
        )
    return physicians


def draw_child(index: int, config: SimulatorConfig, rng: np.random.Generator, physicians: list[PhysicianTraits]) -> Child:
    """Draw one child's traits and natural seizure process from the configuration."""
    low, high = config.onset_age_bounds_years
    onset_age = low - 1.0
    while not low <= onset_age <= high:
        onset_age = rng.normal(config.onset_age_mean_years, config.onset_age_sd_years)
    span_days = (config.study_end - config.study_start).days
    first_visit = config.study_start + timedelta(days=int(rng.integers(0, span_days)))
    delay = int(rng.uniform(*config.presentation_delay_days))
    onset_date = first_visit - timedelta(days=delay)
    birth_date = onset_date - timedelta(days=int(onset_age * DAYS_PER_YEAR))
    sex = "male" if rng.random() < config.male_share else "female"
    if rng.random() < config.reduced_egfr_share:
        egfr = float(rng.uniform(*config.reduced_egfr_range))
    else:
        egfr = float(max(85.0, rng.normal(config.egfr_normal_mean, config.egfr_normal_sd)))
    single = bool(rng.random() < config.single_seizure_share)
    rate = float(config.baseline_rate_median_per_year * np.exp(config.baseline_rate_log_sd * rng.standard_normal()))
    remission_years = float(config.remission_years_median * np.exp(config.remission_years_log_sd * rng.standard_normal()))
    remission_years = min(remission_years, max(0.1, config.remission_age_max_years - onset_age))
    remission_days = int(remission_years * DAYS_PER_YEAR)
    # The first seizure (onset, day 0) always happens; the rest follow the Poisson process to remission.
    n_more = 0 if single else int(rng.poisson(rate * remission_years))
    more_days = np.sort(rng.integers(0, remission_days + 1, size=n_more))
    seizure_days = np.concatenate([[0], more_days]).astype(np.int64)
    marks = rng.random(seizure_days.size)
    marks[0] = 0.0  # the onset seizure brought the child to the clinic
    cl_sd = float(np.sqrt(np.log1p(config.cl_bsv_cv**2)))
    v_sd = float(np.sqrt(np.log1p(config.v_bsv_cv**2)))
    exam_trait = int(rng.choice(3, p=np.asarray(config.exam_class_shares) / sum(config.exam_class_shares)))
    child = Child(
        index=index,
        patient_id=_uuid(int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))),
        id_base=int(rng.integers(0, 2**63)) << 64,
        sex=sex,
        birth_date=birth_date,
        onset_date=onset_date,
        first_visit_date=first_visit,
        weight_z=float(rng.standard_normal()),
        weight_drift_per_year=float(rng.normal(0.0, config.percentile_drift_sd_per_year)),
        height_z=float(rng.standard_normal()),
        egfr=egfr,
        behaviour_history=bool(rng.random() < config.behaviour_history_share),
        single_seizure=single,
        baseline_rate_per_year=0.0 if single else rate,
        remission_date=onset_date + timedelta(days=remission_days),
        cl_factor=float(np.exp(cl_sd * rng.standard_normal())),
        v_factor=float(np.exp(v_sd * rng.standard_normal())),
        ec50_mg_l=float(config.ec50_median_mg_l * np.exp(config.ec50_log_sd * rng.standard_normal())),
        exam_trait=exam_trait,
        seizure_days=seizure_days,
        seizure_marks=marks,
        physician=physicians[int(rng.integers(0, len(physicians)))],
        seed=int(rng.integers(0, 2**63)),
    )
    # Drawn last, so that every earlier trait (and the patient id) is the same under every PD profile.
    child.responder = bool(rng.random() < config.responder_share)
    child.log_emax = float(config.log_emax * np.exp(np.sqrt(config.log_emax_iiv_variance) * rng.standard_normal()))
    return child


def draw_cohort(n_patients: int, seed: int, config: SimulatorConfig) -> list[Child]:
    """``n_patients`` children, deterministic for a seed (child i is the same whatever ``n_patients``)."""
    root = np.random.SeedSequence(seed)
    physicians = draw_physicians(config, np.random.default_rng(root.spawn(1)[0]))
    children = []
    for index, child_seed in enumerate(np.random.SeedSequence(seed, spawn_key=(1,)).spawn(n_patients)):
        children.append(draw_child(index, config, np.random.default_rng(child_seed), physicians))
    return children
