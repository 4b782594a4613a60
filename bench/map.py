"""Benchmark: FHIR → timelines → state vectors for a 1,000-resource Bundle (``epidose map``).

Prints median timings of (a) plain ``json.loads`` of the Bundle text (the floor any mapping pays),
(b) the in-process mapping path (json.loads + collect_resources + build_timelines + state_matrix),
(c) the service's per-request path on a 120-resource single-patient prefetch with ``as_of``, and
(d) the ``epidose map`` command end to end (process start-up and imports included), next to the
cost of starting Python and importing the CLI alone.

Run from the repository root:  python bench/map.py
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_mapping.build import build_timeline, build_timelines  # noqa: E402
from fhir_mapping.features import state_matrix  # noqa: E402
from fhir_mapping.inputs import collect_resources  # noqa: E402
from tests.fhir_mapping import factory  # noqa: E402

RESOURCES = 1000
PREFETCH_RESOURCES = 120


def cohort_bundle(size: int) -> dict:
    """A Bundle of exactly ``size`` simulator-shaped resources (patients of 10 visits each)."""
    resources: list[dict] = []
    patient = 0
    while len(resources) < size:
        resources += factory.history(f"b{patient}", visits=10, doses=(0.0, 250.0, 500.0, 750.0, 750.0, 1000.0, 1000.0, 1000.0, 750.0, 500.0))
        patient += 1
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources[:size]]}


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """Median wall time in ms."""
    return timed(run, repeats)[0]


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process, in ms (CPU time is robust to other load)."""
    run()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - start) * 1000.0)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    bundle = cohort_bundle(RESOURCES)
    text = json.dumps(bundle)
    prefetch_resources = factory.history("one", visits=11)[:PREFETCH_RESOURCES]
    prefetch_text = json.dumps({"patient": prefetch_resources[0], "everything": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in prefetch_resources[1:]]}})

    def full_map() -> None:
        resources, _ = collect_resources(json.loads(text))
        for timeline in build_timelines(resources):
            state_matrix(timeline)

    def prefetch_map() -> None:
        resources, _ = collect_resources(json.loads(prefetch_text))
        state_matrix(build_timeline(resources, "one", as_of=date(2023, 1, 1)))

    loads, loads_cpu = timed(lambda: json.loads(text), 30)
    mapped, mapped_cpu = timed(full_map, 30)
    prefetch, prefetch_cpu = timed(prefetch_map, 100)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle.json"
        path.write_text(text)
        command = [sys.executable, "-m", "plugin.cli", "map", str(path), "--indent", "0"]

        def cli() -> None:
            subprocess.run(command, check=True, capture_output=True, cwd=ROOT)

        cli_ms = median_ms(cli, 5)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu_ms = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000.0
        bare = [sys.executable, "-c", "import sys, click; from plugin.cli.map import register; g = click.Group(); register(g); g(sys.argv[1:])", "map", str(path), "--indent", "0"]
        bare_ms = median_ms(lambda: subprocess.run(bare, check=True, capture_output=True, cwd=ROOT), 5)
        imports_ms = median_ms(lambda: subprocess.run([sys.executable, "-c", "import plugin.cli"], check=True, capture_output=True, cwd=ROOT), 5)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"resources: {RESOURCES} ({len(text) / 1024:.0f} KiB JSON), patients: {len(build_timelines(collect_resources(bundle)[0]))}")
    print("                                                wall ms    CPU ms  (medians)")
    print(f"json.loads baseline (30 runs):               {loads:8.2f}  {loads_cpu:8.2f}")
    print(f"map in process (loads+collect+build+state):  {mapped:8.2f}  {mapped_cpu:8.2f}  = {mapped_cpu / loads_cpu:.1f}x json.loads CPU")
    print(f"service path, {PREFETCH_RESOURCES}-resource prefetch, as_of:    {prefetch:8.2f}  {prefetch_cpu:8.2f}  (100 runs)")
    print(f"epidose map end to end (process start-up):   {cli_ms:8.2f} ms (median of 5)")
    print(f"epidose map CPU time (user+system, one run): {cli_cpu_ms:8.2f} ms (insensitive to other load)")
    print(f"map command in a bare click group:           {bare_ms:8.2f} ms (median of 5; without the other commands' imports)")
    print(f"  interpreter start + CLI imports alone:  {imports_ms:8.2f} ms (python -c 'import plugin.cli', median of 5)")


if __name__ == "__main__":
    main()
