"""Golden files: FHIR input → expected timeline, state and problems (tests/golden/fhir_mapping/<case>/).

Each case folder holds ``input.json`` or ``input.ndjson``, ``case.json`` (``as_of``, and why the case
exists) and ``expected.json``. A CDS Hooks request as input is mapped from its prefetch, and its
draftOrders are read as the proposed dose. Regenerate after a reviewed change with
``EPIDOSE_UPDATE_GOLDEN=1 pytest tests/fhir_mapping/test_golden.py`` and read the diff.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhir_mapping.cli import map_to_json
from fhir_mapping.inputs import draft_orders
from fhir_mapping.medication import NormalisedDose, normalise_medication_request

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "fhir_mapping"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def run_case(folder: Path) -> dict[str, Any]:
    case = json.loads((folder / "case.json").read_text())
    as_of = date.fromisoformat(case["as_of"]) if case.get("as_of") else None
    source = next(folder.glob("input.*"))
    document: dict[str, Any]
    if source.suffix == ".json" and "hook" in (request := json.loads(source.read_text())):
        document, _ = map_to_json((request["prefetch"],), as_of=as_of)
        drafts, problems = draft_orders(request["context"])
        document["draft_orders"] = []
        for resource in drafts:
            read = normalise_medication_request(resource)
            document["draft_orders"].append(
                {"mg_per_day": read.mg_per_day, "formulation": read.formulation, "doses_per_day": read.doses_per_day, "product_code": read.product_code}
                if isinstance(read, NormalisedDose) else [p.to_json() for p in read]
            )
        document["problems"] += [p.to_json() for p in problems]
    else:
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
    """The official-example, sandbox and simulator cases are all present."""
    assert {"hl7_body_weight_lbs", "hl7_contained_medication", "sandbox_order_sign", "simulator_history"} <= set(CASES)
