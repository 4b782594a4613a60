"""Round trip: fhir_mapping reads the emitted cohort back and recovers what the simulator decided."""

from __future__ import annotations

import json
from pathlib import Path

from fhir_mapping.build import build_timelines
from fhir_mapping.dosing import dose_class_of
from fhir_mapping.inputs import collect_resources
from training.simulator.cohort import CohortSummary
from training.simulator.config import DEFAULT_CONFIG
from training.simulator.environment import fhir_state_view
from training.simulator.patients import draw_cohort
from training.simulator.physician import SimulatedPhysician
from training.simulator.simulate import run_child


def test_mapping_recovers_dose_classes_and_seizure_flags_exactly(cohort_50: tuple[Path, CohortSummary]) -> None:
    """Every visit read from the Bulk Data folder has the truth's dose before/after and seizure reports."""
    out, summary = cohort_50
    resources, problems = collect_resources(out / "ndjson")
    assert problems == []
    timelines = build_timelines(resources)
    truth = {(v["patient_id"], v["date"]): v for v in map(json.loads, (out / "truth" / "visits.jsonl").read_text(encoding="utf-8").splitlines())}
    seen = asked = 0
    for timeline in timelines:
        assert timeline.problems == []
        for visit in timeline.visits:
            expected = truth[(timeline.patient_id, visit.date.isoformat())]
            assert dose_class_of(visit.lev_mg_per_day) == expected["dose_class"]
            assert dose_class_of(visit.lev_mg_per_day_before) == expected["dose_class_before"]
            assert visit.seizure_count_since_last_visit == expected["seizure_count"]
            assert visit.seizure_since_last_visit == expected["seizure_since_last_visit"]
            assert visit.seizure_last_3_months == expected["seizure_last_3_months"]
            assert visit.seizure_last_6_months == expected["seizure_last_6_months"]
            # A family's request is charted only when made; otherwise it is not recorded (None).
            assert visit.family_requests_treatment == (True if expected["family_requests_treatment"] else None)
            asked += bool(expected["family_requests_treatment"])
            seen += 1
    assert seen == len(truth) == summary.visits
    assert asked > 0, "no family asked for treatment in 50 children: the round trip is not exercised"


def test_bundles_read_back_like_the_ndjson(cohort_50: tuple[Path, CohortSummary]) -> None:
    """A patient's transaction Bundle gives the same visits and doses as the Bulk Data files."""
    out, _ = cohort_50
    bundle = sorted((out / "bundles").iterdir())[0]
    from_bundle = build_timelines(collect_resources(bundle)[0])[0]
    from_ndjson = {t.patient_id: t for t in build_timelines(collect_resources(out / "ndjson")[0])}[from_bundle.patient_id]
    assert [(v.date, v.lev_mg_per_day) for v in from_bundle.visits] == [(v.date, v.lev_mg_per_day) for v in from_ndjson.visits]


def test_physician_decides_the_same_on_the_fhir_path_as_on_the_direct_timeline() -> None:
    """Logging uses the simulator's direct timeline for speed; the physician's probabilities equal those on the mapped FHIR."""
    for child in draw_cohort(15, 21, DEFAULT_CONFIG):
        direct = run_child(child, DEFAULT_CONFIG, SimulatedPhysician(child.physician, DEFAULT_CONFIG))
        mapped = run_child(child, DEFAULT_CONFIG, SimulatedPhysician(child.physician, DEFAULT_CONFIG), state_view=fhir_state_view)
        assert [v.probabilities for v in direct.visits] == [v.probabilities for v in mapped.visits]
        assert [v.dose_class for v in direct.visits] == [v.dose_class for v in mapped.visits]
