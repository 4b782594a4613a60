"""The counterfactual environment: true policy values, common random numbers, oracle and agreement limits."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from fhir_mapping.build import build_timelines
from fhir_mapping.dosing import DOSE_CLASSES_MG, N_DOSE_CLASSES
from fhir_mapping.inputs import collect_resources
from fhir_mapping.timeline import PatientTimeline
from training.simulator.cohort import write_cohort
from training.simulator.config import DEFAULT_CONFIG
from training.simulator.environment import Environment, value_of_timelines


def test_policy_sees_the_mapped_timeline_with_the_decision_pending() -> None:
    """At each call the last visit has lev None and lev_before equal to the dose the policy chose last time."""
    env = Environment(6, 3)
    chosen: list[int] = []

    def policy(timeline: PatientTimeline) -> int:
        visit = timeline.visits[-1]
        assert visit.lev is None
        expected = DOSE_CLASSES_MG[chosen[-1]] if len(timeline.visits) > 1 else 0.0
        assert visit.lev_mg_per_day_before == expected
        chosen.append(4 if len(timeline.visits) % 2 else 5)  # alternate 0.5 g and 0.75 g
        return chosen[-1]

    runs = env.run(policy)
    assert sum(len(r.visits) for r in runs) == len(chosen) > 6


def test_same_seed_same_children_and_values() -> None:
    """Two environments with one seed give one value for one policy (common random numbers)."""
    fixed = lambda timeline: 5  # noqa: E731
    assert Environment(40, 9, state="direct").evaluate(fixed) == Environment(40, 9, state="direct").evaluate(fixed)


def test_doses_matter_and_out_of_label_doses_are_counted() -> None:
    """Untreated children have fewer seizure-free visits than treated ones; always 3 g is out of label at some visits."""
    env = Environment(150, 4, state="direct")
    untreated, treated, maximal = env.evaluate(lambda t: 0), env.evaluate(lambda t: 6), env.evaluate(lambda t: N_DOSE_CLASSES - 1)
    assert treated.seizure_free_visit_share > untreated.seizure_free_visit_share + 0.1
    assert treated.mean_discounted_reward > untreated.mean_discounted_reward
    assert untreated.out_of_label_share == 0.0 and maximal.out_of_label_share > 0.5
    assert untreated.adverse_effect_rate < treated.adverse_effect_rate


def test_best_agreement_is_a_probability_above_chance() -> None:
    """E[max_a π_phys(a|s)] lies between 1/12 and 1."""
    agreement = Environment(60, 5, state="direct").best_agreement()
    assert 1 / N_DOSE_CLASSES < agreement < 1.0


@pytest.mark.slow
def test_physician_value_matches_logged_estimate_and_oracle_beats_it(tmp_path: Path) -> None:
    """The physician's true value in the environment (FHIR path) matches its Monte Carlo estimate from an
    independent logged cohort read back through fhir_mapping within sampling error; the oracle does better."""
    env = Environment(300, 101)
    physician = env.evaluate_physician()
    write_cohort(tmp_path, 300, 202)
    logged, logged_se = value_of_timelines(build_timelines(collect_resources(tmp_path / "ndjson")[0]))
    tolerance = 3 * math.hypot(physician.discounted_reward_se, logged_se)
    assert abs(physician.mean_discounted_reward - logged) < tolerance, (physician.mean_discounted_reward, logged, tolerance)
    assert physician.out_of_label_share == 0.0
    oracle = env.evaluate_oracle()
    assert oracle.mean_reward > physician.mean_reward
    assert oracle.mean_discounted_reward > physician.mean_discounted_reward
    assert oracle.seizure_free_visit_share > physician.seizure_free_visit_share
    assert oracle.out_of_label_share == 0.0


def test_reset_and_step_give_the_rewards_of_a_whole_run() -> None:
    """Stepping one child with a fixed dose yields the rewards and visits of running the same policy."""
    env = Environment(5, 8)
    expected = env.run(lambda timeline: 6)[2]
    state = env.reset(2)
    rewards, done, steps = [], False, 0
    while not done:
        assert state is not None and state.visits[-1].lev is None
        state, reward, done, info = env.step(6)
        steps += 1
        if not done:
            rewards.append(reward)
    assert steps == len(expected.visits)
    assert rewards == list(expected.rewards(env.config))
    assert info["run"].visits[-1].date == expected.visits[-1].date


def test_oracle_not_knowing_the_course_treats_remitted_and_single_seizure_children() -> None:
    """The oracle gives nothing to a single-seizure child and after remission; forgetting the course, it gives the
    same children the dose their PK/PD asks for, and elsewhere the two choose alike."""
    from training.simulator.environment import oracle_policy
    from training.simulator.simulate import run_child

    env = Environment(60, 5, DEFAULT_CONFIG, state="direct")
    differed = agreed = 0
    for child in env.children:
        knowing = oracle_policy(child, DEFAULT_CONFIG)
        forgetting = oracle_policy(child, DEFAULT_CONFIG, knows_course=False)
        run = run_child(child, DEFAULT_CONFIG, knowing)
        for index, truth in enumerate(run.visits):
            view = replace(run.timeline, visits=run.timeline.visits[: index + 1])
            quiet = child.single_seizure or truth.date >= child.remission_date
            if quiet:
                assert knowing(view) == 0
                differed += forgetting(view) > 0
            else:
                agreed += knowing(view) == forgetting(view)
    assert differed > 0 and agreed > 0
