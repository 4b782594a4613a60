"""What `epidose cohort` tells a person: judged calibration only where it can mean something, sources they can follow."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from plugin.cli import main


def _cohort(tmp_path: Path, patients: int) -> tuple[str, str]:
    out = tmp_path / f"c{patients}"
    result = CliRunner().invoke(main, ["cohort", "--patients", str(patients), "--seed", "1", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output, (out / "calibration.md").read_text(encoding="utf-8")


def test_a_small_cohort_is_not_scored_against_the_study(tmp_path: Path) -> None:
    output, markdown = _cohort(tmp_path, 50)
    assert "checks passed" not in output and not re.search(r"\b\d/6\b", output)
    assert "50 children are too few" in output and "245" in output
    assert "Not judged" in markdown


def test_the_study_size_is_scored_and_no_output_names_work_items_or_absent_files(tmp_path: Path) -> None:
    output, markdown = _cohort(tmp_path, 245)
    assert re.search(r"\d of 6 checks passed", output)
    assert "Not judged" not in markdown and "- PASS:" in markdown
    for text in (output, markdown):
        assert not re.search(r"issue #?\d", text, flags=re.I)
        assert "domain.md" not in text


def test_simulated_patients_have_synthetic_names(tmp_path: Path) -> None:
    """A FHIR viewer shows a name marked synthetic, of the child's gender, the same name on every run."""
    import json

    from training.simulator.names import GIVEN

    _cohort(tmp_path, 6)
    patients = [json.loads(line) for line in (tmp_path / "c6" / "ndjson" / "Patient.ndjson").read_text().splitlines()]
    again = CliRunner().invoke(main, ["cohort", "--patients", "6", "--seed", "1", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0
    repeated = (tmp_path / "again" / "ndjson" / "Patient.ndjson").read_text().splitlines()
    for patient, line in zip(patients, repeated, strict=True):
        name = patient["name"][0]
        assert name["text"].endswith("(synthetic)") and name["family"]
        assert name["given"][0] in GIVEN[patient["gender"]]
        assert json.loads(line)["name"] == patient["name"]
