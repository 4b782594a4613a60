"""The course features: seizures reported so far, time since the last seizure, levetiracetam ever given."""

from __future__ import annotations

import math
from datetime import date

import pytest

from fhir_mapping.build import build_timeline
from fhir_mapping.dosing import DAYS_PER_YEAR
from fhir_mapping.features import FEATURE_SPEC, state_matrix
from tests.fhir_mapping import factory as f

DAYS = (date(2020, 1, 6), date(2020, 4, 6), date(2020, 7, 6), date(2021, 1, 4))


def _column(values, name: str) -> list[float]:
    return [float(v) for v in values[:, FEATURE_SPEC.index(name)]]


def test_history_accumulates_visit_by_visit() -> None:
    """Counts add up over visits, the seizure clock restarts at the last seizure, LEV counts once taken."""
    resources = [f.patient()] + [f.encounter(f"e{i}", d) for i, d in enumerate(DAYS)]
    resources += [f.count("c0", DAYS[0], 3, eid="e0"), f.count("c1", DAYS[1], 0, eid="e1"),
                  f.count("c2", DAYS[2], 1, eid="e2"), f.count("c3", DAYS[3], 0, eid="e3")]
    resources.append(f.lev_order("m0", 500.0, DAYS[1]))  # decided at the second visit
    values, _ = state_matrix(build_timeline(resources))
    assert _column(values, "seizures_reported_so_far") == [3.0, 3.0, 4.0, 4.0]
    since = _column(values, "years_since_last_seizure")
    assert since[0] == 0.0 and since[1] == pytest.approx((DAYS[1] - DAYS[0]).days / DAYS_PER_YEAR)
    assert since[2] == 0.0 and since[3] == pytest.approx((DAYS[3] - DAYS[2]).days / DAYS_PER_YEAR)
    assert _column(values, "ever_on_levetiracetam") == [0.0, 0.0, 1.0, 1.0]  # on arrival, never the decision


def test_history_is_missing_without_any_seizure_report() -> None:
    """With no seizure report at all the seizure history is unknown (NaN), not zero."""
    resources = [f.patient(), f.encounter("e0", DAYS[0]), f.quantity("w", "weight", DAYS[0], 25.0, eid="e0")]
    values, observed = state_matrix(build_timeline(resources))
    for name in ("seizures_reported_so_far", "years_since_last_seizure"):
        assert math.isnan(values[0, FEATURE_SPEC.index(name)]) and not observed[0, FEATURE_SPEC.index(name)]
    assert values[0, FEATURE_SPEC.index("ever_on_levetiracetam")] == 0.0
