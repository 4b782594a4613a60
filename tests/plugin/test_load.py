"""``epidose load`` against the real local FHIR server: what loaded, what failed and why."""

from __future__ import annotations

import json
from pathlib import Path

import requests
from click.testing import CliRunner

from plugin.cli import main
from tests.support.fhir_server import free_port
from training.simulator.cohort import write_cohort


def _load(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["load", "--no-progress", *args], catch_exceptions=False)
    return result.exit_code, result.output


def _count(base: str, kind: str) -> int:
    response = requests.get(f"{base}/{kind}", params={"_summary": "count"}, timeout=30)
    response.raise_for_status()
    return int(response.json()["total"])


def test_cohort_bundles_load_completely(fresh_fhir_server: str, tmp_path: Path) -> None:
    """Every resource of a simulated cohort's transaction Bundles reaches the server, and the count says so."""
    summary = write_cohort(tmp_path / "cohort", 4, seed=3)
    code, output = _load("--fhir-server", fresh_fhir_server, str(tmp_path / "cohort" / "bundles"))
    assert code == 0, output
    assert f"{summary.resources} resource(s) loaded" in output and "0 failed" in output
    assert _count(fresh_fhir_server, "Patient") == 4
    encounters = len((tmp_path / "cohort" / "ndjson" / "Encounter.ndjson").read_text(encoding="utf-8").splitlines())
    assert _count(fresh_fhir_server, "Encounter") == encounters


def test_failures_are_counted_with_the_reason_and_the_rest_loads(fhir_server: str, tmp_path: Path) -> None:
    """A line that is not JSON and a resource the server rejects are counted with their reasons; the good ones load."""
    lines = [
        {"resourceType": "Patient", "id": "load-ok-1", "gender": "female"},
        {"resourceType": "Observation", "id": "load-bad-1", "status": "final"},  # no code: invalid FHIR
        {"resourceType": "Patient", "id": "load-ok-2", "gender": "male"},
    ]
    data = tmp_path / "Patient.ndjson"
    data.write_text("\n".join([json.dumps(lines[0]), json.dumps(lines[1]), "{not json", json.dumps(lines[2])]) + "\n",
                    encoding="utf-8")
    code, output = _load("--fhir-server", fhir_server, str(data))
    assert code == 1, output
    assert "2 resource(s) loaded" in output and "2 failed" in output
    assert "Patient.ndjson line 3: not JSON" in output
    assert "400" in output and "Observation.code" in output  # the server's own reason, not just a status
    assert all(requests.get(f"{fhir_server}/Patient/{pid}", timeout=30).status_code == 200 for pid in ("load-ok-1", "load-ok-2"))
    assert requests.get(f"{fhir_server}/Observation/load-bad-1", timeout=30).status_code == 404


def test_a_bundle_that_is_not_a_transaction_is_refused_by_name(fhir_server: str, tmp_path: Path) -> None:
    """A collection Bundle cannot be posted to a server base: counted as a failure, naming the file."""
    (tmp_path / "collection.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection"}),
                                              encoding="utf-8")
    code, output = _load("--fhir-server", fhir_server, str(tmp_path / "collection.json"))
    assert code == 1
    assert "collection.json: not a transaction or batch Bundle" in output


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    """No traceback, the URL named, nothing claimed as loaded."""
    data = tmp_path / "Patient.ndjson"
    data.write_text(json.dumps({"resourceType": "Patient", "id": "x"}) + "\n", encoding="utf-8")
    base = f"http://127.0.0.1:{free_port()}/fhir"
    code, output = _load("--fhir-server", base, str(data))
    assert code == 1
    assert f"the FHIR server at {base} could not be reached" in output and "Traceback" not in output
