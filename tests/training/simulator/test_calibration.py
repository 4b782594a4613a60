"""Calibration against the published study (domain.md §1) at its size and at 10,000 children."""

from __future__ import annotations

import pytest

from training.simulator.calibration import (
    STUDY_PATIENTS,
    calibration_markdown,
    calibration_report,
    checks,
    study_population,
    study_statistics,
)
from training.simulator.cohort import simulate_cohort
from training.simulator.config import DEFAULT_CONFIG, PD_PROFILE_NAMES, with_pd_profile

# Enough children for 245 of them to be treated (about three in four are: the rest wait after one seizure).
STUDY_SIZE_COHORT = 360


def test_study_checks_hold_for_the_study_itself() -> None:
    """The published numbers pass their own checks, so a failing cohort check is the cohort's fault."""
    assert all(checks(study_statistics()).values())


def test_checks_fail_on_a_shifted_dose_distribution() -> None:
    """Moving 10 points from 0.75 g to 1.25 g breaks the dose checks."""
    shifted = study_statistics()
    shifted["dose_class_shares"][5] -= 0.10
    shifted["dose_class_shares"][7] += 0.10
    result = checks(shifted)
    assert not result["top_four_dose_shares_within_5_points"] and not result["top_four_dose_classes_in_study_order"]


@pytest.mark.parametrize("profile", PD_PROFILE_NAMES)
def test_calibration_at_study_size(profile: str) -> None:
    """245 treated children (the study's population, from seed 0) meet every criterion under each PD
    profile, shown side by side; the never-treated children of the cohort are left out and counted."""
    runs = simulate_cohort(STUDY_SIZE_COHORT, 0, with_pd_profile(DEFAULT_CONFIG, profile))
    treated = study_population(runs)
    assert len(treated) >= STUDY_PATIENTS and len(treated) < len(runs)  # the physicians wait after one seizure
    report = calibration_report(runs[: runs.index(treated[STUDY_PATIENTS - 1]) + 1])
    assert report["cohort"]["patients"] == STUDY_PATIENTS and report["cohort"]["never_treated_children_left_out"] > 0
    assert report["checks"] and all(report["checks"].values()), report["checks"]
    text = calibration_markdown(report)
    assert "| 1-5 |" in text and "PASS" in text and "FAIL" not in text


@pytest.mark.slow
@pytest.mark.parametrize("profile", PD_PROFILE_NAMES)
def test_calibration_at_10000_children(profile: str) -> None:
    """A 10,000-child cohort meets every calibration criterion under each PD profile."""
    report = calibration_report(simulate_cohort(10_000, 0, with_pd_profile(DEFAULT_CONFIG, profile)))
    assert all(report["checks"].values()), report["checks"]


@pytest.mark.slow
def test_calibration_at_study_size_holds_for_most_seeds() -> None:
    """At 245 children sampling noise can swap close classes (the study's own 0.75/1 g and 0.5/0 g gaps
    are under 2 points), yet most seeds meet every criterion and all meet the share tolerances."""
    reports = [calibration_report(simulate_cohort(STUDY_SIZE_COHORT, seed)) for seed in range(1, 9)]
    assert sum(all(r["checks"].values()) for r in reports) >= 6
    for report in reports:
        assert report["checks"]["followup_buckets_within_10_points"] and report["checks"]["seizure_free_share_within_5_points"]
