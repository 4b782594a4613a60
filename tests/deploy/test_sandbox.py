"""``epidose sandbox`` as an integrator runs it: a real local FHIR server loaded with simulated patients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from plugin.cli import main
from tests.deploy.conftest import recent_patients, registry_with


def _post(base: str, resource: dict) -> dict:
    response = requests.post(base, json=resource, headers={"Content-Type": "application/fhir+json"}, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def loaded_server(fhir_server: str, small_cohort: Path, small_model: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str], str]]:
    """The FHIR server with three treated simulated children and one bare Patient; the model registered."""
    treated: list[str] = []
    for patient_id in recent_patients(small_cohort):
        bundle_file = small_cohort / "bundles" / f"{patient_id}.json"
        bundle = json.loads(bundle_file.read_text(encoding="utf-8"))
        has_lev = any(e["resource"]["resourceType"] == "MedicationRequest" for e in bundle["entry"])
        if has_lev and len(treated) < 3:
            _post(fhir_server, bundle)
            treated.append(patient_id)
    assert len(treated) == 3, "the cohort should hold treated children seen in the last two months"
    empty = _post(f"{fhir_server}/Patient", {"resourceType": "Patient", "gender": "male"})["id"]
    # An epilepsy diagnosis puts the bare patient in scope (without one, and never on levetiracetam, no card).
    _post(f"{fhir_server}/Condition", {"resourceType": "Condition", "subject": {"reference": f"Patient/{empty}"},
                                       "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84757009"}]}})
    data_dir = tmp_path_factory.mktemp("sandbox-data")
    registry_with(small_model, data_dir)
    mp = pytest.MonkeyPatch()
    mp.setenv("EPIDOSE_DATA_DIR", str(data_dir))
    mp.setenv("EPIDOSE_BUILD_DEFAULT_MODEL", "off")
    yield fhir_server, treated, empty
    mp.undo()


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sandbox", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_patient_view_card(loaded_server: tuple[str, list[str], str]) -> None:
    """patient-view on a simulated child prints a dose card with the daily dose, the instruction and the rails."""
    base, treated, _ = loaded_server
    code, output = _run(["--fhir-server", base, "--patient", treated[0]])
    assert code == 0, output
    assert "epidose-patient-view: 1 card(s)" in output
    assert "levetiracetam" in output.lower() and "mg/day" in output
    assert "Rails:" in output and "suggestion:" in output


def test_order_sign_with_a_dose_from_flags(loaded_server: tuple[str, list[str], str]) -> None:
    """order-sign with a 3 g/day draft made from flags is flagged critical above the child's label maximum."""
    base, treated, _ = loaded_server
    code, output = _run(["--fhir-server", base, "--patient", treated[1], "--hook", "order-sign", "--dose", "3000"])
    assert code == 0, output
    assert "epidose-order-sign: 1 card(s)" in output
    assert "[CRITICAL]" in output


def test_order_sign_from_a_draft_file(loaded_server: tuple[str, list[str], str], tmp_path: Path) -> None:
    """A draft order read from a file (a sandbox-shaped MedicationRequest) is checked and answered as JSON."""
    base, treated, _ = loaded_server
    draft = {
        "resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
        "category": {"coding": [{"code": "outpatient"}]},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                  "code": "311289", "display": "levetiracetam 500 MG Oral Tablet"}]},
        "subject": {"reference": f"Patient/{treated[2]}"},
        "dosageInstruction": [{"timing": {"code": {"coding": [{"code": "BID"}]}},
                               "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "{pill}"}}]}],
    }
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(draft), encoding="utf-8")
    code, output = _run(["--fhir-server", base, "--patient", treated[2], "--hook", "order-sign",
                         "--draft-order", str(path), "--json"])
    assert code == 0, output
    cards = json.loads(output)["cards"]
    assert len(cards) == 1 and cards[0]["indicator"] in ("info", "warning", "critical")
    assert "1000 mg/day" in cards[0]["detail"]  # the draft read back: 500 mg tablet twice daily


def test_patient_with_no_data_gets_the_missing_data_card(loaded_server: tuple[str, list[str], str]) -> None:
    """A patient with no birth date and no weight gets a card naming exactly what is missing, not a dose."""
    base, _, empty = loaded_server
    code, output = _run(["--fhir-server", base, "--patient", empty])
    assert code == 0, output
    assert "birthDate" in output and "weight" in output
    assert "suggestion:" not in output
