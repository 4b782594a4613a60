"""The data-generating physician: a stochastic policy over the 12 dose classes, label-safe.

It reads only what the mapping sees (a :class:`PatientTimeline` up to the current visit, whose
``lev`` is not yet decided) plus its own habits (:class:`PhysicianTraits`). Rules (domain.md §2, §4):

- not yet treated: start after recurrent seizures at 10 mg/kg BID; after a single lifetime seizure wait
  (domain.md §6: "no treatment after a single seizure"), unless it was prolonged (over 5 minutes) or
  the family asks for treatment (recorded at the visit; how often families ask is the clinic's
  ``treat_single``);
- seizures since the last visit on treatment: up one dose class (sometimes two);
- behavioural adverse effect: sometimes down one class;
- seizure-free for about two years (a physician trait), or a year from 15.5 y: taper, two classes per visit;
- seizure-free but below the physician's maintenance target (mg/kg/day at 25 kg, scaled to the child by
  weight^0.75 so exposure is equal, domain.md §3) by more than a tolerance: often up one class (the
  titration after the start, and growth);
- otherwise hold; restart after seizures off drug;
- never above :func:`fhir_mapping.dosing.allowed_dose_mask` at the latest weight, age and eGFR.

The choice around an intended class is a softmax over the allowed positive classes: log-odds fall with
the distance from the intended class (less steeply for a physician with a wide spread), each class has
a habit bonus (the clinic's prescribing habits) and whole-tablet doses get a bonus above 20 kg. Each visit's full probability vector is returned, so off-policy evaluation and the best
achievable agreement E[max_a π(a|s)] can use it.
"""

from __future__ import annotations

import numpy as np

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.dosing import DOSE_CLASSES_MG, N_DOSE_CLASSES, allowed_dose_mask, dose_class_of
from fhir_mapping.emit import SOLUTION_MAX_WEIGHT_KG
from fhir_mapping.timeline import PatientTimeline, Visit
from training.simulator.config import SimulatorConfig
from training.simulator.patients import PhysicianTraits

# Daily doses given as whole tablets twice daily (250/500/750/1000 mg tablets, domain.md §2).
_WHOLE_TABLET = np.array([mg > 0 and (mg / 2) % 250 == 0 for mg in DOSE_CLASSES_MG])
_CLASS_INDEX = np.arange(N_DOSE_CLASSES)
# Log-odds lost per class of distance from the intended class (a physician rarely jumps classes).
_DISTANCE_DECAY = 2.5


def latest(visits: list[Visit], attribute: str) -> float | None:
    """The most recent non-missing value of a numeric visit attribute."""
    for visit in reversed(visits):
        value = getattr(visit, attribute)
        if value is not None:
            return float(value)
    return None


def observed_mask(timeline: PatientTimeline) -> tuple[bool, ...]:
    """The label mask at the current visit from what the timeline records (latest weight and eGFR)."""
    visit = timeline.visits[-1]
    age = visit.age_years if visit.age_years is not None else timeline.age_years_on(visit.date)
    return allowed_dose_mask(latest(timeline.visits, "weight_kg"), age, latest(timeline.visits, "egfr"))


def seizure_free_days(visits: list[Visit]) -> int:
    """Days from the last visit that reported a seizure (or from the first visit) to the current one."""
    current = visits[-1].date
    for visit in reversed(visits):
        if visit.seizure_since_last_visit:
            return (current - visit.date).days
    return (current - visits[0].date).days


class SimulatedPhysician:
    """One physician's stochastic policy; ``probabilities(timeline)`` is π(·|s), calling it samples."""

    def __init__(self, traits: PhysicianTraits, config: SimulatorConfig, rng: np.random.Generator | None = None) -> None:
        self.traits = traits
        self.config = config
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def __call__(self, timeline: PatientTimeline) -> int:
        return int(self.rng.choice(N_DOSE_CLASSES, p=self.probabilities(timeline)))

    def probabilities(self, timeline: PatientTimeline, mask: tuple[bool, ...] | None = None) -> np.ndarray:
        """π(a|s) over the 12 dose classes at the last visit of the timeline; zero outside the label mask.

        ``mask`` is :func:`observed_mask` of the timeline when the caller has it already.
        """
        config, traits = self.config, self.traits
        visits = timeline.visits
        visit = visits[-1]
        allowed = np.array(observed_mask(timeline) if mask is None else mask)
        max_class = int(_CLASS_INDEX[allowed].max())
        weight = latest(visits, "weight_kg")
        current = dose_class_of(visit.lev_mg_per_day_before)
        seizure = bool(visit.seizure_since_last_visit)
        ever_treated = any(v.lev_mg_per_day_before > 0 for v in visits)
        free_days = seizure_free_days(visits)
        age = visit.age_years if visit.age_years is not None else timeline.age_years_on(visit.date) or 0.0
        if current == 0:
            if weight is None or max_class == 0:
                return self._point(0)
            start = self._nearest_class(config.start_mg_per_kg_day * weight, max_class)
            if ever_treated:
                p_start = config.restart_probability if seizure else 0.0
            else:
                seizures_so_far = sum(v.seizure_count_since_last_visit or 0 for v in visits)
                if not seizure:
                    p_start = 0.0
                elif seizures_so_far >= 2:
                    p_start = traits.treat_recurrence
                elif (visit.seizure_duration_class or 0) >= config.prolonged_seizure_duration_class:
                    p_start = config.treat_after_prolonged_single_seizure
                else:
                    p_start = 1.0 if visit.family_requests_treatment else 0.0
            return p_start * self._around(start, allowed, weight) + (1.0 - p_start) * self._point(0)
        if current > max_class:  # renal function or weight no longer allow the dose: cap it
            return self._around(max_class, allowed, weight, spread_down_only=True)
        if seizure:
            up = min(current + 1, max_class)
            two = min(current + 2, max_class)
            p_two = config.titrate_two_steps_probability
            return (1 - p_two) * self._around(up, allowed, weight) + p_two * self._around(two, allowed, weight)
        if visit.behaviour_adverse_effect:
            p_down = config.ae_reduce_probability
            return p_down * self._around(max(current - 1, 1), allowed, weight) + (1 - p_down) * self._around(current, allowed, weight)
        taper = free_days >= traits.taper_after_years * 365.25 or (age >= config.taper_age_years and free_days >= 365)
        if taper:
            target = current - config.taper_classes_per_visit
            return self._point(0) if target <= 0 else self._around(target, allowed, weight)
        if weight is not None and DOSE_CLASSES_MG[current] < self._exposure_equivalent(traits.maintenance_target - config.maintenance_tolerance_mg_per_kg_day, weight) and current < max_class:
            p_raise = config.growth_raise_probability
            return p_raise * self._around(min(current + 1, max_class), allowed, weight) + (1 - p_raise) * self._around(current, allowed, weight)
        return self._around(current, allowed, weight)

    def _exposure_equivalent(self, mg_per_kg_day: float, weight: float) -> float:
        """Daily dose giving the exposure of ``mg_per_kg_day`` at 25 kg (clearance ∝ weight^0.75, domain.md §3)."""
        return mg_per_kg_day * pk.WEIGHT_REF_KG * (weight / pk.WEIGHT_REF_KG) ** pk.ALLOMETRIC_EXPONENT_CL

    # --- distributions ----------------------------------------------------------------------
    def _point(self, dose_class: int) -> np.ndarray:
        p = np.zeros(N_DOSE_CLASSES)
        p[dose_class] = 1.0
        return p

    def _nearest_class(self, mg_per_day: float, max_class: int) -> int:
        return max(1, min(dose_class_of(mg_per_day), max_class))

    def _around(self, intended: int, mask: np.ndarray, weight: float | None, *, spread_down_only: bool = False) -> np.ndarray:
        """Softmax over positive allowed classes: distance from ``intended`` (scaled by the physician's
        spread), the clinic's habits per class, and a whole-tablet bonus above 20 kg."""
        config = self.config
        distance = np.abs(_CLASS_INDEX - intended).astype(float)
        logits = -distance * _DISTANCE_DECAY / self.traits.spread + np.asarray(config.class_habit_bonus)
        if weight is not None and weight > SOLUTION_MAX_WEIGHT_KG:
            logits = logits + config.round_dose_bonus * _WHOLE_TABLET
        allowed = mask & (_CLASS_INDEX > 0)
        if spread_down_only:
            allowed &= intended >= _CLASS_INDEX
        if not allowed.any():
            return self._point(0)
        weights = np.where(allowed, np.exp(logits - logits[allowed].max()), 0.0)
        return weights / weights.sum()
