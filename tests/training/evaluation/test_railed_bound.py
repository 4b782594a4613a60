"""The oracle held to the rails: a clairvoyant search over each simulated child's dose sequences within the one mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fhir_mapping.dosing import N_DOSE_CLASSES
from training.evaluation.railed_bound import (
    CLINICAL_RAIL_IDS,
    best_plan,
    child_value,
    exhaustive_plan,
    label_mask,
    play,
    rails_mask,
)
from training.evaluation.simulated import railed_bound_row
from training.simulator.config import DEFAULT_CONFIG
from training.simulator.environment import Environment
from training.simulator.simulate import run_child


@pytest.fixture(scope="module")
def children():
    return Environment(40, 3, DEFAULT_CONFIG, state="direct").children


def test_search_reaches_the_exhaustive_optimum_on_small_children(children):
    """On every child whose tree of allowed dose sequences is small enough to enumerate, the search never claims more
    than the exact optimum (its plan is a real sequence) and reaches it on nearly all (a heuristic may fall short)."""
    mask_of = rails_mask()
    small = []
    for child in children:
        exact = exhaustive_plan(child, DEFAULT_CONFIG, mask_of, limit=150)
        if exact is not None and not math.isnan(exact.value):
            small.append((child, exact))
    assert len(small) >= 8  # enough small children for the comparison to mean something
    shortfalls = []
    for child, exact in small:
        plan = best_plan(child, DEFAULT_CONFIG, mask_of)
        assert plan.value <= exact.value + 1e-9
        shortfalls.append(exact.value - plan.value)
    assert np.mean(np.asarray(shortfalls) < 1e-9) >= 0.9
    assert np.mean(shortfalls) < 1.0


def test_exhaustive_optimum_beats_every_sequence_it_enumerates(children):
    """The exhaustive optimum of a small child is at least the value of every constant allowed dose played to the end."""
    mask_of = rails_mask()
    child, exact = next((c, e) for c in children
                        if (e := exhaustive_plan(c, DEFAULT_CONFIG, mask_of, limit=150)) is not None and not math.isnan(e.value))
    for dose in range(N_DOSE_CLASSES):
        run, _, _ = play(child, DEFAULT_CONFIG, (), lambda view, mask, t, d=dose: d if mask[d] else 0, mask_of)
        assert child_value(run, DEFAULT_CONFIG) <= exact.value + 1e-9


def test_bound_dominates_a_random_railed_policy_and_keeps_to_the_rails(children):
    """Per child the bound is at least as good as a policy choosing at random within the one mask (not one of the
    search's bases), its every decision is within the mask (0 label and rail violations), and replaying its plan
    reproduces the value the search reported."""
    config = DEFAULT_CONFIG
    subset = children[:15]
    mask_of = rails_mask()
    row = railed_bound_row(subset, config)
    assert row["label_violations"] == 0 and row["rail_violations"] == 0 and row["decisions"] > 0
    rng = np.random.default_rng(0)
    for child in subset:
        plan = best_plan(child, config, mask_of)
        if math.isnan(plan.value):
            continue
        assert row["values_by_patient"][child.patient_id] == pytest.approx(plan.value)
        for _ in range(3):
            def random_railed(timeline):
                mask = mask_of(timeline)
                return int(rng.choice([i for i in range(N_DOSE_CLASSES) if mask[i]]))

            value = child_value(run_child(child, config, random_railed), config)
            assert math.isnan(value) or value <= plan.value + 1e-9


def test_looser_masks_never_lower_the_bound(children):
    """Lifting the clinical rails (label bounds only) gives the search more sequences: on the children the railed
    bound treats, the label-bounds bound is at least as high on average, and every rail id lifted is a real rule."""
    from fhir_mapping.rails import RULE_BY_ID

    assert set(RULE_BY_ID) >= CLINICAL_RAIL_IDS
    railed, loose = [], []
    for child in children[:12]:
        plan = best_plan(child, DEFAULT_CONFIG, rails_mask())
        if math.isnan(plan.value):
            continue
        railed.append(plan.value)
        loose.append(best_plan(child, DEFAULT_CONFIG, label_mask).value)
    assert np.mean(loose) >= np.mean(railed) - 1e-9
