"""An upper reference held to the rails: a clairvoyant search for each child's best dose sequence.

Every simulated child is deterministic for its seed (common random numbers: seizure days and marks,
visit noise, dropout draws are fixed in advance), so the whole follow-up is a function of the dose
classes chosen at its visits. The search below knows that function: it replays the child as often as
it likes, with its true PK/PD and its future, and keeps the dose sequence with the highest value,
choosing at every visit only among the doses the one mask allows at that visit
(``clinical_rails(...).allowed`` on the simulator's direct, FHIR-free state; or a looser mask, to see
what each rail costs). Any policy held to the same mask plays one of the sequences searched over, so
its per-child value cannot exceed the optimum; the search reaches a lower bound of that optimum,
and it is checked against the policies it should dominate (and, on small children, against
exhaustive enumeration).

The objective is the environment's headline per child: the discount-weighted mean reward
Σ_t γ^t r_{t+1} / Σ_t γ^t (``training.simulator.environment``), with γ per visit.

Search (rollout with a fortified incumbent, Bertsekas' rollout algorithm): start from the best of a few
base policies played to the end; then, visit by visit along the incumbent sequence, try every other
allowed dose there followed by each base policy (and by the incumbent's own later doses, open loop) and
keep any sequence that is better. Each pass can only improve the incumbent; passes repeat until one
finds nothing (or ``passes`` is reached).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from fhir_mapping.dosing import DOSE_CLASSES_MG, N_DOSE_CLASSES
from fhir_mapping.timeline import PatientTimeline
from training.dataset import timeline_bounds, timeline_rails
from training.simulator.config import SimulatorConfig
from training.simulator.environment import DEFAULT_ORACLE_TARGET_EFFECT, oracle_policy
from training.simulator.patients import Child
from training.simulator.simulate import ChildRun, child_steps

Mask = tuple[bool, ...]
MaskOf = Callable[[PatientTimeline], Mask]
# A continuation picks the dose at visit t of a replay from the state and its mask.
Continuation = Callable[[PatientTimeline, Mask, int], int]

# Every rail of fhir_mapping.rails that removes dose classes (for the label-bounds-only variant).
CLINICAL_RAIL_IDS: Final = frozenset({"R-NO-INCREASE-SEIZURE-FREE", "R-NO-DECREASE-WHILE-SEIZING", "R-START-AT-LABEL-DOSE",
                                      "R-NO-START-AFTER-SINGLE-SEIZURE", "R-NO-INCREASE-HIGH-LEVEL"})
DEFAULT_PASSES: Final = 2
_IMPROVEMENT: Final = 1e-9  # a candidate must beat the incumbent by more than float noise


@dataclass(frozen=True)
class Plan:
    """The best dose sequence found for one child, its value and the run it produces."""

    actions: tuple[int, ...]
    masks: tuple[Mask, ...]
    value: float  # discount-weighted mean reward (NaN: a single visit, nothing to value)
    run: ChildRun
    replays: int  # how many replays the search took (exhaustive_plan: the sequences enumerated)


def child_value(run: ChildRun, config: SimulatorConfig) -> float:
    """The environment's per-child headline: Σ γ^t r_{t+1} / Σ γ^t (NaN with a single visit)."""
    rewards = run.rewards(config)
    if rewards.size == 0:
        return math.nan
    return float(np.average(rewards, weights=config.gamma ** np.arange(rewards.size)))


def rails_mask(skip: frozenset[str] = frozenset()) -> MaskOf:
    """The one mask (label bounds AND clinical rails, minus ``skip``) at the timeline's last visit."""

    def mask_of(view: PatientTimeline) -> Mask:
        return timeline_rails(view, len(view.visits) - 1, skip=skip).allowed

    return mask_of


def label_mask(view: PatientTimeline) -> Mask:
    """The label bounds alone at the timeline's last visit (0 g always allowed)."""
    allowed = list(timeline_bounds(view, len(view.visits) - 1).allowed)
    if len(allowed) != N_DOSE_CLASSES:
        allowed = [True] + [False] * (N_DOSE_CLASSES - 1)
    allowed[0] = True
    return tuple(allowed)


def nearest_allowed(wanted: int, mask: Mask) -> int:
    """The allowed class nearest to ``wanted`` (the lower one on a tie)."""
    return min((i for i in range(N_DOSE_CLASSES) if mask[i]), key=lambda i: (abs(i - wanted), i))


def play(child: Child, config: SimulatorConfig, prefix: Sequence[int], continuation: Continuation,
         mask_of: MaskOf) -> tuple[ChildRun, tuple[int, ...], tuple[Mask, ...]]:
    """Replay the child: the doses of ``prefix`` at its first visits, then the continuation's; every dose within the mask."""
    steps = child_steps(child, config)
    actions: list[int] = []
    masks: list[Mask] = []
    try:
        decision = next(steps)
        while True:
            view = decision.view
            mask = mask_of(view)
            t = len(actions)
            action = prefix[t] if t < len(prefix) else continuation(view, mask, t)
            if not mask[action]:
                raise ValueError(f"dose class {action} at visit {t} is outside the mask")
            actions.append(action)
            masks.append(mask)
            decision = steps.send(action)
    except StopIteration as finished:
        return finished.value, tuple(actions), tuple(masks)


# --- Base policies the search starts from and completes its candidates with ---------------------------


def highest_allowed(view: PatientTimeline, mask: Mask, t: int) -> int:
    """The highest allowed dose: with a reward that counts seizures only, more drug never costs reward."""
    return max(i for i in range(N_DOSE_CLASSES) if mask[i])


def lowest_allowed(view: PatientTimeline, mask: Mask, t: int) -> int:
    """The lowest allowed dose (nothing whenever nothing is allowed: visit timing and discharge differ)."""
    return min(i for i in range(N_DOSE_CLASSES) if mask[i])


def keep_allowed(view: PatientTimeline, mask: Mask, t: int) -> int:
    """The dose taken on arrival when allowed, else the nearest allowed one (no change, longer intervals)."""
    return nearest_allowed(_class_on_arrival(view), mask)


def step_up_allowed(view: PatientTimeline, mask: Mask, t: int) -> int:
    """One dose class above the dose taken on arrival when allowed, else the nearest allowed (titration by
    class: every change brings the next review forward, so a slow climb also shortens the intervals)."""
    return nearest_allowed(min(_class_on_arrival(view) + 1, N_DOSE_CLASSES - 1), mask)


def _class_on_arrival(view: PatientTimeline) -> int:
    before = view.visits[-1].lev_before
    return 0 if before is None else int(np.argmin(np.abs(np.asarray(DOSE_CLASSES_MG) - before.mg_per_day)))


def informed_base(child: Child, config: SimulatorConfig, target_effect: float = DEFAULT_ORACLE_TARGET_EFFECT) -> Continuation:
    """The environment's oracle (true PK/PD, remission and single-seizure status) within the mask:
    the lowest allowed dose reaching the target effect while the epilepsy is active, else the lowest allowed."""
    label_oracle = oracle_policy(child, config, target_effect)

    def base(view: PatientTimeline, mask: Mask, t: int) -> int:
        return nearest_allowed(label_oracle(view), mask)

    return base


def open_loop(actions: Sequence[int]) -> Continuation:
    """The doses of a planned sequence, visit by visit (its last dose beyond its end), each moved to the nearest allowed one."""

    def base(view: PatientTimeline, mask: Mask, t: int) -> int:
        planned = actions[t] if t < len(actions) else (actions[-1] if actions else 0)
        return nearest_allowed(planned, mask)

    return base


def default_bases(child: Child, config: SimulatorConfig) -> list[Continuation]:
    return [highest_allowed, step_up_allowed, informed_base(child, config), keep_allowed, lowest_allowed]


def candidate_doses(timeline: PatientTimeline, t: int, mask: Mask, all_doses: bool) -> list[int]:
    """The allowed doses tried at visit ``t``: every one, or (``all_doses`` False) the lowest and highest, the dose
    taken on arrival and one class either side of it (the rest rarely win and cost a replay each)."""
    allowed = [i for i in range(N_DOSE_CLASSES) if mask[i]]
    if all_doses:
        return allowed
    before = timeline.visits[t].lev_before
    current = 0 if before is None else int(np.argmin(np.abs(np.asarray(DOSE_CLASSES_MG) - before.mg_per_day)))
    wanted = {allowed[0], allowed[-1], nearest_allowed(current, mask)}
    wanted.update(i for i in (current - 1, current + 1) if 0 <= i < N_DOSE_CLASSES and mask[i])
    return sorted(wanted)


def best_plan(child: Child, config: SimulatorConfig, mask_of: MaskOf, *, bases: Sequence[Continuation] | None = None,
              completions: Sequence[Continuation] | None = None, passes: int = DEFAULT_PASSES, all_doses: bool = False) -> Plan:
    """The best dose sequence the rollout search finds for one child within ``mask_of`` (module docstring).

    ``bases`` start the search (default: highest, one class up, informed, keep, lowest); ``completions`` finish
    each candidate after its changed dose (default: the first two bases, beside the incumbent's own later doses)."""
    bases = list(default_bases(child, config) if bases is None else bases)
    completions = list(bases[:2] if completions is None else completions)
    replays = 0
    incumbent: tuple[float, tuple[int, ...], tuple[Mask, ...], ChildRun] | None = None
    for base in bases:
        run, actions, masks = play(child, config, (), base, mask_of)
        replays += 1
        value = child_value(run, config)
        if incumbent is None or _better(value, incumbent[0]):
            incumbent = (value, actions, masks, run)
    assert incumbent is not None
    if math.isnan(incumbent[0]):  # a single visit: no decision changes the value
        return Plan(incumbent[1], incumbent[2], incumbent[0], incumbent[3], replays)
    for _ in range(passes):
        improved = False
        t = 0
        while t < len(incumbent[1]):
            for action in candidate_doses(incumbent[3].timeline, t, incumbent[2][t], all_doses):
                if action == incumbent[1][t]:
                    continue
                prefix = (*incumbent[1][:t], action)
                for base in [*completions, open_loop(incumbent[1])]:
                    run, actions, masks = play(child, config, prefix, base, mask_of)
                    replays += 1
                    value = child_value(run, config)
                    if _better(value, incumbent[0]):
                        incumbent = (value, actions, masks, run)
                        improved = True
                        break
            t += 1
        if not improved:
            break
    return Plan(incumbent[1], incumbent[2], incumbent[0], incumbent[3], replays)


def exhaustive_plan(child: Child, config: SimulatorConfig, mask_of: MaskOf, *, limit: int = 20_000) -> Plan | None:
    """The exact optimum by enumerating every dose sequence within the mask (depth first), or None when the
    tree has more than ``limit`` leaves. For tests on small children: the search must reach it."""
    best: list[tuple[float, tuple[int, ...], tuple[Mask, ...], ChildRun]] = []
    leaves = 0

    def explore(prefix: tuple[int, ...]) -> bool:
        nonlocal leaves
        stop: dict[str, tuple[Mask, int]] = {}

        def probe(view: PatientTimeline, mask: Mask, t: int) -> int:
            stop.setdefault("at", (mask, t))
            return lowest_allowed(view, mask, t)

        run, actions, masks = play(child, config, prefix, probe, mask_of)
        if "at" not in stop:  # the prefix covered the whole follow-up: a leaf
            leaves += 1
            if leaves > limit:
                return False
            value = child_value(run, config)
            if not best or _better(value, best[0][0]):
                best[:] = [(value, actions, masks, run)]
            return True
        mask, _ = stop["at"]
        return all(explore((*prefix, action)) for action in range(N_DOSE_CLASSES) if mask[action])

    if not explore(()):
        return None
    value, actions, masks, run = best[0]
    return Plan(actions, masks, value, run, leaves)


def _better(value: float, than: float) -> bool:
    if math.isnan(value):
        return False
    return math.isnan(than) or value > than + _IMPROVEMENT
