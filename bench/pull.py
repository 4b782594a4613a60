"""Pull throughput from a real local FHIR server, in resources per second.

Starts SEKMET on 127.0.0.1 (the test server, ``.venv-fhir``), loads a synthetic cohort, and times:

1. the first incremental pull by search (Encounters, then every affected patient's resources);
2. a second pull after one more visit per patient (per-type ``_lastUpdated`` marks in batch Bundles);
3. the same first pull by Bulk Data ``$export``.

Run from the repository root: ``python bench/pull.py [--patients 200] [--page-size 200]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fhir_server import running_fhir_server, sekmet_available  # noqa: E402
from tests.training.retrain.data import load, synthetic_cohort  # noqa: E402
from training.retrain.client import FhirClient, RetryPolicy  # noqa: E402
from training.retrain.pull import pull_bulk, pull_from_server  # noqa: E402
from training.retrain.resources import ResourceStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not sekmet_available():
        raise SystemExit("the FHIR test server is not installed: run scripts/install.sh dev")

    cohort = synthetic_cohort(args.patients, args.seed)
    first = [r for visits in cohort.values() for _, resources in visits[:-1] for r in resources]
    last = [r for visits in cohort.values() for _, resources in visits[-1:] for r in resources]
    work = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        with running_fhir_server(work / "fhir") as base:
            started = time.perf_counter()
            for start in range(0, len(first), 2000):
                load(base, first[start : start + 2000])
            print(f"loaded {len(first)} resources ({args.patients} patients) in {time.perf_counter() - started:.1f} s")

            client = FhirClient(base, page_size=args.page_size, retry=RetryPolicy(backoff_max=1.0))
            store = ResourceStore(work / "store")
            result = pull_from_server(client, store)
            report("search, first pull", result.fetched, result.seconds, result.requests)

            load(base, last)
            requests_before = client.requests_made
            result = pull_from_server(client, store)
            report("search, incremental (+1 visit each)", result.fetched, result.seconds,
                   client.requests_made - requests_before)
            if result.new != len(last):
                raise SystemExit(f"incremental pull stored {result.new} resources, expected {len(last)}")

            bulk = pull_bulk(FhirClient(base, retry=RetryPolicy(backoff_max=1.0)), ResourceStore(work / "bulk"))
            report("bulk $export, everything", bulk.fetched, bulk.seconds, bulk.requests)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(what: str, resources: int, seconds: float, requests: int) -> None:
    print(f"{what:38s} {resources:7d} resources  {seconds:6.2f} s  {resources / seconds:8.0f} resources/s  "
          f"{requests:4d} requests")


if __name__ == "__main__":
    main()
