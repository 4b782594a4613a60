"""Golden files: FHIR input → expected timeline, state and problems (tests/golden/fhir_mapping/<case>/).

Each case folder holds ``input.json`` or ``input.ndjson``, ``case.json`` (``as_of``, and why the case
exists) and ``expected.json``. A whole CDS Hooks request as input is mapped from its prefetch, and
its levetiracetam draftOrders are read as proposed doses (``draft_orders``). Regenerate after a reviewed change with
``EPIDOSE_UPDATE_GOLDEN=1 pytest tests/fhir_mapping/test_golden.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from plugin.cli.map import map_to_json

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "fhir_mapping"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def run_case(folder: Path) -> dict[str, Any]:
    case = json.loads((folder / "case.json").read_text())
    as_of = date.fromisoformat(case["as_of"]) if case.get("as_of") else None
    source = next(folder.glob("input.*"))
    document, _ = map_to_json((source,), as_of=as_of)
    for problem in document["problems"]:  # file paths differ between machines
        problem["resource"] = problem["resource"].replace(str(folder), "<case>")
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name: str) -> None:
    """The mapped document equals the reviewed expected JSON for this input."""
    folder = GOLDEN / name
    actual = run_case(folder)
    expected_file = folder / "expected.json"
    if os.environ.get("EPIDOSE_UPDATE_GOLDEN") == "1":
        expected_file.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(expected_file.read_text())
    assert actual["timelines"] == expected["timelines"]
    assert actual["problems"] == expected["problems"]
    assert actual == expected


def test_golden_cases_exist() -> None:
    """The official-example, sandbox, simulator and EHR-chart cases are all present."""
    assert {"hl7_body_weight_lbs", "hl7_contained_medication", "sandbox_order_sign", "simulator_history", "ehr_chart"} <= set(CASES)
