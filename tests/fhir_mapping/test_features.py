"""The state vector: specification, no action in the state, phases, imputation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from fhir_mapping import codes
from fhir_mapping.build import build_timeline
from fhir_mapping.features import (
    FEATURE_SPEC,
    Imputation,
    phase_of,
    seizure_count_class,
    state_matrix,
    state_row,
)
from tests.fhir_mapping import factory as f


def column(name: str) -> int:
    return FEATURE_SPEC.index(name)


def test_spec_has_the_published_groups_and_a_stable_version() -> None:
    """The spec names every published group, the multi-hot follows ASM_KEYS, and the hash is 16 hex digits."""
    groups = FEATURE_SPEC.groups
    assert {"seizures", "exam", "assessment", "labs", "eeg", "medicines", "dose", "phase", "demographics", "course"} <= set(groups)
    assert groups["medicines"] == tuple(f"asm_{k}" for k in codes.ASM_KEYS)
    assert len(set(FEATURE_SPEC.names)) == FEATURE_SPEC.dimension
    assert len(FEATURE_SPEC.version) == 16 and int(FEATURE_SPEC.version, 16) >= 0
    assert FEATURE_SPEC.version == json.loads(json.dumps(FEATURE_SPEC.to_json()))["version"]


def test_state_never_contains_the_decision() -> None:
    """Changing only the decided order at a visit leaves that visit's state unchanged."""
    resources = f.history(doses=(0.0, 500.0, 750.0, 750.0))
    timeline = build_timeline(resources)
    values, observed = state_row(timeline, 1)
    changed = dataclasses.replace(timeline.visits[1], lev=None, anti_seizure_medicines=frozenset({"valproate"}))
    timeline.visits[1] = changed
    again, again_observed = state_row(timeline, 1)
    np.testing.assert_array_equal(np.nan_to_num(values, nan=-1), np.nan_to_num(again, nan=-1))
    np.testing.assert_array_equal(observed, again_observed)


def test_dose_features_and_phases_follow_the_dose_history() -> None:
    """Dose on arrival in mg/day and mg/kg/day, and phases initiation → titration → maintenance → taper."""
    timeline = build_timeline(f.history(visits=5, doses=(0.0, 500.0, 1000.0, 1000.0, 500.0)))
    values, observed = state_matrix(timeline)
    assert values[:, column("lev_mg_per_day")].tolist() == [0.0, 0.0, 500.0, 1000.0, 1000.0]
    assert values[2, column("lev_mg_per_kg_day")] == pytest.approx(500.0 / 30.0)
    assert [phase_of(timeline, i) for i in range(5)] == [None, None, "initiation", "titration", "maintenance"]
    six = build_timeline(f.history(visits=6, doses=(0.0, 500.0, 1000.0, 1000.0, 500.0, 0.0)))
    assert [phase_of(six, i) for i in (5,)] == ["taper"]
    assert values[0, column("phase_initiation")] == 0.0 and observed[0, column("phase_initiation")]


def test_missing_values_are_nan_with_mask() -> None:
    """Unreported values are NaN and not observed; reported ones are observed."""
    values, observed = state_matrix(build_timeline(f.history(visits=2)))
    assert np.isnan(values[:, column("lab_alt")]).all() and not observed[:, column("lab_alt")].any()
    assert observed[:, column("weight_kg")].all()
    assert np.array_equal(observed, ~np.isnan(values))


def test_seizure_count_classes() -> None:
    """Counts map to ordinal classes 0, 1, 2–3, ≥4."""
    assert [seizure_count_class(n) for n in (0, 1, 2, 3, 4, 40)] == [0, 1, 2, 2, 3, 3]


def test_imputation_fit_transform_and_json_round_trip() -> None:
    """Means come from observed training values only; missing entries get the mean and an indicator."""
    values = np.full((3, FEATURE_SPEC.dimension), np.nan)
    weight = column("weight_kg")
    values[:2, weight] = [20.0, 40.0]
    observed = ~np.isnan(values)
    imputation = Imputation.fit(values, observed)
    assert imputation.means[weight] == 30.0 and imputation.stds[weight] == 10.0
    out = imputation.transform(values, observed)
    assert out.dtype == np.float32 and out.shape == (3, imputation.output_dimension)
    assert out[:, weight].tolist() == [-1.0, 1.0, 0.0]
    indicator = imputation.output_names.index("weight_kg_missing")
    assert out[:, indicator].tolist() == [0.0, 0.0, 1.0]
    assert not np.isnan(out).any()
    loaded = Imputation.from_json(json.loads(json.dumps(imputation.to_json())))
    np.testing.assert_array_equal(loaded.transform(values[2], observed[2]), out[2])


def test_imputation_refuses_another_spec_version() -> None:
    """Statistics saved for another feature-spec version are refused."""
    data = Imputation.fit(np.zeros((1, FEATURE_SPEC.dimension)), np.ones((1, FEATURE_SPEC.dimension), bool)).to_json()
    data["version"] = "0" * 16
    with pytest.raises(ValueError, match="feature spec"):
        Imputation.from_json(data)


def test_phase_unknown_when_already_on_levetiracetam_at_the_first_visit() -> None:
    """A child on levetiracetam at the first visit in the data has an unknown phase, not 'initiation'."""
    from datetime import date

    resources = [f.patient(), f.encounter("e0", date(2021, 3, 1)), f.lev_order("mr", 500.0, date(2020, 6, 1))]
    timeline = build_timeline(resources)
    values, observed = state_row(timeline, 0)
    assert phase_of(timeline, 0) is None
    assert not observed[column("phase_initiation")] and np.isnan(values[column("phase_maintenance")])
    assert values[column("lev_mg_per_day")] == 500.0
