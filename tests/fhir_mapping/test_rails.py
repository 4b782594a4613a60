"""Clinical rails: each rule on a child built to trigger it, the mask never empty, and the facts read the
same from a timeline and from its state rows (simulated and hand-made timelines)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import numpy as np
import pytest

from fhir_mapping import dosing, rails
from fhir_mapping.build import build_timeline
from fhir_mapping.dosing import DAYS_PER_YEAR, DOSE_CLASSES_MG, N_DOSE_CLASSES, dose_class_of, label_bounds
from fhir_mapping.features import state_row
from fhir_mapping.rails import RailFacts, clinical_rails, facts_at, facts_from_state
from fhir_mapping.timeline import LevOrder, Measurement, PatientTimeline, Visit
from tests.fhir_mapping import factory

BOUNDS_30KG = label_bounds(30.0, 9.0, None)  # ≤1800 mg/day: classes up to 1.75 g


def facts(**changes: object) -> RailFacts:
    """A 9-year-old of 30 kg on 750 mg/day, seizure-free 6 months, 3 seizures so far, nothing else."""
    base = RailFacts(on_levetiracetam=True, current_mg_per_day=750.0, weight_kg=30.0, age_years=9.0,
                     seizure_last_3_months=False, months_seizure_free=6.0, lifetime_seizures=3,
                     adverse_effect=False, measured_level_mg_l=None)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def allowed_mg(outcome: rails.RailOutcome) -> list[float]:
    return [DOSE_CLASSES_MG[i] for i, ok in enumerate(outcome.allowed) if ok]


def fired_ids(outcome: rails.RailOutcome) -> set[str]:
    return {f.rule_id for f in outcome.fired}


def test_rules_are_data_with_sources_and_unique_ids() -> None:
    ids = [r.id for r in rails.RULES]
    assert len(ids) == len(set(ids))
    for rule in rails.RULES:
        assert rule.statement and rule.source and rule.kind in ("rail", "guidance")
        assert "domain.md" in rule.source or "label" in rule.source or "CONTRACT" in rule.source


def test_no_rail_fires_for_a_stable_child_within_the_label() -> None:
    outcome = clinical_rails(facts(), BOUNDS_30KG)
    assert outcome.allowed == BOUNDS_30KG.allowed
    assert outcome.fired == ()
    assert outcome.guidance is not None and outcome.guidance.action == "keep" and outcome.guidance.mg_per_day == 750.0


def test_no_increase_after_twelve_months_seizure_free() -> None:
    outcome = clinical_rails(facts(months_seizure_free=13.0), BOUNDS_30KG)
    assert max(allowed_mg(outcome)) == 750.0 and 0.0 in allowed_mg(outcome)
    assert "R-NO-INCREASE-SEIZURE-FREE" in fired_ids(outcome)
    below = clinical_rails(facts(months_seizure_free=11.0), BOUNDS_30KG)
    assert 1000.0 in allowed_mg(below) and "R-NO-INCREASE-SEIZURE-FREE" not in fired_ids(below)


def test_a_recent_seizure_overrides_a_long_seizure_free_count() -> None:
    outcome = clinical_rails(facts(months_seizure_free=30.0, seizure_last_3_months=True), BOUNDS_30KG)
    assert "R-NO-INCREASE-SEIZURE-FREE" not in fired_ids(outcome) and 1000.0 in allowed_mg(outcome)


def test_no_decrease_while_seizing() -> None:
    outcome = clinical_rails(facts(seizure_last_3_months=True, months_seizure_free=1.0), BOUNDS_30KG)
    assert min(allowed_mg(outcome)) == 750.0
    assert "R-NO-DECREASE-WHILE-SEIZING" in fired_ids(outcome)
    assert outcome.guidance is not None and outcome.guidance.action == "raise"
    assert outcome.guidance.mg_per_day == 1250.0  # 750 + 20 mg/kg/day × 30 kg = 1350 → nearest class 1.25 g


def test_no_decrease_after_seizures_since_the_last_visit_when_the_window_is_unknown() -> None:
    """The rail reads a breakthrough as the raise guidance does: seizures since a visit 6 months ago, not dated."""
    outcome = clinical_rails(facts(seizure_last_3_months=None, seizure_since_last_visit=True, months_seizure_free=None), BOUNDS_30KG)
    assert "R-NO-DECREASE-WHILE-SEIZING" in fired_ids(outcome) and min(allowed_mg(outcome)) == 750.0
    assert any("since the last visit" in f.message for f in outcome.fired)


def test_a_denied_window_lifts_the_seizure_free_count() -> None:
    """A seizure reported at this visit's 4-month interval but none in the last 3 months: at least 3 months
    seizure-free, never "seizure-free 0 months"; 6 with the 6-month window denied; a recent seizure is 0."""
    assert rails.seizure_free_months(facts(months_seizure_free=0.0, seizure_last_3_months=False)) == pytest.approx(
        rails.RECENT_SEIZURE_DAYS / DAYS_PER_YEAR * 12)
    assert rails.seizure_free_months(facts(months_seizure_free=0.0, seizure_last_3_months=False, seizure_last_6_months=False)) == 6.0
    assert rails.seizure_free_months(facts(months_seizure_free=30.0, seizure_last_3_months=False)) == 30.0
    assert rails.seizure_free_months(facts(months_seizure_free=30.0, seizure_last_3_months=True)) == 0.0
    assert rails.seizure_free_months(facts(months_seizure_free=None, seizure_last_3_months=None)) is None


def test_the_raise_guidance_says_which_window_the_seizures_fell_in() -> None:
    """A breakthrough read from "since the last visit" alone is not worded as "in the last 3 months"."""
    recent = clinical_rails(facts(seizure_last_3_months=True, months_seizure_free=1.0), BOUNDS_30KG).guidance
    since = clinical_rails(facts(seizure_last_3_months=None, seizure_since_last_visit=True, months_seizure_free=None),
                           BOUNDS_30KG).guidance
    assert recent is not None and recent.action == "raise" and "in the last 3 months" in recent.text
    assert since is not None and since.action == "raise" and "since the last visit" in since.text
    assert "3 months" not in since.text


@pytest.mark.parametrize("explanation", [{"adverse_effect": True}, {"measured_level_mg_l": 60.0}])
def test_decrease_allowed_while_seizing_when_explained(explanation: dict[str, object]) -> None:
    outcome = clinical_rails(facts(seizure_last_3_months=True, **explanation), BOUNDS_30KG)
    assert "R-NO-DECREASE-WHILE-SEIZING" not in fired_ids(outcome)
    assert 500.0 in allowed_mg(outcome) and 0.0 in allowed_mg(outcome)


def test_a_predicted_level_alone_does_not_license_a_decrease_while_seizing() -> None:
    outcome = clinical_rails(facts(seizure_last_3_months=True, predicted_level_mg_l=55.0), BOUNDS_30KG)
    assert "R-NO-DECREASE-WHILE-SEIZING" in fired_ids(outcome)
    assert "R-NO-INCREASE-HIGH-LEVEL" in fired_ids(outcome)
    assert allowed_mg(outcome) == [750.0]


def test_label_bounds_win_over_no_decrease() -> None:
    # 1500 mg/day on 20 kg (max 1200): the label forces a decrease; no-decrease stops at the label maximum.
    bounds = label_bounds(20.0, 9.0, None)
    outcome = clinical_rails(facts(current_mg_per_day=1500.0, weight_kg=20.0, seizure_last_3_months=True), bounds)
    assert allowed_mg(outcome) == [1000.0]
    assert all(ok <= label for ok, label in zip(outcome.allowed, bounds.allowed, strict=True))


def test_unknown_bounds_leave_only_zero_whatever_the_rails() -> None:
    bounds = label_bounds(None, 9.0, None)
    outcome = clinical_rails(facts(seizure_last_3_months=True, weight_kg=None), bounds)
    assert allowed_mg(outcome) == [0.0]
    assert outcome.guidance is not None and outcome.guidance.action == "no-recommendation"


@pytest.mark.parametrize(("age", "weight", "smallest_start"), [(9.0, 30.0, 750.0), (9.0, 25.0, 500.0), (9.0, 26.0, 500.0),
                                                                 (2.0, 12.0, 250.0), (0.3, 6.0, 125.0), (17.0, 60.0, 1000.0)])
def test_a_start_is_the_label_starting_dose(age: float, weight: float, smallest_start: float) -> None:
    bounds = label_bounds(weight, age, None)
    outcome = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, age_years=age, weight_kg=weight,
                                   seizure_last_3_months=True, lifetime_seizures=3), bounds)
    positive = [mg for mg in allowed_mg(outcome) if mg > 0]
    assert positive == [smallest_start] and 0.0 in allowed_mg(outcome)
    assert "R-START-AT-LABEL-DOSE" in fired_ids(outcome) or smallest_start == DOSE_CLASSES_MG[1]
    assert outcome.guidance is not None and outcome.guidance.action == "start" and outcome.guidance.mg_per_day == smallest_start


def test_a_start_under_renal_impairment_is_the_reduced_starting_dose() -> None:
    bounds = label_bounds(30.0, 9.0, 40.0)  # 50%: max 900 mg/day, start 300 mg/day
    outcome = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, seizure_last_3_months=True), bounds)
    assert [mg for mg in allowed_mg(outcome) if mg > 0] == [375.0]


def test_no_start_after_a_single_seizure() -> None:
    outcome = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=1,
                                   seizure_last_3_months=True), BOUNDS_30KG)
    assert allowed_mg(outcome) == [0.0]
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" in fired_ids(outcome)
    assert outcome.guidance is not None and outcome.guidance.action == "none"
    assert outcome.guidance.rule_id == "G-WATCHFUL-WAITING" and "treatment is the alternative" in outcome.guidance.text
    two = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=2, seizure_last_3_months=True), BOUNDS_30KG)
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" not in fired_ids(two) and 750.0 in allowed_mg(two)


def test_a_single_prolonged_seizure_allows_a_start_at_the_label_dose() -> None:
    """Over 5 minutes (ILAE t1) is a reason to treat (domain.md §6): the start is open, from the label dose."""
    def single(duration: int | None) -> rails.RailOutcome:
        return clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=1,
                                    seizure_last_3_months=True, seizure_duration_class=duration), BOUNDS_30KG)

    prolonged = single(rails.PROLONGED_SEIZURE_DURATION_CLASS)
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" not in fired_ids(prolonged)
    # 20 mg/kg/day × 30 kg = 600 mg/day; 500 is more than 5% below it, so the first start class is 750
    assert min(mg for mg in allowed_mg(prolonged) if mg > 0) == 750.0
    assert 0.0 in allowed_mg(prolonged)  # waiting stays allowed: treatment is reasonable, not imposed
    assert prolonged.guidance is not None and prolonged.guidance.rule_id == "G-START-PROLONGED"
    assert prolonged.guidance.action == "start" and "watchful waiting is the alternative" in prolonged.guidance.text
    for brief in (None, 0, 1, 2):
        outcome = single(brief)
        assert allowed_mg(outcome) == [0.0], brief
        assert outcome.guidance is not None and outcome.guidance.rule_id == "G-WATCHFUL-WAITING"


def test_the_familys_request_allows_a_start_after_a_single_seizure() -> None:
    """domain.md §6: treatment at the family's request; waiting stays allowed and the guidance says so."""
    asked = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=1, seizure_last_3_months=True,
                                 seizure_duration_class=1, family_requests_treatment=True), BOUNDS_30KG)
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" not in fired_ids(asked)
    assert 0.0 in allowed_mg(asked) and min(mg for mg in allowed_mg(asked) if mg > 0) == 750.0
    assert asked.guidance is not None and (asked.guidance.rule_id, asked.guidance.action) == ("G-START-FAMILY-REQUEST", "start")
    for answer in (None, False):
        waiting = clinical_rails(facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=1, seizure_last_3_months=True,
                                       family_requests_treatment=answer), BOUNDS_30KG)
        assert allowed_mg(waiting) == [0.0], answer


def test_no_increase_above_the_reference_level_measured_or_predicted() -> None:
    for level in ({"measured_level_mg_l": 45.0}, {"predicted_level_mg_l": 45.0}):
        outcome = clinical_rails(facts(seizure_last_3_months=True, **level), BOUNDS_30KG)
        assert max(allowed_mg(outcome)) == 750.0
        assert "R-NO-INCREASE-HIGH-LEVEL" in fired_ids(outcome)
    normal = clinical_rails(facts(seizure_last_3_months=True, measured_level_mg_l=25.0), BOUNDS_30KG)
    assert "R-NO-INCREASE-HIGH-LEVEL" not in fired_ids(normal) and 1000.0 in allowed_mg(normal)


@pytest.mark.parametrize("changes", [{"months_seizure_free": 25.0}, {"age_years": 15.5, "months_seizure_free": 6.0}])
def test_withdrawal_is_offered_not_imposed(changes: dict[str, object]) -> None:
    outcome = clinical_rails(facts(**changes), label_bounds(30.0, float(changes.get("age_years", 9.0)), None))  # type: ignore[arg-type]
    assert "R-WITHDRAWAL-OFFERED" in fired_ids(outcome)
    offered = next(f for f in outcome.fired if f.rule_id == "R-WITHDRAWAL-OFFERED")
    assert offered.removed_classes == ()
    assert 750.0 in allowed_mg(outcome)  # keeping the dose stays allowed
    # Gradual: one dose class down (750 → 500), within the label's fastest rate (−20 mg/kg/day = −600 mg/day here).
    assert outcome.guidance is not None and outcome.guidance.action == "taper" and outcome.guidance.mg_per_day == 500.0
    assert rails.action_of(facts(**changes), 0.0) == "taper"


def test_no_withdrawal_offer_to_an_adult_for_age_alone() -> None:
    adult = facts(age_years=45.0, weight_kg=80.0, months_seizure_free=8.0, current_mg_per_day=1000.0)
    outcome = clinical_rails(adult, label_bounds(80.0, 45.0, None))
    assert "R-WITHDRAWAL-OFFERED" not in fired_ids(outcome)
    assert outcome.guidance is not None and outcome.guidance.action == "keep"
    long_free = clinical_rails(dataclasses.replace(adult, months_seizure_free=30.0), label_bounds(80.0, 45.0, None))
    assert "R-WITHDRAWAL-OFFERED" in fired_ids(long_free)


def test_no_withdrawal_offer_to_a_seizing_teenager() -> None:
    outcome = clinical_rails(facts(age_years=15.5, seizure_last_3_months=True), label_bounds(30.0, 15.5, None))
    assert "R-WITHDRAWAL-OFFERED" not in fired_ids(outcome)


def test_taper_is_said_only_of_a_child_on_levetiracetam() -> None:
    never = facts(on_levetiracetam=False, current_mg_per_day=0.0, months_seizure_free=30.0, lifetime_seizures=3)
    assert rails.action_of(never, 0.0) == "none"
    assert rails.action_of(never, 500.0) == "start"
    outcome = clinical_rails(never, BOUNDS_30KG)
    assert outcome.guidance is not None and outcome.guidance.action == "none"
    assert outcome.guidance.rule_id == "G-NO-TREATMENT-SEIZURE-FREE"
    assert rails.action_of(facts(), 500.0) == "lower" and rails.action_of(facts(), 1000.0) == "raise"
    assert rails.action_of(facts(), 750.0) == "keep"


def test_adverse_effect_with_a_high_level_guides_a_lower_dose() -> None:
    outcome = clinical_rails(facts(adverse_effect=True, measured_level_mg_l=60.0), BOUNDS_30KG)
    assert outcome.guidance is not None and outcome.guidance.action == "lower"
    assert outcome.guidance.mg_per_day is not None and outcome.guidance.mg_per_day < 750.0
    assert outcome.guidance.rule_id == "G-LOWER-ADVERSE-HIGH-LEVEL"


def test_guidance_at_the_label_maximum_keeps() -> None:
    bounds = label_bounds(30.0, 9.0, None)
    outcome = clinical_rails(facts(current_mg_per_day=1750.0, seizure_last_3_months=True), bounds)
    assert outcome.guidance is not None and outcome.guidance.action == "keep" and outcome.guidance.rule_id == "G-AT-MAXIMUM"


def test_every_guidance_dose_is_allowed_and_every_rule_id_is_known() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3000):
        on = bool(rng.random() < 0.6)
        weight = float(rng.uniform(5, 90)) if rng.random() < 0.95 else None
        age = float(rng.uniform(0.1, 18))
        bounds = label_bounds(weight, age, float(rng.uniform(5, 130)) if rng.random() < 0.4 else None)
        f = RailFacts(
            on_levetiracetam=on,
            current_mg_per_day=(float(rng.choice(DOSE_CLASSES_MG[1:])) if on else 0.0) if rng.random() < 0.95 else None,
            weight_kg=weight, age_years=age,
            seizure_last_3_months=[True, False, None][int(rng.integers(3))],
            months_seizure_free=float(rng.uniform(0, 40)) if rng.random() < 0.9 else None,
            lifetime_seizures=int(rng.integers(0, 8)) if rng.random() < 0.9 else None,
            adverse_effect=[True, False, None][int(rng.integers(3))],
            measured_level_mg_l=float(rng.uniform(2, 80)) if rng.random() < 0.3 else None,
            predicted_level_mg_l=float(rng.uniform(2, 80)) if rng.random() < 0.3 else None,
        )
        if not on and f.current_mg_per_day is None:
            f = dataclasses.replace(f, current_mg_per_day=0.0)
        outcome = clinical_rails(f, bounds)
        assert any(outcome.allowed)
        assert all(ok <= label for ok, label in zip(outcome.allowed, bounds.allowed, strict=True)), (f, bounds)
        assert set(outcome.rule_ids) <= set(rails.RULE_BY_ID)
        guidance = outcome.guidance
        assert guidance is not None
        if guidance.mg_per_day is not None:
            assert outcome.allowed[dose_class_of(guidance.mg_per_day)], (f, guidance)
        if not f.on_levetiracetam:
            assert guidance.action != "taper"


# --- facts_at and facts_from_state agree -----------------------------------------------------------


def assert_same(a: RailFacts, b: RailFacts) -> None:
    for field in dataclasses.fields(RailFacts):
        if field.name == "family_requests_treatment":
            continue  # read from the chart for the rails only; no state feature carries it
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, float) and isinstance(y, float):
            assert x == pytest.approx(y, abs=1e-9), field.name
        else:
            assert x == y, field.name


def test_facts_agree_on_simulated_timelines() -> None:
    from training.simulator.cohort import simulate_cohort

    runs = simulate_cohort(25, 4)
    checked = {"on": 0, "seizing": 0, "level": 0, "adverse": 0}
    for run in runs:
        for i in range(len(run.timeline.visits)):
            from_timeline = facts_at(run.timeline, i)
            assert_same(from_timeline, facts_from_state(*state_row(run.timeline, i)))
            checked["on"] += from_timeline.on_levetiracetam
            checked["seizing"] += bool(from_timeline.seizure_last_3_months)
            checked["level"] += from_timeline.measured_level_mg_l is not None
            checked["adverse"] += bool(from_timeline.adverse_effect)
    assert all(n > 0 for n in checked.values()), checked


def test_facts_agree_on_a_timeline_built_from_fhir() -> None:
    resources = factory.history(visits=6, doses=(0.0, 500.0, 750.0, 750.0, 750.0, 0.0))
    timeline = build_timeline(resources, "p1")
    assert len(timeline.visits) == 6
    for i in range(6):
        assert_same(facts_at(timeline, i), facts_from_state(*state_row(timeline, i)))
    first, third = facts_at(timeline, 0), facts_at(timeline, 2)
    assert first.lifetime_seizures == 2 and first.seizure_last_3_months is True and not first.on_levetiracetam
    assert third.on_levetiracetam and third.current_mg_per_day == 500.0
    assert third.months_seizure_free == pytest.approx(182 / dosing.DAYS_PER_YEAR * 12)


def test_facts_agree_on_a_hand_made_timeline_with_gaps() -> None:
    day = date(2021, 3, 1)
    order = LevOrder(1000.0, "MedicationRequest/a", "active")
    visits = [
        Visit(day, age_years=12.0, weight=Measurement(70.0, day, 0), seizure_count_since_last_visit=3,
              seizure_since_last_visit=True, seizure_last_3_months=None),
        Visit(day + timedelta(days=60), age_years=12.2, weight=Measurement(70.0, day, 60), seizure_count_since_last_visit=None,
              seizure_since_last_visit=True, seizure_last_3_months=None, lev_before=order, days_since_previous_visit=60,
              behaviour_adverse_effect=True, labs={"lev_level": Measurement(60.0, day + timedelta(days=60), 0)}),
        Visit(day + timedelta(days=200), age_years=12.5, weight=None, lev_before_unreadable="MedicationRequest/b",
              days_since_previous_visit=140),
    ]
    timeline = PatientTimeline("hand", birth_date=date(2009, 3, 1), visits=visits)
    for i in range(3):
        assert_same(facts_at(timeline, i), facts_from_state(*state_row(timeline, i)))
    seizing = facts_at(timeline, 1)
    assert seizing.seizure_last_3_months is True  # implied by a seizure since a visit 60 days ago
    assert seizing.lifetime_seizures == 4 and seizing.measured_level_mg_l == 60.0 and seizing.adverse_effect
    unreadable = facts_at(timeline, 2)
    assert unreadable.on_levetiracetam and unreadable.current_mg_per_day is None and unreadable.seizure_last_3_months is None
    outcome = clinical_rails(unreadable, label_bounds(70.0, 12.5, None))
    assert outcome.guidance is not None and outcome.guidance.action == "no-recommendation"


def test_the_mask_never_allows_more_than_the_label_on_simulated_timelines() -> None:
    from training.simulator.cohort import simulate_cohort

    for run in simulate_cohort(10, 9):
        for i, visit in enumerate(run.timeline.visits):
            bounds = label_bounds(visit.weight_kg, visit.age_years, visit.egfr)
            outcome = rails.rails_at(run.timeline, i, bounds)
            assert len(outcome.allowed) == N_DOSE_CLASSES and any(outcome.allowed)
            assert all(ok <= label for ok, label in zip(outcome.allowed, bounds.allowed, strict=True))


def test_facts_agree_on_timelines_read_back_from_the_simulators_fhir() -> None:
    """The path training takes: the simulator writes FHIR, the mapping builds the timeline, the state row follows."""
    from training.simulator.cohort import simulate_cohort
    from training.simulator.fhir import child_resources

    checked = 0
    for run in simulate_cohort(8, 21):
        timeline = build_timeline(child_resources(run), run.child.patient_id)
        for i in range(len(timeline.visits)):
            assert_same(facts_at(timeline, i), facts_from_state(*state_row(timeline, i)))
            checked += 1
        direct = facts_at(run.timeline, len(run.timeline.visits) - 1)
        read = facts_at(timeline, len(timeline.visits) - 1)
        assert read.lifetime_seizures == direct.lifetime_seizures and read.on_levetiracetam == direct.on_levetiracetam
    assert checked > 20


def test_an_adverse_effect_without_a_high_level_keeps_and_reviews() -> None:
    outcome = clinical_rails(facts(adverse_effect=True, measured_level_mg_l=22.0), BOUNDS_30KG)
    assert outcome.guidance is not None and outcome.guidance.rule_id == "G-REVIEW-ADVERSE"
    assert outcome.guidance.action == "keep" and outcome.guidance.mg_per_day == 750.0
    seizing = clinical_rails(facts(adverse_effect=True, seizure_last_3_months=True), BOUNDS_30KG)
    assert seizing.guidance is not None and seizing.guidance.rule_id == "G-REVIEW-ADVERSE"


def test_every_rule_but_the_label_and_the_wording_rule_can_shape_an_outcome() -> None:
    """Random children reach every rail and every guidance: no rule in RULES is dead."""
    rng = np.random.default_rng(11)
    seen: set[str] = set()
    for _ in range(4000):
        on = bool(rng.random() < 0.6)
        weight = float(rng.uniform(8, 80))
        age = float(rng.uniform(0.2, 17.9))
        f = RailFacts(on_levetiracetam=on, current_mg_per_day=float(rng.choice(DOSE_CLASSES_MG[1:])) if on else 0.0,
                      weight_kg=weight, age_years=age, seizure_last_3_months=[True, False, None][int(rng.integers(3))],
                      months_seizure_free=float(rng.uniform(0, 40)), lifetime_seizures=int(rng.integers(0, 6)),
                      adverse_effect=bool(rng.random() < 0.3), measured_level_mg_l=float(rng.uniform(5, 70)) if rng.random() < 0.3 else None,
                      seizure_duration_class=int(rng.integers(0, 4)), family_requests_treatment=bool(rng.random() < 0.2))
        seen |= set(clinical_rails(f, label_bounds(weight, age, None)).rule_ids)
    seen |= set(clinical_rails(facts(weight_kg=None), label_bounds(None, 9.0, None)).rule_ids)
    assert seen == set(rails.RULE_BY_ID) - {"R-LABEL-BOUNDS", "R-TAPER-ONLY-ON-LEV"}


def test_the_raise_guidance_names_the_step_of_the_childs_age_band() -> None:
    """The label's step is 7 mg/kg BID below 6 months, 10 mg/kg BID to 16 years, 500 mg BID from 16 (domain.md §2)."""
    cases = ((0.3, 6.0, 125.0, "7 mg/kg twice daily"), (9.0, 30.0, 250.0, "10 mg/kg twice daily"),
             (17.0, 60.0, 1000.0, "500 mg twice daily"))
    for age, weight, current, words in cases:
        outcome = clinical_rails(facts(age_years=age, weight_kg=weight, current_mg_per_day=current,
                                       seizure_last_3_months=True, months_seizure_free=0.0),
                                 label_bounds(weight, age, None))
        assert outcome.guidance is not None and outcome.guidance.action == "raise", (age, outcome.guidance)
        assert words in outcome.guidance.text, outcome.guidance.text


def test_seizures_without_their_number_are_not_taken_for_a_single_seizure() -> None:
    """"Seizures" reported without a count (a note, a visit's seizure diagnosis) give a lower bound of one:
    the rails read the lifetime count as unknown, so no watchful waiting is imposed on a child who may
    have had several, and the guidance says to ask."""
    day = date(2026, 11, 2)
    uncounted = Visit(date=day, weight=Measurement(30.0, day, 0), age_years=9.0, seizure_since_last_visit=True,
                      seizure_last_3_months=True, seizures_uncounted=True)
    timeline = PatientTimeline(patient_id="p", birth_date=date(2017, 11, 1), visits=[uncounted])
    facts = facts_at(timeline, 0)
    assert facts.lifetime_seizures is None
    outcome = clinical_rails(facts, BOUNDS_30KG)
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" not in fired_ids(outcome)
    assert outcome.guidance is not None and outcome.guidance.action == "no-recommendation"
    assert "number not recorded" in outcome.guidance.text
    counted = dataclasses.replace(uncounted, seizure_count_since_last_visit=1, seizures_uncounted=False)
    assert facts_at(dataclasses.replace(timeline, visits=[counted]), 0).lifetime_seizures == 1


def test_recurrent_seizures_within_six_months_offer_a_start() -> None:
    """A second seizure 4 months ago, untreated: the course is active (start offered); none in 6 months: nothing needed."""
    recent = facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=2, seizure_last_3_months=False,
                   seizure_last_6_months=True, months_seizure_free=4.0)
    outcome = clinical_rails(recent, BOUNDS_30KG)
    assert outcome.guidance is not None and (outcome.guidance.rule_id, outcome.guidance.action) == ("G-START-RECURRENT", "start")
    quiet = clinical_rails(dataclasses.replace(recent, seizure_last_6_months=False, months_seizure_free=8.0), BOUNDS_30KG)
    assert quiet.guidance is not None and quiet.guidance.rule_id == "G-NO-TREATMENT-SEIZURE-FREE"


def test_a_recurrence_after_withdrawal_is_not_a_first_seizure() -> None:
    """A child treated before (the charted visits may start on treatment) with one seizure reported since:
    the single-seizure rail does not hold; the guidance offers the restart."""
    restarted = facts(on_levetiracetam=False, current_mg_per_day=0.0, lifetime_seizures=1, seizure_last_3_months=True,
                      ever_on_levetiracetam=True)
    outcome = clinical_rails(restarted, BOUNDS_30KG)
    assert "R-NO-START-AFTER-SINGLE-SEIZURE" not in fired_ids(outcome) and 750.0 in allowed_mg(outcome)
    assert outcome.guidance is not None and (outcome.guidance.rule_id, outcome.guidance.action) == ("G-START-RECURRENT", "start")
    first = clinical_rails(dataclasses.replace(restarted, ever_on_levetiracetam=False), BOUNDS_30KG)
    assert allowed_mg(first) == [0.0]
