"""The counterfactual environment: any dose policy plays the simulated children and we learn its true value.

A policy is a callable ``policy(timeline) -> dose class index`` (0..11 over
:data:`fhir_mapping.dosing.DOSE_CLASSES_MG`). At each visit it receives the child's
:class:`PatientTimeline` up to and including that visit, built by :mod:`fhir_mapping.build` from the
FHIR the simulator emits (the same code path as real data); the current visit's ``lev_before`` is
the dose on arrival and its ``lev`` is None (not yet decided). The child then responds (seizures,
adverse effects, growth) and the next visit comes.

Every policy evaluated by the same :class:`Environment` meets the same children with the same random
numbers (common random numbers: seizure marks, visit noise, dropout draws), so differences between
policies are differences of their doses, not of luck.

Returned values (:class:`PolicyValue`):

- the mean discounted reward with the published reward R = 0.5·R1 + 0.4·R2 + 0.1·R3, each term
  +100 with no seizure and −100 with a seizure since the last visit / within 3 / within 6 months
  (domain.md §1), the reward of a decision at visit t being observed at visit t+1, discounted by
  ``config.gamma`` (default 0.9 per visit; the paper does not publish it). Per child it is the
  discount-weighted mean Σ_t γ^t r_{t+1} / Σ_t γ^t (in −100..100), averaged over children with at least
  two visits. It is normalised because follow-up length depends on the outcome (seizure-free children
  are discharged or stop coming): the plain return G = Σ_t γ^t r_{t+1}, also reported, rewards a policy
  for keeping children in follow-up, not for controlling their seizures;
- the mean reward per transition, the seizure-free visit share (no seizure since the last visit, after
  the first visit), the mean time from the first visit to the last seizure in follow-up ("time to
  remission", days), the shares of intervals with a behavioural adverse effect and with somnolence,
  and the share of decisions above the label bounds of the state the policy saw. With
  ``config.adverse_effect_weight`` above 0 the rewards carry the optional adverse-effect term.

:meth:`Environment.reset` / :meth:`Environment.step` offer the same children one visit at a time
(Gymnasium style: state, reward observed at the next visit, done).

Two limits: :meth:`Environment.best_agreement` is E[max_a π_phys(a|s)] over the physician's visits,
the best top-1 agreement any policy can reach against a stochastic physician; :func:`oracle_policy`
knows each child's true parameters and gives the lowest label-allowed dose whose drug effect reaches
a target while the epilepsy is active (the highest allowed dose if none does, nothing if even that
barely helps, as for a non-responder), and nothing once it has remitted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fhir_mapping.build import build_timeline
from fhir_mapping.dosing import DOSE_CLASSES_MG, N_DOSE_CLASSES
from fhir_mapping.timeline import PatientTimeline
from training.reward import reward
from training.simulator import simulate
from training.simulator.config import DEFAULT_CONFIG, SimulatorConfig
from training.simulator.fhir import child_resources
from training.simulator.patients import Child, draw_cohort
from training.simulator.physician import SimulatedPhysician, observed_mask
from training.simulator.simulate import ChildRun, Decision, Policy, child_steps, run_child

DEFAULT_ORACLE_TARGET_EFFECT = 0.97  # fraction of the seizure rate the oracle wants suppressed
ORACLE_MINIMUM_EFFECT = 0.05  # below this reduction at the highest allowed dose the oracle gives nothing


@dataclass(frozen=True)
class PolicyValue:
    """The true value of a policy on a set of simulated children (see the module docstring)."""

    mean_discounted_reward: float
    discounted_reward_se: float
    mean_discounted_return: float
    mean_reward: float
    seizure_free_visit_share: float
    mean_days_to_remission: float
    adverse_effect_rate: float
    somnolence_rate: float
    out_of_label_share: float
    patients: int
    transitions: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def discounted_returns(rewards_per_child: Sequence[np.ndarray], gamma: float) -> np.ndarray:
    """G = Σ_t γ^t r_{t+1} for each child with at least one transition."""
    return np.array([float(np.sum(r * gamma ** np.arange(r.size))) for r in rewards_per_child if r.size])


def discounted_mean_rewards(rewards_per_child: Sequence[np.ndarray], gamma: float) -> np.ndarray:
    """Σ_t γ^t r_{t+1} / Σ_t γ^t for each child with at least one transition (independent of follow-up length)."""
    return np.array([float(np.average(r, weights=gamma ** np.arange(r.size))) for r in rewards_per_child if r.size])


def _mean_and_se(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return math.nan, math.nan
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), se


def value_of_runs(runs: Sequence[ChildRun], config: SimulatorConfig = DEFAULT_CONFIG) -> PolicyValue:
    """The :class:`PolicyValue` of finished runs."""
    rewards = [run.rewards(config) for run in runs]
    mean_discounted, mean_discounted_se = _mean_and_se(discounted_mean_rewards(rewards, config.gamma))
    returns = discounted_returns(rewards, config.gamma)
    later = [v for run in runs for v in run.visits[1:]]
    days_to_remission = []
    for run in runs:
        first = run.visits[0].date
        seizure_visits = [v.date for v in run.visits[1:] if v.seizure_since_last_visit]
        days_to_remission.append((seizure_visits[-1] - first).days if seizure_visits else 0)
    decisions = [v for run in runs for v in run.visits]
    out_of_label = [not v.allowed[v.dose_class] for v in decisions]
    all_rewards = np.concatenate([r for r in rewards if r.size]) if any(r.size for r in rewards) else np.zeros(0)
    return PolicyValue(
        mean_discounted_reward=mean_discounted,
        discounted_reward_se=mean_discounted_se,
        mean_discounted_return=float(returns.mean()) if returns.size else math.nan,
        mean_reward=float(all_rewards.mean()) if all_rewards.size else math.nan,
        seizure_free_visit_share=float(np.mean([not v.seizure_since_last_visit for v in later])) if later else math.nan,
        mean_days_to_remission=float(np.mean(days_to_remission)) if days_to_remission else math.nan,
        adverse_effect_rate=float(np.mean([v.adverse_effect for v in later])) if later else math.nan,
        somnolence_rate=float(np.mean([v.somnolence for v in later])) if later else math.nan,
        out_of_label_share=float(np.mean(out_of_label)) if out_of_label else math.nan,
        patients=len(runs),
        transitions=int(all_rewards.size),
    )


def value_of_timelines(timelines: Sequence[PatientTimeline], config: SimulatorConfig = DEFAULT_CONFIG) -> tuple[float, float]:
    """Mean discounted reward (as :class:`PolicyValue`) and its standard error from logged timelines (on-policy, Monte Carlo)."""
    rewards = [
        np.array([reward(v.seizure_since_last_visit, v.seizure_last_3_months, v.seizure_last_6_months,
                         weights=config.reward_weights, magnitude=config.reward_magnitude) for v in t.visits[1:]])
        for t in timelines
    ]
    return _mean_and_se(discounted_mean_rewards(rewards, config.gamma))


def fhir_state_view(run: ChildRun, dialect: str = "epidose") -> PatientTimeline:
    """The timeline fhir_mapping.build reads from the FHIR emitted so far (in a simulator dialect,
    training.simulator.fhir.DIALECTS); the current visit undecided."""
    timeline = build_timeline(child_resources(run, pending_last=True, dialect=dialect), run.child.patient_id)
    current = timeline.visits[-1]
    if current.date != run.visits[-1].date:
        raise RuntimeError("the mapping did not find the current visit in the emitted FHIR")
    current.lev = None
    return timeline


def oracle_policy(child: Child, config: SimulatorConfig, target_effect: float = DEFAULT_ORACLE_TARGET_EFFECT,
                  *, knows_course: bool = True) -> Policy:
    """A policy that knows the child's true PK/PD parameters and remission date (an upper reference).

    While the epilepsy is active (and the child is not a single-seizure child) it gives the lowest
    dose class within the label mask of the state whose steady-state drug effect reaches
    ``target_effect``, or the highest allowed class if none does; after remission, nothing.
    ``knows_course=False`` keeps the PK/PD but forgets the course (remission date, single-seizure
    status): it treats every child as active throughout, to measure what knowing the course is worth.
    """

    def policy(timeline: PatientTimeline) -> int:
        visit = timeline.visits[-1]
        if knows_course and (child.single_seizure or visit.date >= child.remission_date):
            return 0
        mask = observed_mask(timeline)
        allowed = [c for c in range(1, N_DOSE_CLASSES) if mask[c]]
        if not allowed:
            return 0
        for dose_class in allowed:
            effect = child.drug_effect(child.average_concentration(DOSE_CLASSES_MG[dose_class], visit.date, config), config)
            if effect >= target_effect:
                return dose_class
        best = allowed[-1]
        # A child the drug cannot help (a non-responder) is spared its adverse effects.
        top_effect = child.drug_effect(child.average_concentration(DOSE_CLASSES_MG[best], visit.date, config), config)
        return best if top_effect >= ORACLE_MINIMUM_EFFECT else 0

    return policy


class Environment:
    """A fixed set of simulated children on which policies are evaluated with common random numbers."""

    def __init__(self, n_patients: int, seed: int, config: SimulatorConfig = DEFAULT_CONFIG, *, state: str = "fhir", dialect: str = "epidose") -> None:
        if state not in ("fhir", "direct"):
            raise ValueError("state must be 'fhir' (timelines built by fhir_mapping.build) or 'direct'")
        self.config = config
        self.seed = seed
        self.children = draw_cohort(n_patients, seed, config)
        self.state_view: Callable[[ChildRun], PatientTimeline] | None = None
        if state == "fhir":
            self.state_view = fhir_state_view if dialect == "epidose" else functools.partial(fhir_state_view, dialect=dialect)
        self._steps: Generator[Decision, int, ChildRun] | None = None

    def run(self, policy: Policy | None = None, *, per_child: Callable[[Child], Policy | SimulatedPhysician] | None = None,
            physician_decides_deferred: bool = False) -> list[ChildRun]:
        """Play every child under one policy (or a per-child policy, e.g. its physician or an oracle); with
        ``physician_decides_deferred`` the child's own physician decides where the policy defers
        (:data:`training.simulator.simulate.DEFER_TO_CLINICIAN`)."""
        if (policy is None) == (per_child is None):
            raise ValueError("give exactly one of policy and per_child")
        runs = []
        for child in self.children:
            chosen: Policy | SimulatedPhysician = per_child(child) if per_child is not None else policy  # type: ignore[assignment]
            clinician = SimulatedPhysician(child.physician, self.config) if physician_decides_deferred else None
            runs.append(run_child(child, self.config, chosen, state_view=self.state_view, clinician=clinician))
        return runs

    # --- Gymnasium-style stepping, one child at a time ---------------------------------------
    def reset(self, index: int = 0) -> PatientTimeline:
        """Start following child ``index``; returns the state at its first visit."""
        self._steps = child_steps(self.children[index], self.config, state_view=self.state_view)
        return next(self._steps).view

    def step(self, action: int) -> tuple[PatientTimeline | None, float, bool, dict[str, Any]]:
        """Give dose class ``action`` at the current visit.

        Returns (state at the next visit or None, reward observed at that visit, done, info); when
        follow-up ends there is no next visit, the reward is 0 and ``info["run"]`` is the finished run.
        """
        if self._steps is None:
            raise RuntimeError("call reset() before step()")
        try:
            decision = self._steps.send(action)
        except StopIteration as finished:
            self._steps = None
            return None, 0.0, True, {"run": finished.value}
        truth = decision.truth
        return decision.view, simulate.reward_of_truth(truth, self.config), False, {"truth": truth}

    def evaluate(self, policy: Policy) -> PolicyValue:
        """True value of a policy on these children."""
        return value_of_runs(self.run(policy), self.config)

    def physician_runs(self) -> list[ChildRun]:
        """Each child followed by its own (stochastic) physician."""
        return self.run(per_child=lambda child: SimulatedPhysician(child.physician, self.config))

    def evaluate_physician(self) -> PolicyValue:
        """True value of the data-generating physician policy."""
        return value_of_runs(self.physician_runs(), self.config)

    def evaluate_oracle(self, target_effect: float = DEFAULT_ORACLE_TARGET_EFFECT) -> PolicyValue:
        """True value of the oracle that knows each child's parameters."""
        return value_of_runs(self.run(per_child=lambda child: oracle_policy(child, self.config, target_effect)), self.config)

    def best_agreement(self, runs: Sequence[ChildRun] | None = None) -> float:
        """E[max_a π_phys(a|s)] over the physician's visits: the best achievable top-1 agreement."""
        runs = self.physician_runs() if runs is None else runs
        maxima = [max(v.probabilities) for run in runs for v in run.visits if v.probabilities is not None]
        return float(np.mean(maxima))
