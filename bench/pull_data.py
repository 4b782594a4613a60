"""Realistic pulled FHIR at scale: simulated children as a FHIR server returns them, for store benchmarks.

Writes two pulls as NDJSON (one resource per line, what ``training.pull`` hands the store):

- ``first.ndjson``: the first ``--resources`` resources (default 1,000,000) of simulated children in the
  ``mixed`` dialect (project Observations, EHR Conditions, notes, questionnaires), each with the
  ``meta.versionId`` and increasing ``meta.lastUpdated`` a server writes;
- ``second.ndjson``: the next pull, 10% of the first's size: re-sent resources already stored (40%),
  new versions of stored resources (30%: ``versionId`` 2, a later ``lastUpdated``, amended status) and
  resources never seen (30%: the following children).

It simulates children one at a time and streams them to disk, so memory stays small; about a minute per
million resources on one core (46–77 s here). Run: ``python bench/pull_data.py OUT [--resources 1000000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.simulator.config import DEFAULT_CONFIG  # noqa: E402
from training.simulator.fhir import child_resources  # noqa: E402
from training.simulator.patients import draw_cohort  # noqa: E402
from training.simulator.physician import SimulatedPhysician  # noqa: E402
from training.simulator.simulate import run_child  # noqa: E402

# Resources per simulated child in the mixed dialect (measured: ~72); children are drawn with margin.
RESOURCES_PER_CHILD = 60
FIRST_UPDATE = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def stamp(index: int) -> str:
    """The server's lastUpdated of the index-th write: one per millisecond, written as SEKMET does."""
    return (FIRST_UPDATE + timedelta(milliseconds=index)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulated_resources(total: int, seed: int) -> Iterator[dict[str, Any]]:
    """``total`` resources of simulated children, child after child, with server metadata."""
    children = draw_cohort(total // RESOURCES_PER_CHILD + 1, seed, DEFAULT_CONFIG)
    written = 0
    for child in children:
        run = run_child(child, DEFAULT_CONFIG, SimulatedPhysician(child.physician, DEFAULT_CONFIG))
        for resource in child_resources(run, dialect="mixed"):
            resource["meta"] = {"versionId": "1", "lastUpdated": stamp(written)}
            yield resource
            written += 1
            if written == total:
                return
    raise RuntimeError(f"drew too few children for {total} resources; raise RESOURCES_PER_CHILD's margin")


def updated(resource: dict[str, Any], index: int) -> dict[str, Any]:
    """A second version of a stored resource, as the server returns it after an edit."""
    version = dict(resource, meta={"versionId": "2", "lastUpdated": stamp(index)})
    if "status" in version and version["resourceType"] == "Observation":
        version["status"] = "amended"
    return version


def write_pulls(out: Path, first_size: int, seed: int) -> tuple[int, int]:
    """Write ``first.ndjson`` and ``second.ndjson`` into ``out``; returns their sizes in resources."""
    out.mkdir(parents=True, exist_ok=True)
    second_size = first_size // 10
    resent, changed = second_size * 4 // 10, second_size * 3 // 10
    fresh = second_size - resent - changed
    chooser = random.Random(seed)
    resent_at = set(chooser.sample(range(first_size), resent + changed))
    changed_at = set(chooser.sample(sorted(resent_at), changed))
    kept: list[tuple[int, dict[str, Any]]] = []
    stream = simulated_resources(first_size + fresh, seed)
    with (out / "first.ndjson").open("wb") as first:
        for index in range(first_size):
            resource = next(stream)
            first.write(orjson.dumps(resource) + b"\n")
            if index in resent_at:
                kept.append((index, resource))
    later = first_size + fresh  # the edits happened after every first-pull write and the new resources
    with (out / "second.ndjson").open("wb") as second:
        for n, (index, resource) in enumerate(kept):
            second.write(orjson.dumps(updated(resource, later + n) if index in changed_at else resource) + b"\n")
        for resource in stream:
            second.write(orjson.dumps(resource) + b"\n")
    return first_size, second_size


def read_pull(path: Path) -> list[dict[str, Any]]:
    """A pull written by :func:`write_pulls`, as the list the store is handed."""
    from training.retrain.parquet_store import paused_gc

    with path.open("rb") as handle, paused_gc():
        return [orjson.loads(line) for line in handle]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    first, second = write_pulls(args.out, args.resources, args.seed)
    size = sum(p.stat().st_size for p in args.out.glob("*.ndjson"))
    print(f"wrote {first} + {second} resources ({size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
