"""The cohort writer: layout, determinism, valid FHIR R4, label-safe and recorded physician decisions."""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhir_mapping.codes import DURATION_CLASSES, EEG_RESULTS, EPIDOSE_SYSTEM, EXAM_CLASSES, LOINC
from fhir_mapping.dosing import N_DOSE_CLASSES
from training.simulator.cohort import CohortSummary, simulate_cohort

TYPES = ("Patient", "Condition", "Encounter", "Observation", "MedicationRequest")


def _ndjson(out: Path, kind: str) -> list[dict]:
    return [json.loads(line) for line in (out / "ndjson" / f"{kind}.ndjson").read_text(encoding="utf-8").splitlines()]


def test_cli_writes_bulk_layout_bundles_truth_and_calibration(tmp_path: Path) -> None:
    """`epidose cohort` writes NDJSON per type, one Bundle per patient, truth files and the report."""
    from plugin.cli import main

    result = CliRunner().invoke(main, ["cohort", "--patients", "5", "--seed", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "ndjson").iterdir()} == {f"{t}.ndjson" for t in TYPES}
    patients = _ndjson(tmp_path, "Patient")
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == sorted(f"{p['id']}.json" for p in patients)
    assert (tmp_path / "truth" / "visits.jsonl").exists() and (tmp_path / "truth" / "patients.jsonl").exists()
    report = json.loads((tmp_path / "calibration.json").read_text(encoding="utf-8"))
    # The calibration compares the children ever treated (the study's population) and counts the rest.
    assert report["cohort"]["patients"] + report["cohort"]["never_treated_children_left_out"] == 5
    assert "| 0.75 |" in (tmp_path / "calibration.md").read_text(encoding="utf-8")


def test_same_seed_same_cohort_other_seed_other_cohort(tmp_path: Path) -> None:
    """A cohort is byte-identical for a seed and differs for another seed."""
    from training.simulator.cohort import write_cohort

    write_cohort(tmp_path / "a", 8, 5)
    write_cohort(tmp_path / "b", 8, 5)
    write_cohort(tmp_path / "c", 8, 6)
    for kind in TYPES:
        a = (tmp_path / "a" / "ndjson" / f"{kind}.ndjson").read_bytes()
        assert a == (tmp_path / "b" / "ndjson" / f"{kind}.ndjson").read_bytes()
    assert (tmp_path / "a" / "ndjson" / "Patient.ndjson").read_bytes() != (tmp_path / "c" / "ndjson" / "Patient.ndjson").read_bytes()


def test_every_resource_validates_under_r4b(cohort_50: tuple[Path, CohortSummary]) -> None:
    """All NDJSON resources and every Bundle of a 50-patient cohort parse as fhir.resources R4B models."""
    out, summary = cohort_50
    count = 0
    for kind in TYPES:
        model = getattr(importlib.import_module(f"fhir.resources.R4B.{kind.lower()}"), kind)
        for resource in _ndjson(out, kind):
            model.model_validate(resource)
            count += 1
    assert count == summary.resources
    bundle_model = importlib.import_module("fhir.resources.R4B.bundle").Bundle
    for path in sorted((out / "bundles").iterdir())[:5]:
        bundle = bundle_model.model_validate_json(path.read_text(encoding="utf-8"))
        assert bundle.type == "transaction"
        assert all(e.fullUrl.startswith("urn:uuid:") and e.request.method == "PUT" for e in bundle.entry)


def test_observations_carry_subject_encounter_visit_date_and_project_codes(cohort_50: tuple[Path, CohortSummary]) -> None:
    """Every Observation has subject, encounter and the visit date (levels with the draw's clock time); coded answers use the project system."""
    out, _ = cohort_50
    encounters = {e["id"]: e["period"]["start"] for e in _ndjson(out, "Encounter")}
    codes = Counter()
    for obs in _ndjson(out, "Observation"):
        encounter_id = obs["encounter"]["reference"].split("/", 1)[1]
        assert obs["effectiveDateTime"][:10] == encounters[encounter_id]
        assert len(obs["effectiveDateTime"]) == 10 or obs["code"]["coding"][0]["code"] == "30471-7"
        assert obs["subject"]["reference"].startswith("Patient/")
        coding = obs["code"]["coding"][0]
        codes[(coding["system"], coding["code"])] += 1
        if "valueCodeableConcept" in obs:
            answer = obs["valueCodeableConcept"]["coding"][0]
            assert answer["system"] == EPIDOSE_SYSTEM
            assert answer["code"] in DURATION_CLASSES + EXAM_CLASSES + EEG_RESULTS + ("improved", "stable", "worse")
    for needed in ((LOINC, "29463-7"), (LOINC, "8302-2"), (LOINC, "2160-0"), (LOINC, "30471-7"), (LOINC, "11523-8"), (EPIDOSE_SYSTEM, "seizure-last-6-months")):
        assert codes[needed] > 0, needed
    units = Counter(obs["valueQuantity"]["code"] for obs in _ndjson(out, "Observation") if "valueQuantity" in obs)
    assert units["umol/L"] > 0 and units["mg/dL"] > 0  # creatinine in both units, as real data


def test_orders_chain_by_bounds_period_and_only_the_last_is_active(cohort_50: tuple[Path, CohortSummary]) -> None:
    """Superseded orders end on the next visit day, stopped orders end when stopped; at most one is active."""
    out, _ = cohort_50
    by_patient: dict[str, list[dict]] = {}
    for order in _ndjson(out, "MedicationRequest"):
        by_patient.setdefault(order["subject"]["reference"], []).append(order)
    statuses = Counter()
    for orders in by_patient.values():
        orders.sort(key=lambda o: o["authoredOn"])
        assert sum(o["status"] == "active" for o in orders) <= 1
        for order in orders:
            statuses[order["status"]] += 1
            bounds = order["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
            assert bounds["start"] == order["authoredOn"]
            if order["status"] == "active":
                assert "end" not in bounds and order is orders[-1]
            else:
                assert bounds["end"] > bounds["start"]
    assert statuses["completed"] > 0 and statuses["active"] > 0


def test_physician_is_label_safe_and_its_probabilities_are_recorded(cohort_50: tuple[Path, CohortSummary]) -> None:
    """Each visit records 12 action probabilities summing to 1, zero outside the mask, and the chosen class has mass."""
    out, _ = cohort_50
    visits = [json.loads(line) for line in (out / "truth" / "visits.jsonl").read_text(encoding="utf-8").splitlines()]
    assert visits
    for visit in visits:
        p = visit["action_probabilities"]
        assert len(p) == N_DOSE_CLASSES and sum(p) == pytest.approx(1.0, abs=1e-4)
        assert all(q == 0 for q, ok in zip(p, visit["allowed"], strict=True) if not ok)
        assert visit["allowed"][visit["dose_class"]] and p[visit["dose_class"]] > 0


def test_simulated_runs_match_the_truth_file(cohort_50: tuple[Path, CohortSummary]) -> None:
    """The truth file is keyed by patient id and visit date and holds the true seizure counts of the runs."""
    out, _ = cohort_50
    runs = simulate_cohort(50, 11)
    truth = {(v["patient_id"], v["date"]): v for v in map(json.loads, (out / "truth" / "visits.jsonl").read_text(encoding="utf-8").splitlines())}
    assert len(truth) == sum(len(r.visits) for r in runs)
    for run in runs:
        for visit in run.visits:
            assert truth[(run.child.patient_id, visit.date.isoformat())]["seizure_count"] == visit.seizure_count


def test_cli_pd_option_chooses_the_exposure_response_world(tmp_path: Path) -> None:
    """`epidose cohort --pd fitted` records the fitted profile (EC50 0.7 mg/L) in calibration.json; the
    default is the sourced one (EC50 31.5 mg/L); the same seed gives the same patients under both."""
    from plugin.cli import main

    for profile in ("sourced", "fitted"):
        extra = [] if profile == "sourced" else ["--pd", "fitted"]
        result = CliRunner().invoke(main, ["cohort", "--patients", "4", "--seed", "3", "--out", str(tmp_path / profile), *extra])
        assert result.exit_code == 0, result.output
    sourced = json.loads((tmp_path / "sourced" / "calibration.json").read_text(encoding="utf-8"))
    fitted = json.loads((tmp_path / "fitted" / "calibration.json").read_text(encoding="utf-8"))
    assert (sourced["config"]["pd_profile"], sourced["config"]["ec50_median_mg_l"]) == ("sourced", 31.5)
    assert (fitted["config"]["pd_profile"], fitted["config"]["ec50_median_mg_l"]) == ("fitted", 0.7)
    assert _ndjson(tmp_path / "sourced", "Patient") == _ndjson(tmp_path / "fitted", "Patient")
    bad = CliRunner().invoke(main, ["cohort", "--patients", "4", "--out", str(tmp_path / "bad"), "--pd", "guessed"])
    assert bad.exit_code != 0 and "sourced" in bad.output


def test_a_cohort_without_bundles_writes_the_same_ndjson_and_truth(tmp_path: Path) -> None:
    """``bundles=False`` (the default model's build) leaves out bundles/ and changes no other byte."""
    from training.simulator.cohort import write_cohort

    write_cohort(tmp_path / "with", 12, 4, dialect="mixed")
    write_cohort(tmp_path / "without", 12, 4, dialect="mixed", bundles=False)
    assert not (tmp_path / "without" / "bundles").exists() and any((tmp_path / "with" / "bundles").iterdir())
    files = sorted(p.relative_to(tmp_path / "with") for p in (tmp_path / "with").rglob("*") if p.is_file() and "bundles" not in p.parts)
    assert files == sorted(p.relative_to(tmp_path / "without") for p in (tmp_path / "without").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
