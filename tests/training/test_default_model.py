"""The default model's verdict: what it judges, on which children, and against which physician."""

from __future__ import annotations

import math

import pytest

from training.default_model import served_verdict
from training.evaluation.simulated import summarise_runs
from training.simulator.config import DEFAULT_CONFIG, with_pd_profile
from training.simulator.environment import Environment, oracle_policy


@pytest.mark.parametrize("profile", ["sourced", "fitted"])
def test_physician_and_oracle_on_the_direct_state_act_as_on_the_coded_charts(profile: str) -> None:
    """The verdict replays the physician and the oracle on the direct state: the same doses, so the same
    true values child by child, as reading the ``epidose`` charts through the FHIR mapping (ten times dearer)."""
    config = with_pd_profile(DEFAULT_CONFIG, profile)
    direct = Environment(25, 7, config, state="direct")
    charts = Environment(25, 7, config, state="fhir", dialect="epidose")
    for runs in ((direct.physician_runs(), charts.physician_runs()),
                 (direct.run(per_child=lambda c: oracle_policy(c, config)), charts.run(per_child=lambda c: oracle_policy(c, config)))):
        a, b = (summarise_runs(r, config)["values_by_patient"] for r in runs)
        assert a.keys() == b.keys() and len(a) > 10
        assert all(math.isclose(a[k], b[k]) for k in a)
        assert [[v.dose_class for v in run.visits] for run in runs[0]] == [[v.dose_class for v in run.visits] for run in runs[1]]


def _rows(served_low: float, model_low: float, *, rail_violations: int = 0) -> dict:
    def row(low: float, violations: int = 0) -> dict:
        return {"paired_vs_physician": {"mean": low + 1.0, "ci_low": low, "ci_high": low + 2.0, "children": 300},
                "label_violations": 0, "rail_violations": violations}

    return {"served": row(served_low, rail_violations) | {"clear_share": 0.4}, "model": row(model_low)}


def test_the_verdict_needs_both_the_served_policy_and_the_model_above_the_physician_in_every_profile() -> None:
    assert served_verdict({"sourced": _rows(0.5, 0.2), "fitted": _rows(0.1, 0.3)})["passed"] is True
    verdict = served_verdict({"sourced": _rows(0.5, 0.2), "fitted": _rows(-0.1, 0.3)})
    assert verdict["passed"] is False and verdict["by_policy"]["model"]["passed"] is True
    assert verdict["ci_low_by_profile"] == {"sourced": 0.2, "fitted": -0.1}
    assert served_verdict({"sourced": _rows(0.5, -0.2), "fitted": _rows(0.5, 0.3)})["passed"] is False
    # A served policy above the physician that broke a rail does not pass.
    assert served_verdict({"sourced": _rows(0.5, 0.2, rail_violations=1), "fitted": _rows(0.5, 0.3)})["passed"] is False
    assert served_verdict({"sourced": _rows(0.5, 0.2), "fitted": _rows(0.5, 0.3)})["clear_share_by_profile"] == {"sourced": 0.4, "fitted": 0.4}
