"""The promotion gate: metrics in, decision and reasons out."""

from __future__ import annotations

from typing import Any

import pytest

from training.retrain.gate import gate
from training.retrain.job import held_out


def _metrics(agreement: float = 0.6, violations: int = 0, wis_low: float = 10.0, wdr_low: float = 12.0,
             true_value: float | None = None) -> dict[str, Any]:
    return {
        "top1_agreement": agreement,
        "safety_violations": violations,
        "ope": {"wis": {"value": wis_low + 5, "ci_low": wis_low, "ci_high": wis_low + 10, "ess": 20.0},
                "wdr": {"value": wdr_low + 5, "ci_low": wdr_low, "ci_high": wdr_low + 10, "ess": 20.0}},
        "true_value": true_value,
    }


def test_first_model_needs_only_safety() -> None:
    """With no champion a safe candidate is promoted and an unsafe one refused."""
    assert gate(_metrics(), None, agreement_margin=0.02)[0] is True
    promote, reason, _ = gate(_metrics(violations=2), None, agreement_margin=0.02)
    assert promote is False and "label bounds" in reason


def test_equal_or_better_candidate_is_promoted() -> None:
    """A candidate matching the champion within the margin and bounds passes every check."""
    promote, _, checks = gate(_metrics(agreement=0.59), _metrics(agreement=0.60), agreement_margin=0.02)
    assert promote is True
    assert all(check["passed"] for check in checks.values())


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (_metrics(violations=1), "label bounds"),
        (_metrics(agreement=0.55), "agreement"),
        (_metrics(wis_low=9.0), "wis lower bound"),
        (_metrics(wdr_low=11.0), "wdr lower bound"),
        (_metrics(true_value=40.0), "true value"),
    ],
)
def test_each_check_can_refuse(candidate: dict[str, Any], reason: str) -> None:
    """Failing any single check refuses the candidate and names the failed check."""
    champion = _metrics(true_value=41.0)
    promote, text, _ = gate(candidate | ({} if candidate["true_value"] is not None else {"true_value": 42.0}), champion,
                            agreement_margin=0.02)
    assert promote is False and reason in text


def test_configured_estimator_only() -> None:
    """With an estimator configured only its lower bound is gated."""
    assert gate(_metrics(wdr_low=0.0), _metrics(), agreement_margin=0.02, estimator="wis")[0] is True
    assert gate(_metrics(wis_low=0.0), _metrics(), agreement_margin=0.02, estimator="wis")[0] is False


def test_holdout_split_is_stable() -> None:
    """A patient's side of the split depends only on its id and the seed, with about the asked share."""
    ids = [f"patient-{n}" for n in range(2000)]
    share = sum(held_out(p, 0.2, 0) for p in ids) / len(ids)
    assert 0.17 < share < 0.23
    assert [held_out(p, 0.2, 0) for p in ids[:50]] == [held_out(p, 0.2, 0) for p in ids[:50]]
    assert [held_out(p, 0.2, 0) for p in ids] != [held_out(p, 0.2, 1) for p in ids]


def test_candidate_must_beat_the_physician_under_every_profile() -> None:
    """On simulated data a candidate whose paired difference with the physician has a lower bound at or
    below 0 under any PD profile is refused against a champion; a first model is promoted with the verdict recorded."""
    losing = {"passed": False, "ci_low_by_profile": {"sourced": 1.5, "fitted": -0.4}}
    winning = {"passed": True, "ci_low_by_profile": {"sourced": 1.5, "fitted": 0.3}}
    promote, reason, checks = gate(_metrics() | {"beats_physician_everywhere": losing}, _metrics(), agreement_margin=0.02)
    assert promote is False and "every PD profile" in reason and "fitted -0.40" in reason
    assert checks["beats_physician_everywhere"]["enforced"] is True
    assert gate(_metrics() | {"beats_physician_everywhere": winning}, _metrics(), agreement_margin=0.02)[0] is True
    promote, _, checks = gate(_metrics() | {"beats_physician_everywhere": losing}, None, agreement_margin=0.02)
    assert promote is True and checks["beats_physician_everywhere"]["enforced"] is False
