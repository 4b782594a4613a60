"""Distinct hook request bodies for the service benchmarks and the card-equivalence test.

Two sources, every body different (checked by :func:`distinct_bodies`):

* the hand-written clinical charts of ``tests/clinical/charts`` (dates moved to today), and
* children of a simulated cohort (``training.simulator``, follow-up ending last month so that today
  finds current data), each split into the patient-view prefetch keys of ``hooks/patient-view.json``
  the way a FHIR server would answer those queries (weight, height, seizures, labs, conditions,
  medications), in the ``epidose`` and the ``ehr`` dialects (notes and Conditions instead of codes).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The patient-view prefetch queries' codes (hooks/patient-view.json), one key per query.
_PREFETCH_CODES = {
    "weight": {"29463-7", "3141-9"},
    "height": {"8302-2"},
    "labs": {"2160-0", "30471-7", "1742-6", "1920-8", "6690-2", "718-7", "777-3", "11523-8", "50384-7"},
}
_SEIZURE_SYSTEM = "https://epidose.org/fhir/CodeSystem/epidose"


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r} for r in resources]}


def _prefetch_key(resource: dict[str, Any]) -> str | None:
    kind = resource.get("resourceType")
    if kind == "MedicationRequest":
        return "medications"
    if kind == "Condition":
        return "conditions"
    if kind != "Observation":
        return None
    for coding in (resource.get("code") or {}).get("coding") or []:
        if coding.get("system") == _SEIZURE_SYSTEM:
            return "seizures"
        for key, codes in _PREFETCH_CODES.items():
            if coding.get("code") in codes:
                return key
    return None


def child_request(resources: list[dict[str, Any]], hook_instance: str) -> dict[str, Any]:
    """A patient-view request whose prefetch holds one simulated child's chart, split by query."""
    patient = next(r for r in resources if r.get("resourceType") == "Patient")
    keys: dict[str, list[dict[str, Any]]] = {k: [] for k in ("weight", "height", "seizures", "labs", "conditions",
                                                             "medications")}
    for resource in resources:
        key = _prefetch_key(resource)
        if key is not None:
            keys[key].append(resource)
    prefetch: dict[str, Any] = {"patient": patient}
    prefetch.update({key: _searchset(found) for key, found in keys.items()})
    return {"hook": "patient-view", "hookInstance": hook_instance,
            "context": {"userId": "Practitioner/bench", "patientId": patient["id"]}, "prefetch": prefetch}


def simulated_requests(n_children: int, seed: int, dialect: str = "epidose") -> list[dict[str, Any]]:
    from fhir_mapping.inputs import collect_resources
    from training.simulator.cohort import write_cohort
    from training.simulator.config import DEFAULT_CONFIG, ending_on

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_cohort(out, n_children, seed=seed, dialect=dialect,
                     config=ending_on(DEFAULT_CONFIG, date.today() - timedelta(days=30)))
        requests = []
        for index, path in enumerate(sorted((out / "bundles").glob("*.json"))):
            resources, _ = collect_resources(json.loads(path.read_text()))
            requests.append(child_request(resources, f"sim-{dialect}-{seed}-{index}"))
    return requests


def chart_requests() -> list[dict[str, Any]]:
    from tests.clinical.test_charts import load_chart

    requests = []
    for path in sorted((ROOT / "tests" / "clinical" / "charts").glob("*.json")):
        request, _ = load_chart(path)
        requests.append(request)
    return requests


def service_path(request: dict[str, Any]) -> str:
    return f"/cds-services/epidose-{request['hook']}"


def distinct_bodies(requests: list[dict[str, Any]]) -> list[bytes]:
    """Each request as its JSON body; raises if two bodies are the same."""
    bodies = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode("utf-8") for r in requests]
    digests = {hashlib.sha256(b).digest() for b in bodies}
    if len(digests) != len(bodies):
        raise ValueError(f"{len(bodies) - len(digests)} repeated bodies among {len(bodies)}")
    return bodies


def benchmark_requests(n_children: int = 120, seed: int = 5) -> list[dict[str, Any]]:
    """Charts + simulated children in both dialects (half each), all distinct."""
    half = max(1, n_children // 2)
    return chart_requests() + simulated_requests(half, seed) + simulated_requests(n_children - half, seed + 1, "ehr")
