"""Simulated levetiracetam levels carry their timing as records do, and the PK estimate reads them back.

The children, their true clearances and the levels come from the simulator; the charts are written as
FHIR and read by the mapping, as the service reads them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from fhir_mapping.build import build_timeline
from fhir_mapping.pk_estimate import estimate_at
from training.simulator.cohort import simulate_cohort
from training.simulator.config import DEFAULT_CONFIG
from training.simulator.fhir import child_resources
from training.simulator.levels import DEFAULT_RECORDING, level_timing


def test_the_record_of_a_level_says_when_it_was_drawn() -> None:
    hours = [0.5 + 11.5 * i / 199 for i in range(200)]
    records = [level_timing(12345, visit, h) for visit, h in enumerate(hours)]
    kinds = Counter("dose time" if r.note and r.note.startswith("Time of last dose") else "trough" if r.note else "none" for r in records)
    assert kinds["dose time"] > 0.3 * len(records) and kinds["none"] > 0.1 * len(records)
    for record, h in zip(records, hours, strict=True):
        drawn = int(record.drawn_at[:2]) + int(record.drawn_at[3:]) / 60
        assert 5.0 <= drawn <= 17.5  # a clinic or early-morning draw, never at night
        if record.note and record.note.startswith("Time of last dose"):
            recalled = int(record.note[-5:-3]) + int(record.note[-2:]) / 60
            error = ((drawn - recalled) % 24 - h + 12) % 24 - 12
            assert abs(error) < 4 * DEFAULT_RECORDING.dose_time_recall_sd_h
        elif record.note:
            assert h >= 9.0  # "trough" only for a draw within 3 h before the next dose
    assert level_timing(12345, 3, 10.0) == level_timing(12345, 3, 10.0)  # its own stream: reproducible


def test_the_estimate_recovers_simulated_children_clearances() -> None:
    config = dataclasses.replace(DEFAULT_CONFIG, level_probability=0.6)
    inside, estimates, recorded_kinds = 0, 0, Counter()
    for run in simulate_cohort(40, 5, config):
        visits = [v for v in run.visits if "lev_level" in v.labs]
        if not visits:
            continue
        resources = child_resources(run)
        levels = [r for r in resources if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "30471-7"]
        assert all(len(r["effectiveDateTime"]) > 10 for r in levels)  # the draw's clock time is written
        timeline = build_timeline(resources)
        for visit in visits:
            assessment = estimate_at(timeline, visit.date)
            assert assessment is not None and assessment.has_estimate and assessment.clearance_l_per_h is not None
            recorded_kinds[assessment.latest.timing.kind if assessment.latest else "?"] += 1
            _, low, high = assessment.clearance_l_per_h
            inside += low <= float(run.child.pk_parameters(visit.date, config).clearance) <= high
            estimates += 1
    assert estimates >= 40
    assert set(recorded_kinds) == {"recorded", "trough", "unknown"}
    assert inside / estimates == pytest.approx(0.93, abs=0.07)  # priors wider than this world's 30% BSV
