"""A small cohort written once for the simulator tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.simulator.cohort import CohortSummary, write_cohort


@pytest.fixture(scope="session")
def cohort_50(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CohortSummary]:
    """A 50-patient cohort (seed 11) on disk, with its summary."""
    out = tmp_path_factory.mktemp("cohort50")
    return out, write_cohort(out, 50, 11)
