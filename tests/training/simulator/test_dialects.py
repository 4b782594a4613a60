"""Simulator dialects: the same children as coded observations (epidose), as an EHR records them
(ehr), or a mix per child; the truth files never depend on the dialect."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_mapping.build import build_timeline
from fhir_mapping.codes import EPIDOSE_SYSTEM
from training.simulator.cohort import simulate_cohort, write_cohort
from training.simulator.fhir import child_resources, dialect_of

SEIZURE_CODES = {"seizure-count-since-last-visit", "seizure-last-3-months", "seizure-last-6-months", "seizure-duration-class"}


@pytest.fixture(scope="module")
def runs() -> list:
    return simulate_cohort(24, seed=5)


def project_seizure_codes(resources: list[dict]) -> set[str]:
    return {c["code"] for r in resources if r["resourceType"] == "Observation" for c in r["code"]["coding"] if c["system"] == EPIDOSE_SYSTEM} & SEIZURE_CODES


def test_truth_files_are_identical_in_every_dialect(tmp_path: Path) -> None:
    for dialect in ("epidose", "ehr", "mixed"):
        write_cohort(tmp_path / dialect, 6, 9, dialect=dialect)
    for name in ("visits.jsonl", "patients.jsonl"):
        texts = {(tmp_path / d / "truth" / name).read_bytes() for d in ("epidose", "ehr", "mixed")}
        assert len(texts) == 1, name
    assert (tmp_path / "ehr" / "ndjson" / "DocumentReference.ndjson").exists()
    assert not (tmp_path / "epidose" / "ndjson" / "DocumentReference.ndjson").exists()


def test_ehr_dialect_keeps_seizures_in_conditions_reasons_and_notes_only(runs: list) -> None:
    kinds: Counter[str] = Counter()
    for run in runs:
        resources = child_resources(run, dialect="ehr")
        assert project_seizure_codes(resources) == set()
        kinds.update(r["resourceType"] for r in resources)
        kinds.update("reason" for r in resources if r["resourceType"] == "Encounter" and "reasonCode" in r)
    assert kinds["DocumentReference"] > 0.7 * kinds["Encounter"] and kinds["reason"] > 0 and kinds["QuestionnaireResponse"] > 0
    assert kinds["Condition"] > len(runs)  # diagnoses plus seizure Conditions


def test_ehr_dialect_maps_back_to_the_truth_where_it_is_known(runs: list) -> None:
    """Every seizure item the mapping reads from an EHR-shaped child agrees with the simulated truth,
    and seizure since the last visit is known at most visits (the rest: not recorded)."""
    known = total = 0
    languages: Counter[str] = Counter()
    for run in runs:
        timeline = build_timeline(child_resources(run, dialect="ehr"), run.child.patient_id)
        truth = {v.date: v for v in run.visits}
        assert [v.date for v in timeline.visits] == [v.date for v in run.visits]
        for visit in timeline.visits:
            expected = truth[visit.date]
            total += 1
            pairs = [(visit.seizure_since_last_visit, expected.seizure_since_last_visit), (visit.seizure_count_since_last_visit, expected.seizure_count),
                     (visit.seizure_last_3_months, expected.seizure_last_3_months), (visit.seizure_last_6_months, expected.seizure_last_6_months),
                     (visit.seizure_duration_class, expected.duration_class), (visit.behaviour_adverse_effect, expected.adverse_effect)]
            assert all(found is None or found == true for found, true in pairs), (visit.date, pairs, visit.provenance)
            known += visit.seizure_since_last_visit is not None
        languages.update(p.kind for p in timeline.problems)
    assert 0.75 < known / total < 1.0
    assert languages.get("unreadable-text", 0) == 0


def test_a_familys_request_is_read_back_in_every_dialect() -> None:
    """Every request the simulated families make is on the chart, coded or in the note, and nothing else is."""
    runs = simulate_cohort(60, seed=5)
    asked = 0
    for dialect in ("epidose", "ehr"):
        for run in runs:
            timeline = build_timeline(child_resources(run, dialect=dialect), run.child.patient_id)
            truth = {v.date: v for v in run.visits}
            for visit in timeline.visits:
                expected = truth[visit.date].family_requests_treatment
                assert visit.family_requests_treatment == (True if expected else None), (dialect, visit.date)
                asked += bool(expected)
    assert asked > 0


def test_mixed_dialect_gives_each_child_one_dialect(runs: list) -> None:
    dialects = Counter(dialect_of(run.child, "mixed") for run in runs)
    assert set(dialects) == {"epidose", "ehr"}
    for run in runs:
        codes = project_seizure_codes(child_resources(run, dialect="mixed"))
        assert (codes == SEIZURE_CODES) == (dialect_of(run.child, "mixed") == "epidose")
    with pytest.raises(ValueError):
        dialect_of(runs[0].child, "hl7v2")


def test_cli_dialect_option(tmp_path: Path) -> None:
    from plugin.cli import main

    result = CliRunner().invoke(main, ["cohort", "--patients", "3", "--seed", "2", "--out", str(tmp_path), "--dialect", "ehr"])
    assert result.exit_code == 0, result.output
    notes = [json.loads(line) for line in (tmp_path / "ndjson" / "DocumentReference.ndjson").read_text(encoding="utf-8").splitlines()]
    assert notes and all(n["content"][0]["attachment"]["contentType"].startswith("text/") for n in notes)
    assert CliRunner().invoke(main, ["cohort", "--patients", "1", "--out", str(tmp_path / "x"), "--dialect", "klingon"]).exit_code == 2
