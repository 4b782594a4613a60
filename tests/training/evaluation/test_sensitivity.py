"""Sensitivity of the true values to the exposure–response world: same held-out children under every
PD profile, paired differences with the physician, the share of the physician → oracle gap closed, and
the condition a default or promoted model must meet (beat the physician under every profile)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.evaluation.simulated import (
    RAILED_BOUND,
    beats_physician_everywhere,
    gap_closed,
    paired_difference,
    sensitivity,
)
from training.evaluation.study import run_study
from training.simulator.cohort import write_cohort


@pytest.fixture(scope="module")
def cohort_80(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sensitivity80")
    write_cohort(out, 80, 13)
    return out


def test_paired_difference_is_the_mean_per_child_difference_with_a_normal_interval() -> None:
    """Differences 1, 2, 3, 4 on the shared children: mean 2.5, half-width 1.96·sd/√4; a child only one
    policy followed past its first visit is left out."""
    row = {"values_by_patient": {"a": 11.0, "b": 12.0, "c": 13.0, "d": 14.0, "e": 99.0}}
    reference = {"values_by_patient": {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}}
    paired = paired_difference(row, reference)
    half = 1.96 * np.std([1, 2, 3, 4], ddof=1) / 2
    assert paired["children"] == 4 and paired["mean"] == pytest.approx(2.5)
    assert paired["ci_low"] == pytest.approx(2.5 - half) and paired["ci_high"] == pytest.approx(2.5 + half)
    assert gap_closed({"value": 45.0}, {"value": 40.0}, {"value": 50.0}) == pytest.approx(0.5)


def test_beating_the_physician_requires_every_profile() -> None:
    """One profile whose lower bound is not above 0 fails the condition, whatever the other says."""
    rows = {"sourced": {"m": {"paired_vs_physician": {"ci_low": 0.4}}}, "fitted": {"m": {"paired_vs_physician": {"ci_low": -0.1}}}}
    passed, bounds = beats_physician_everywhere(rows, "m")
    assert not passed and bounds == {"sourced": 0.4, "fitted": -0.1}
    rows["fitted"]["m"]["paired_vs_physician"]["ci_low"] = 0.2
    assert beats_physician_everywhere(rows, "m")[0]


def test_every_profile_replays_the_same_children(cohort_80: Path) -> None:
    """Physician and oracle under both profiles on the same 30 children: the physician's paired difference
    with itself is 0, the oracle closes the whole gap, and the two worlds give different values."""
    patients = [json.loads(line)["patient_id"] for line in (cohort_80 / "truth" / "patients.jsonl").read_text().splitlines()][:30]
    rows = sensitivity(cohort_80, {}, patients, state="direct")
    assert rows is not None and set(rows) == {"sourced", "fitted"}
    for profile_rows in rows.values():
        assert profile_rows["physician"]["patients"] == 30
        assert profile_rows["physician"]["paired_vs_physician"]["mean"] == 0.0
        assert profile_rows["oracle"]["gap_closed"] == pytest.approx(1.0)
        assert set(profile_rows["oracle"]["values_by_patient"]) <= set(patients)
    assert rows["sourced"]["physician"]["values_by_patient"] != rows["fitted"]["physician"]["values_by_patient"]


def test_the_railed_bound_is_a_row_with_its_own_gap_column(cohort_80: Path) -> None:
    """With the railed bound, every profile has the oracle held to the rails on the same children: never outside the
    mask, above the physician, closing its own gap wholly; every row carries the second gap-closed share."""
    patients = [json.loads(line)["patient_id"] for line in (cohort_80 / "truth" / "patients.jsonl").read_text().splitlines()][:20]
    rows = sensitivity(cohort_80, {}, patients, state="direct", railed_bound=True)
    assert rows is not None
    for profile_rows in rows.values():
        bound, physician = profile_rows[RAILED_BOUND], profile_rows["physician"]
        assert bound["rail_violations"] == 0 and bound["label_violations"] == 0
        assert bound["value"] > physician["value"]
        assert bound["gap_closed_railed"] == pytest.approx(1.0) and physician["gap_closed_railed"] == pytest.approx(0.0)
        assert set(bound["values_by_patient"]) <= set(patients)
        assert 0.0 <= profile_rows["oracle"]["dominated_by_railed_bound"] <= 1.0


@pytest.mark.slow
def test_study_writes_the_sensitivity_table(cohort_80: Path, tmp_path: Path) -> None:
    """The study (one quick behaviour-cloning model) writes sensitivity.md with a row per policy and profile
    and the every-profile verdict."""
    summary = run_study(cohort_80, tmp_path, steps=50, configs=("bc",), progress=False, railed_bound=True)
    text = (tmp_path / "sensitivity.md").read_text(encoding="utf-8")
    for name in ("bc", "physician", "oracle", RAILED_BOUND):
        for profile in ("sourced", "fitted"):
            assert f"| {name} | {profile} |" in text
    assert "| gap closed, railed |" in text
    assert "- bc: " in text
    assert set(summary["beats_physician_everywhere"]["bc"]["ci_low_by_profile"]) == {"sourced", "fitted"}
