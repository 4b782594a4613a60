"""The note extractor against the clinical acceptance charts (tests/clinical/charts), which record each
child's seizure history twice: as the project's coded Observations, and as Conditions, encounter
reasons and progress notes written by another hand. Each chart is mapped without its coded seizure
Observations, and every item read from text is compared with the coded value at the same visit.

Run from the repository root:  python bench/notes_charts.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_mapping.build import build_timeline  # noqa: E402
from fhir_mapping.codes import EPIDOSE_SYSTEM  # noqa: E402
from fhir_mapping.inputs import collect_resources  # noqa: E402

ITEMS = ("seizure_since_last_visit", "seizure_count_since_last_visit", "seizure_duration_class",
         "seizure_last_3_months", "seizure_last_6_months", "behaviour_adverse_effect")


def coded_report(resource: dict[str, Any]) -> bool:
    """A project seizure or adverse-effect Observation (what the charts record besides the notes)."""
    codings = resource.get("code", {}).get("coding", []) if resource["resourceType"] == "Observation" else []
    return any(c.get("system") == EPIDOSE_SYSTEM and str(c.get("code", "")).startswith(("seizure", "behaviour")) for c in codings)


def main() -> None:
    agree: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    wrong: list[tuple[str, str, str, Any, Any]] = []
    charts = sorted((ROOT / "tests" / "clinical" / "charts").glob("*.json"))
    for path in charts:
        chart = json.loads(path.read_text(encoding="utf-8"))
        patient = chart["context"]["patientId"]
        resources, _ = collect_resources(chart["prefetch"])
        from_records = build_timeline([r for r in resources if not coded_report(r)], patient)
        coded = {v.date: v for v in build_timeline([r for r in resources if r["resourceType"] != "DocumentReference"], patient).visits}
        problems.update(p.kind.value for p in build_timeline(resources, patient).problems)
        for visit in from_records.visits:
            other = coded.get(visit.date)
            for item in ITEMS:
                found, expected = getattr(visit, item), getattr(other, item) if other else None
                source = visit.provenance.get(item)
                if found is None or expected is None or source is None or source.kind != "text":
                    continue
                compared[item] += 1
                agree[item] += found == expected
                if found != expected:
                    wrong.append((path.stem, visit.date.isoformat(), item, found, expected))
    print(f"{len(charts)} charts; problems when everything is mapped: {dict(problems)}")
    for item in ITEMS:
        print(f"{item:34} read from text at {compared[item]:3d} visits with a coded value: {agree[item]} agree")
    for row in wrong:
        print("disagrees:", *row)


if __name__ == "__main__":
    main()
