"""One child's follow-up under a policy: visits, observed data, decisions and the truth behind them.

The loop is the same for the data-generating physician and for any policy evaluated in the
counterfactual environment. At each visit the simulator builds the :class:`Visit` the mapping would
read from the FHIR it emits (weight, height, seizure reports, labs, EEG, the order in effect on
arrival), appends it to the child's :class:`PatientTimeline`, asks the policy for a dose class, and
moves on to the next visit. Random numbers are drawn in fixed-size blocks per visit from the child's
own stream, so two policies see the same child, the same seizure marks and the same visit-level noise
(common random numbers); only the consequences of their doses differ.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

import numpy as np

from fhir_mapping import pharmacokinetics as pk
from fhir_mapping.codes import ASSESSMENT_CLASSES, EEG_RESULTS, EXAM_CLASSES
from fhir_mapping.dosing import DAYS_PER_YEAR, DOSE_CLASSES_MG, N_DOSE_CLASSES, schwartz_egfr
from fhir_mapping.emit import SOLUTION_MAX_WEIGHT_KG, TABLETS
from fhir_mapping.timeline import LevOrder, Measurement, PatientTimeline, Visit
from training.reward import reward
from training.simulator.config import SimulatorConfig
from training.simulator.levels import LevelTiming, level_timing
from training.simulator.patients import Child, resource_uuid
from training.simulator.physician import SimulatedPhysician, observed_mask

MAX_VISITS = 60
_UNIFORMS_PER_VISIT = 16
_NORMALS_PER_VISIT = 8
THREE_MONTHS_DAYS = 91
SIX_MONTHS_DAYS = 182

Policy = Callable[[PatientTimeline], int]


@dataclass
class VisitTruth:
    """What really happened at one visit, beside what was recorded (for truth files and evaluation)."""

    date: date
    encounter_id: str
    dose_class_before: int
    dose_class: int  # -1 until the policy has decided
    probabilities: list[float] | None
    seizure_count: int
    seizure_since_last_visit: bool
    seizure_last_3_months: bool
    seizure_last_6_months: bool
    average_concentration: float  # over the interval that ended at this visit
    drug_effect: float
    adverse_effect: bool
    in_remission: bool
    weight_kg: float
    height_cm: float
    egfr_true: float
    allowed: tuple[bool, ...]  # the label mask the policy's state implies
    # recorded extras for the FHIR writer
    weight_in_pounds: bool = False
    exam_class: str = "good"
    assessment: str = "stable"
    duration_class: int = 0
    labs: dict[str, float] = field(default_factory=dict)
    creatinine_in_umol: bool = False
    eeg: str | None = None
    order_id: str | None = None
    level_timing: LevelTiming | None = None  # when a level was drawn, and what its request says
    somnolence: bool = False  # truth only: the FHIR charts carry behavioural effects, not somnolence
    family_requests_treatment: bool | None = None  # asked at an untreated visit with a seizure; charted


@dataclass
class ChildRun:
    """A child's whole follow-up: the hidden child, the visits' truth and the timeline the policy saw."""

    child: Child
    visits: list[VisitTruth]
    timeline: PatientTimeline

    def rewards(self, config: SimulatorConfig) -> np.ndarray:
        """Reward observed at each visit from the second on: R = 0.5·R1 + 0.4·R2 + 0.1·R3 (domain.md §1),
        minus ``config.adverse_effect_weight``·100 at a visit reporting a behavioural adverse effect."""
        return np.asarray(
            [reward_of_truth(v, config) for v in self.visits[1:]],
            dtype=float,
        )


def behaviour_hazard(config: SimulatorConfig, on_drug: bool, concentration: float, history: bool) -> float:
    """Yearly hazard of a reported behavioural effect (aggression, irritability; domain.md §4): background,
    plus on levetiracetam a dose-independent part and a weak linear exposure term, times the history multiplier."""
    hazard = config.ae_background_per_year
    if on_drug:
        hazard += config.ae_lev_per_year + config.ae_per_mg_l_per_year * concentration
    return hazard * (config.ae_history_multiplier if history else 1.0)


def somnolence_hazard(config: SimulatorConfig, on_drug: bool, concentration: float) -> float:
    """Yearly hazard of reported somnolence (domain.md §4: 13% on LEV vs 9% on placebo), same structure."""
    hazard = config.somnolence_background_per_year
    if on_drug:
        hazard += config.somnolence_lev_per_year + config.somnolence_per_mg_l_per_year * concentration
    return hazard


def _exam(child: Child, u_keep: float, u_draw: float, config: SimulatorConfig) -> str:
    if u_keep < config.exam_trait_persistence:
        return EXAM_CLASSES[child.exam_trait]
    cumulative = np.cumsum(config.exam_class_shares) / sum(config.exam_class_shares)
    return EXAM_CLASSES[int(np.searchsorted(cumulative, u_draw))]


@dataclass
class Decision:
    """What a policy is asked at one visit: the state it sees and the visit's truth (dose not yet decided)."""

    view: PatientTimeline
    truth: VisitTruth
    uniform: float  # the visit's own U(0,1) draw for sampling a stochastic policy (common random numbers)


# What a policy returns when it leaves the decision to the child's own physician (a card that recommends
# nothing: the clinician goes on as without it); only with ``run_child(..., clinician=...)``.
DEFER_TO_CLINICIAN: Final = -2


def run_child(
    child: Child,
    config: SimulatorConfig,
    policy: Policy | SimulatedPhysician,
    *,
    record_probabilities: bool = True,
    state_view: Callable[[ChildRun], PatientTimeline] | None = None,
    clinician: SimulatedPhysician | None = None,
) -> ChildRun:
    """Follow one child visit by visit under ``policy`` (physician or any callable on the timeline).

    ``state_view`` turns the run so far (the current visit not yet decided) into the timeline the
    policy sees; by default the simulator's own direct timeline (fast, used to log the physician's
    cohort), in the environment the timeline :mod:`fhir_mapping.build` reads from the emitted FHIR.
    ``clinician``: the physician who decides wherever ``policy`` returns :data:`DEFER_TO_CLINICIAN`, with the
    visit's own draw (the same common random numbers as the physician's own run).
    """
    steps = child_steps(child, config, state_view=state_view)

    def physician_action(physician: SimulatedPhysician, decision: Decision) -> int:
        probabilities = physician.probabilities(decision.view, decision.truth.allowed)
        action = int(np.searchsorted(np.cumsum(probabilities), decision.uniform * probabilities.sum(), side="right"))
        decision.truth.probabilities = [round(float(p), 6) for p in probabilities] if record_probabilities else None
        return min(action, N_DOSE_CLASSES - 1)

    try:
        decision = next(steps)
        while True:
            if isinstance(policy, SimulatedPhysician):
                action = physician_action(policy, decision)
            else:
                action = int(policy(decision.view))
                if action == DEFER_TO_CLINICIAN:
                    if clinician is None:
                        raise ValueError("the policy deferred to a clinician, but none was given")
                    action = physician_action(clinician, decision)
            decision = steps.send(action)
    except StopIteration as finished:
        return finished.value


def child_steps(
    child: Child, config: SimulatorConfig, *, state_view: Callable[[ChildRun], PatientTimeline] | None = None
) -> Generator[Decision, int, ChildRun]:
    """The child's follow-up as a generator: yields a :class:`Decision` at each visit, receives the dose
    class chosen (``send``), and returns the finished :class:`ChildRun` when follow-up ends."""
    stream = np.random.default_rng(child.seed)
    # Somnolence draws come from a stream of their own, so the visit stream (and so every earlier cohort) is unchanged.
    somnolence_stream = np.random.default_rng([child.seed, 1])
    # So do the family's requests for treatment.
    family_stream = np.random.default_rng([child.seed, 2])
    timeline = PatientTimeline(
        patient_id=child.patient_id, birth_date=child.birth_date, sex=child.sex, onset=child.onset_date, conditions=frozenset({"bect"})
    )
    truths: list[VisitTruth] = []
    onset_ord = child.onset_date.toordinal()
    seizure_ords = child.seizure_days + onset_ord
    happened = np.zeros(seizure_ords.size, dtype=bool)
    day = child.first_visit_date
    previous_day: date | None = None
    current_mg = 0.0
    current_order: LevOrder | None = None
    previous_count = 0
    counter = 1
    last_seizure_ord = onset_ord
    for _ in range(MAX_VISITS):
        u = stream.random(_UNIFORMS_PER_VISIT)
        z = stream.standard_normal(_NORMALS_PER_VISIT)
        day_ord = day.toordinal()
        start_ord = onset_ord - 1 if previous_day is None else previous_day.toordinal()
        interval_start = child.onset_date if previous_day is None else previous_day
        concentration = child.average_concentration(current_mg, interval_start, config)
        effect = child.drug_effect(concentration, config)
        in_interval = (seizure_ords > start_ord) & (seizure_ords <= day_ord)
        happened |= in_interval & (child.seizure_marks < 1.0 - effect)
        count = int((in_interval & happened).sum())
        if count:
            last_seizure_ord = int(seizure_ords[in_interval & happened].max())
        last_3 = bool((happened & (seizure_ords > day_ord - THREE_MONTHS_DAYS) & (seizure_ords <= day_ord)).any())
        last_6 = bool((happened & (seizure_ords > day_ord - SIX_MONTHS_DAYS) & (seizure_ords <= day_ord)).any())
        years = (day_ord - start_ord) / DAYS_PER_YEAR
        on_drug = current_mg > 0
        adverse = bool(u[0] < 1.0 - np.exp(-behaviour_hazard(config, on_drug, concentration, child.behaviour_history) * years))
        somnolence = bool(somnolence_stream.random() < 1.0 - np.exp(-somnolence_hazard(config, on_drug, concentration) * years))
        # After a seizure, a family whose child is not on treatment may ask for it (domain.md §6: "treat ... at
        # the family's request"); how often varies by clinic (PhysicianTraits.treat_single, an ASSUMPTION).
        asks = bool(family_stream.random() < child.physician.treat_single)
        family_requests = True if asks and current_mg == 0 and count > 0 else None  # a request not made is not recorded
        weight = child.weight_kg(day, config)
        height = child.height_cm(day, config)
        # Labs: a panel, creatinine, a drug level (only on treatment), an EEG.
        labs: dict[str, float] = {}
        level_record: LevelTiming | None = None
        if u[7] < config.lab_panel_probability:
            labs["alt"] = round(18.0 * float(np.exp(0.30 * z[0])), 0)
            labs["ast"] = round(26.0 * float(np.exp(0.25 * z[1])), 0)
            labs["wbc"] = round(7.0 * float(np.exp(0.25 * z[2])), 1)
            labs["hemoglobin"] = round(12.8 + 0.9 * float(z[3]), 1)
            labs["platelets"] = round(280.0 * float(np.exp(0.22 * z[4])), 0)
        if u[8] < config.creatinine_probability:
            labs["creatinine"] = round(child.creatinine_mg_dl(day, config) * float(np.exp(config.creatinine_cv * z[5])), 2)
        if current_mg > 0 and u[9] < config.level_probability:
            hours = config.level_sampling_hours[0] + (config.level_sampling_hours[1] - config.level_sampling_hours[0]) * float(u[10])
            level = float(pk.concentration(hours, current_mg, child.pk_parameters(day, config)))
            labs["lev_level"] = round(level * float(np.exp(config.residual_cv * z[6])), 1)
            level_record = level_timing(child.seed, counter, hours)
        active = day < child.remission_date
        eeg = None
        if previous_day is None or u[11] < config.eeg_probability:
            if u[12] < 0.05:
                eeg = EEG_RESULTS[2]
            elif active:
                eeg = EEG_RESULTS[1] if u[13] < 0.85 else EEG_RESULTS[0]
            else:
                eeg = EEG_RESULTS[0] if u[13] < 0.7 else EEG_RESULTS[1]
        duration_class = 0
        if count:
            cumulative = np.cumsum(config.duration_class_shares) / sum(config.duration_class_shares)
            duration_class = 1 + int(np.searchsorted(cumulative, u[14]))
        assessment = ASSESSMENT_CLASSES[0 if count < previous_count else 2 if count > previous_count else 1]
        exam = _exam(child, float(u[4]), float(u[5]), config)
        encounter_id = resource_uuid(child, counter)
        counter += 1
        measured_weight = round(weight, 1)
        measured_height = round(height, 1)
        egfr = round(schwartz_egfr(measured_height, labs["creatinine"]), 1) if "creatinine" in labs else None
        visit = Visit(
            date=day,
            encounter_id=encounter_id,
            age_years=timeline.age_years_on(day),
            weight=Measurement(measured_weight, day, 0),
            height=Measurement(measured_height, day, 0),
            seizure_count_since_last_visit=count,
            seizure_since_last_visit=count > 0,
            seizure_last_3_months=last_3,
            seizure_last_6_months=last_6,
            seizure_duration_class=duration_class,
            exam_class=exam,
            physician_assessment=assessment,
            behaviour_adverse_effect=adverse,
            family_requests_treatment=family_requests,
            labs={key: Measurement(value, day, 0) for key, value in labs.items()},
            egfr=egfr,
            eeg_result=eeg,
            anti_seizure_medicines_before=frozenset({"levetiracetam"}) if current_mg > 0 else frozenset(),
            lev_before=current_order,
            lev=None,
            days_since_previous_visit=None if previous_day is None else (day - previous_day).days,
        )
        timeline.visits.append(visit)
        before_class = 0 if current_order is None else _class_of(current_order.mg_per_day)
        truth = VisitTruth(
            date=day,
            encounter_id=encounter_id,
            dose_class_before=before_class,
            dose_class=-1,  # decided below
            probabilities=None,
            seizure_count=count,
            seizure_since_last_visit=count > 0,
            seizure_last_3_months=last_3,
            seizure_last_6_months=last_6,
            average_concentration=round(concentration, 3),
            drug_effect=round(effect, 4),
            adverse_effect=adverse,
            in_remission=not active,
            weight_kg=weight,
            height_cm=height,
            egfr_true=child.egfr,
            allowed=(),
            weight_in_pounds=bool(u[1] < config.weight_in_pounds_share),
            exam_class=exam,
            assessment=assessment,
            duration_class=duration_class,
            labs=labs,
            creatinine_in_umol=bool(u[2] < config.creatinine_umol_share),
            eeg=eeg,
            level_timing=level_record,
            somnolence=somnolence,
            family_requests_treatment=family_requests,
        )
        truths.append(truth)
        # What the policy sees: the direct timeline, or the one the mapping builds from the FHIR so far.
        view = timeline if state_view is None else state_view(ChildRun(child, truths, timeline))
        truth.allowed = observed_mask(view)
        action = yield Decision(view, truth, float(u[15]))
        if not isinstance(action, (int, np.integer)) or not 0 <= action < N_DOSE_CLASSES:
            raise ValueError(f"policy returned dose class {action!r}, expected 0..{N_DOSE_CLASSES - 1}")
        action = int(action)
        truth.dose_class = action
        new_mg = DOSE_CLASSES_MG[action]
        if new_mg > 0:
            truth.order_id = resource_uuid(child, counter)
            counter += 1
            current_order = LevOrder(
                mg_per_day=new_mg,
                source=f"MedicationRequest/{truth.order_id}",
                status="active",
                formulation="solution" if measured_weight <= SOLUTION_MAX_WEIGHT_KG else _tablet_or_solution(new_mg),
                doses_per_day=2.0,
                authored_on=day,
            )
        else:
            current_order = None
        visit.lev = current_order
        visit.anti_seizure_medicines = frozenset({"levetiracetam"}) if current_order is not None else frozenset()
        # Next visit: soon after a start or change, otherwise 1–6 months; dropout and discharge end follow-up.
        changed = new_mg != current_mg
        previous_count = count
        previous_day = day
        current_mg = new_mg
        if changed and new_mg > 0:
            low, high = config.first_follow_up_days
            gap = low + (high - low) * float(u[3])
        else:
            cumulative = np.cumsum(config.follow_up_weights) / sum(config.follow_up_weights)
            gap = config.follow_up_days[min(int(np.searchsorted(cumulative, u[3])), len(config.follow_up_days) - 1)]
        dropout = config.dropout_per_visit + (config.dropout_seizure_free_extra if count == 0 else 0.0)
        if u[6] < dropout:
            break
        if current_mg == 0 and day_ord - last_seizure_ord >= config.discharge_after_stop_days and any(t.dose_class > 0 for t in truths[:-1]):
            break
        day = day + timedelta(days=round(gap))
        if day > config.study_end or child.age_years(day) >= config.max_age_years:
            break
    return ChildRun(child, truths, timeline)


def _class_of(mg: float) -> int:
    return int(np.argmin(np.abs(np.asarray(DOSE_CLASSES_MG) - mg)))


def _tablet_or_solution(mg_per_day: float) -> str:
    """The formulation fhir_mapping.emit writes above 20 kg: whole tablets when possible, else solution."""
    per_dose = mg_per_day / 2
    whole = any((per_dose / p.strength_mg).is_integer() and 1 <= per_dose / p.strength_mg <= 3 for p in TABLETS)
    return "tablet" if whole else "solution"


def truth_json(run: ChildRun) -> dict[str, Any]:
    """The child's true parameters (one JSON line of truth/patients.jsonl)."""
    child = run.child
    return {
        "patient_id": child.patient_id,
        "sex": child.sex,
        "birth_date": child.birth_date.isoformat(),
        "onset_date": child.onset_date.isoformat(),
        "remission_date": child.remission_date.isoformat(),
        "single_seizure": child.single_seizure,
        "baseline_rate_per_year": round(child.baseline_rate_per_year, 4),
        "egfr": round(child.egfr, 2),
        "behaviour_history": child.behaviour_history,
        "cl_factor": round(child.cl_factor, 5),
        "v_factor": round(child.v_factor, 5),
        "ec50_mg_l": round(child.ec50_mg_l, 5),
        "responder": child.responder,
        "log_emax": round(child.log_emax, 5),
        "physician": child.physician.physician_index,
        "n_visits": len(run.visits),
    }


def visit_truth_json(run: ChildRun, truth: VisitTruth) -> dict[str, Any]:
    """One visit's truth (one JSON line of truth/visits.jsonl), keyed by patient id and visit date."""
    return {
        "patient_id": run.child.patient_id,
        "date": truth.date.isoformat(),
        "encounter_id": truth.encounter_id,
        "dose_class_before": truth.dose_class_before,
        "dose_class": truth.dose_class,
        "action_probabilities": truth.probabilities,
        "allowed": [int(a) for a in truth.allowed],
        "seizure_count": truth.seizure_count,
        "seizure_since_last_visit": truth.seizure_since_last_visit,
        "seizure_last_3_months": truth.seizure_last_3_months,
        "seizure_last_6_months": truth.seizure_last_6_months,
        "average_concentration_mg_l": truth.average_concentration,
        "drug_effect": truth.drug_effect,
        "adverse_effect": truth.adverse_effect,
        "somnolence": truth.somnolence,
        "family_requests_treatment": truth.family_requests_treatment,
        "in_remission": truth.in_remission,
    }


def reward_of_truth(visit: VisitTruth, config: SimulatorConfig) -> float:
    """The reward (training.reward) of a simulated visit's true reports, with the configuration's weights."""
    return reward(visit.seizure_since_last_visit, visit.seizure_last_3_months, visit.seizure_last_6_months,
                  adverse_effect=visit.adverse_effect, adverse_effect_weight=config.adverse_effect_weight,
                  weights=config.reward_weights, magnitude=config.reward_magnitude)
