"""Benchmark of reading an EHR-shaped chart for a hook call: prefetched, fetched, notes as Binaries.

Writes ``epidose cohort --dialect ehr`` children, loads them into a local SEKMET FHIR server on
127.0.0.1 (twice: notes inline, and notes kept as Binaries named by url), and times, per child, the
data path of a patient-view call up to the timeline the decision is made on:

- **prefetched**: the EHR sent every key (the templates evaluated beforehand): no request;
- **fallback**: nothing prefetched: every key fetched from ``fhirServer`` (``plugin.gather``);
- **binaries**: every key prefetched, each note's text a Binary fetched by ``plugin.note_binaries``.

Interleaved rounds (so that other jobs weigh on all alike); medians and ratios to *prefetched*.

    python bench/prefetch.py [--patients 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from fhir_mapping.build import build_timeline  # noqa: E402
from fhir_mapping.inputs import collect_resources  # noqa: E402
from hooks import service_definitions  # noqa: E402
from plugin.gather import FhirFetcher  # noqa: E402
from plugin.note_binaries import fetch_note_binaries  # noqa: E402
from tests.plugin.test_chart_prefetch import _with_notes_as_binaries  # noqa: E402
from tests.support.fhir_server import running_fhir_server  # noqa: E402
from training.simulator.cohort import write_cohort  # noqa: E402
from training.simulator.config import DEFAULT_CONFIG, ending_on  # noqa: E402

TIMEOUT_SECONDS = 2.0
BUDGET_SECONDS = 5.0  # generous: the figure is the time taken, not whether it fits the default budget


def _load(base: str, bundle: dict[str, Any]) -> None:
    response = requests.post(base, json=bundle, headers={"Content-Type": "application/fhir+json"}, timeout=60)
    response.raise_for_status()


def _timeline(values: dict[str, Any], patient: str) -> Any:
    resources, _ = collect_resources(values)
    return build_timeline(resources, patient, as_of=date.today())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    templates = next(d for d in service_definitions() if d["id"] == "epidose-patient-view")["prefetch"]
    fetcher = FhirFetcher(TIMEOUT_SECONDS, BUDGET_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        cohort = Path(tmp) / "cohort"
        write_cohort(cohort, args.patients, seed=5, config=ending_on(DEFAULT_CONFIG, date.today() - timedelta(days=7)),
                     dialect="ehr")
        bundles = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((cohort / "bundles").glob("*.json"))}
        with running_fhir_server(Path(tmp) / "inline") as inline, running_fhir_server(Path(tmp) / "binary") as binary:
            for bundle in bundles.values():
                _load(inline, bundle)
                _load(binary, _with_notes_as_binaries(bundle))
            patients = list(bundles)
            notes = sum(1 for b in bundles.values() for e in b["entry"] if e["resource"]["resourceType"] == "DocumentReference")
            prefetched = {p: fetcher.gather(templates, None, {"patientId": p}, inline, None).values for p in patients}
            by_url = {p: fetcher.gather(templates, None, {"patientId": p}, binary, None).values for p in patients}
            times: dict[str, list[float]] = {"prefetched": [], "fallback": [], "binaries": []}
            same = 0
            for _ in range(args.rounds):
                for patient in patients:
                    started = time.perf_counter()
                    reference = _timeline(dict(prefetched[patient]), patient)
                    times["prefetched"].append(time.perf_counter() - started)

                    started = time.perf_counter()
                    gathered = fetcher.gather(templates, {}, {"patientId": patient}, inline, None)
                    _timeline(gathered.values, patient)
                    times["fallback"].append(time.perf_counter() - started)

                    started = time.perf_counter()
                    gathered = fetcher.gather(templates, dict(by_url[patient]), {"patientId": patient}, binary, None)
                    fetch_note_binaries(fetcher, gathered, binary, None, time.monotonic() + BUDGET_SECONDS)
                    from_binaries = _timeline(gathered.values, patient)
                    times["binaries"].append(time.perf_counter() - started)
                    same += [v.provenance for v in from_binaries.visits] == [v.provenance for v in reference.visits]
    base = statistics.median(times["prefetched"])
    print(f"{len(patients)} ehr-dialect children, {notes} notes, {args.rounds} rounds")
    print("| data path | median ms | p90 ms | × prefetched |")
    print("|---|---|---|---|")
    for name, values in times.items():
        values = sorted(values)
        median = statistics.median(values)
        print(f"| {name} | {median * 1000:.1f} | {values[int(0.9 * (len(values) - 1))] * 1000:.1f} | {median / base:.1f} |")
    print(f"timelines from Binaries equal to those from inline notes (provenance per visit): {same}/{len(times['binaries'])}")


if __name__ == "__main__":
    main()
