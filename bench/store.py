"""The raw resource store on a 1,000,000-resource pull: NDJSON (today's) against Parquet, by engine.

Generates the pulls with ``bench/pull_data.py`` (simulated children as a server returns them: a first
pull of ``--resources`` and a second of 10% of it, 40% re-sent, 30% new versions, 30% new), then for
every store runs each phase in a fresh process, so its time and peak memory are its own:

- ``first``: ingest the first pull into an empty store (``add_all`` of the pulled list, deduplicated)
  and set the watermark; ``second``: open that store and ingest the second pull (deduplicated against
  every stored version); ``latest``: the newest version of every resource (what training reads);
  ``training``: ``latest`` and the visit table built from it (``training.retrain.load_visit_table``),
  once per store, and once more with the collector paused during the mapping as well.

Time is wall-clock and CPU (user + system of every thread of the phase's process, the reading of the
pulled file left out): on a machine shared with other jobs CPU time is the steadier figure, and the
engines' threads show in it. Peak RSS is the process's high-water mark (VmHWM); "pulled list" is its RSS after reading the pull,
before the store is touched: the store's own share is the difference. Parquet engines share the layout
and the Python-side conversion of resources to rows; they differ in deduplication and in choosing the
newest versions (pyarrow compute, DuckDB SQL over the files, Polars). Every store must give the same
newest versions and the same visit table (checked by digest).

    python bench/store.py [--resources 1000000] [--rounds 3] [--stores ndjson,pyarrow,duckdb,polars]

Data lives in a temporary folder (``--work``, default under /tmp) deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench.pull_data import read_pull, write_pulls  # noqa: E402
from training.retrain.parquet_store import KEY_COLUMNS, ParquetResourceStore, paused_gc  # noqa: E402
from training.retrain.resources import ResourceStore  # noqa: E402


class NdjsonPausedGcStore(ResourceStore):
    """Today's NDJSON store with the collector paused while it reads and writes, as the Parquet store
    does: separates what the format gains from what pausing the collector gains."""

    def latest(self) -> list[dict[str, Any]]:
        with paused_gc():
            return super().latest()

    def _index(self) -> set[tuple[str, str, str]]:
        with paused_gc():
            return super()._index()

    def add_all(self, resources: Any) -> dict[str, int]:
        with paused_gc():
            return super().add_all(resources)


class DuckDBStore(ParquetResourceStore):
    """The Parquet store with DuckDB's SQL over the part files for deduplication and newest versions."""

    def _not_stored(self, keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        import duckdb

        files = [str(p) for p in self.files()]
        if not keys or not files:
            return keys
        batch = _key_batch(keys)
        connection = duckdb.connect()
        connection.register("batch", batch)
        positions = connection.execute(
            "SELECT position FROM batch ANTI JOIN read_parquet(?) AS stored USING (resource_type, id, version_key) "
            "ORDER BY position", [files]).fetchnumpy()["position"]
        return [keys[int(p)] for p in positions]

    def newest_rows(self) -> pa.Array:
        import duckdb

        files = [str(p) for p in self.files()]
        if not files:
            return pa.array([], pa.int64())
        offsets, start = [], 0
        for part, path in zip(self.manifest()["parts"], files, strict=True):
            offsets.append((path, start))
            start += int(part["rows"])
        connection = duckdb.connect()
        connection.register("offsets", pa.table({"filename": [o[0] for o in offsets], "start": [o[1] for o in offsets]}))
        rows = connection.execute(
            "SELECT o.start + s.file_row_number AS row FROM read_parquet(?, filename = true, file_row_number = true) s "
            "JOIN offsets o USING (filename) QUALIFY row_number() OVER (PARTITION BY s.resource_type, s.id ORDER BY "
            "s.version_number DESC, s.last_updated_us DESC NULLS LAST, row DESC) = 1",
            [files]).fetchnumpy()["row"]
        return pa.array(rows.astype(np.int64))


class PolarsStore(ParquetResourceStore):
    """The Parquet store with Polars (lazy scans of the part files) for deduplication and newest versions."""

    def _not_stored(self, keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        import polars as pl

        files = [str(p) for p in self.files()]
        if not keys or not files:
            return keys
        batch = pl.DataFrame({"resource_type": [k[0] for k in keys], "id": [k[1] for k in keys],
                              "version_key": [k[2] for k in keys], "position": range(len(keys))})
        stored = pl.scan_parquet(files).select(list(KEY_COLUMNS))
        fresh = batch.lazy().join(stored, on=list(KEY_COLUMNS), how="anti").sort("position").collect()
        return [keys[p] for p in fresh["position"].to_list()]

    def newest_rows(self) -> pa.Array:
        import polars as pl

        files = [str(p) for p in self.files()]
        if not files:
            return pa.array([], pa.int64())
        newest = (pl.scan_parquet(files).select(["resource_type", "id", "version_number", "last_updated_us"])
                  .with_row_index("row")
                  .sort(["version_number", "last_updated_us", "row"], descending=True, nulls_last=True)
                  .unique(subset=["resource_type", "id"], keep="first")
                  .collect())
        return pa.array(newest["row"].to_numpy().astype(np.int64))


def _key_batch(keys: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table({"resource_type": [k[0] for k in keys], "id": [k[1] for k in keys],
                     "version_key": [k[2] for k in keys], "position": pa.array(range(len(keys)), pa.int64())})


STORES: dict[str, type[ResourceStore]] = {
    "ndjson": ResourceStore, "ndjson-nogc": NdjsonPausedGcStore, "pyarrow": ParquetResourceStore, "duckdb": DuckDBStore, "polars": PolarsStore,
}


def _installed(kind: str) -> bool:
    """Whether the engine a store needs is installed (DuckDB and Polars are benchmark-only)."""
    import importlib.util

    if kind in ("duckdb", "polars") and importlib.util.find_spec(kind) is None:
        print(f"skipping {kind}: not installed (pip install {kind})")
        return False
    return True


def _memory() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}  # MiB


def newest_digest(resources: list[dict[str, Any]]) -> str:
    """What the newest versions are, whatever their order."""
    lines = sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in resources)
    return hashlib.sha256(b"\n".join(lines)).hexdigest()[:16]


def table_digest(table: Any) -> str:
    """The visit table's content, rows ordered by (patient, visit) whatever the order of the resources."""
    order = sorted(range(len(table)), key=lambda i: (table.patient_ids[table.patient[i]], int(table.step[i])))
    digest = hashlib.sha256()
    for i in order:
        nxt = int(table.next_index[i])
        digest.update(json.dumps([table.patient_ids[table.patient[i]], int(table.step[i]), int(table.actions[i]),
                                  float(table.rewards[i]), float(table.dones[i]), nxt >= 0]).encode())
        digest.update(np.nan_to_num(table.values[i], nan=-1e300).tobytes())
        digest.update(table.observed[i].tobytes() + table.masks[i].tobytes())
    return digest.hexdigest()[:16]


def phase(kind: str, name: str, store_dir: Path, pulls: Path) -> dict[str, Any]:
    """One phase in this process (see the module docstring); returns its figures."""
    store_class = STORES[kind]
    figures: dict[str, Any] = {}
    cpu_started = time.process_time()
    if name in ("first", "second"):
        started = time.perf_counter()
        pulled = read_pull(pulls / f"{name}.ndjson")
        figures["read_seconds"] = time.perf_counter() - started
        figures["read_cpu_seconds"] = time.process_time() - cpu_started
        figures["pulled_list_mib"] = _memory()["VmRSS"]
        started = time.perf_counter()
        store = store_class(store_dir)
        new = store.add_all(pulled)
        newest = max(r["meta"]["lastUpdated"] for r in pulled)
        store.write_state({"watermark": newest, "source": "bench"})
        figures["seconds"] = time.perf_counter() - started
        figures["new"] = sum(new.values())
        figures["stored"] = store.count()
    elif name == "latest":
        started = time.perf_counter()
        resources = store_class(store_dir).latest()
        figures["seconds"] = time.perf_counter() - started
        figures["resources"] = len(resources)
    elif name == "job":
        from training.retrain.job import store_visit_table

        started = time.perf_counter()
        table = store_visit_table(store_class(store_dir))
        figures["seconds"], figures["latest_seconds"] = time.perf_counter() - started, 0.0
        figures["visits"], figures["patients"] = len(table), len(table.patient_ids)
    elif name in ("training", "training-paused-gc"):
        from training.retrain.job import load_visit_table

        started = time.perf_counter()
        store = store_class(store_dir)
        resources = store.latest()
        figures["latest_seconds"] = time.perf_counter() - started
        with paused_gc() if name == "training-paused-gc" else contextlib.nullcontext():
            table = load_visit_table(resources)
        figures["seconds"] = time.perf_counter() - started
        figures["visits"], figures["patients"] = len(table), len(table.patient_ids)
    figures["peak_mib"] = _memory()["VmHWM"]
    figures["cpu_seconds"] = time.process_time() - cpu_started - figures.pop("read_cpu_seconds", 0.0)
    # The digests are computed after the figures: what they allocate is not the store's.
    if name == "latest":
        figures["digest"] = newest_digest(resources)
    elif name.startswith("training") or name == "job":
        figures["digest"] = table_digest(table)
    return figures


def run_phase(kind: str, name: str, store_dir: Path, pulls: Path) -> dict[str, Any]:
    """The phase in a fresh Python process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    output = subprocess.run(
        [sys.executable, __file__, "--phase", kind, name, str(store_dir), str(pulls)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="ndjson,ndjson-nogc,pyarrow,duckdb,polars")
    parser.add_argument("--training", default="ndjson,pyarrow", help="stores whose visit table is rebuilt (once)")
    parser.add_argument("--paused-gc-training", default="pyarrow",
                        help="store whose visit table is also rebuilt with the collector paused during the mapping")
    parser.add_argument("--job", default="", help="stores whose visit table is also built as the job builds it "
                        "(training.retrain.job.store_visit_table: by patient)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the data (deleted at the end)")
    parser.add_argument("--phase", nargs=4, metavar=("STORE", "PHASE", "DIR", "PULLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        kind, name, store_dir, pulls = args.phase
        print(json.dumps(phase(kind, name, Path(store_dir), Path(pulls))))
        return

    stores = [kind for kind in args.stores.split(",") if _installed(kind)]
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.work))
    try:
        started = time.perf_counter()
        first, second = write_pulls(work / "pulls", args.resources, args.seed)
        print(f"generated {first:,} + {second:,} resources ({disk_mib(work / 'pulls'):.0f} MiB NDJSON) "
              f"in {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {kind: {} for kind in stores}
        disk: dict[str, list[float]] = {kind: [] for kind in stores}
        for round_number in range(args.rounds):
            for kind in (stores if round_number % 2 == 0 else stores[::-1]):  # interleaved, order alternating
                store_dir = work / f"store-{kind}"
                shutil.rmtree(store_dir, ignore_errors=True)
                for name in ("first", "second", "latest"):
                    figures = run_phase(kind, name, store_dir, work / "pulls")
                    results[kind].setdefault(name, []).append(figures)
                    print(f"round {round_number + 1} {kind:8s} {name:7s} {json.dumps(figures)}", flush=True)
                disk[kind].append(disk_mib(store_dir))
        training: dict[str, dict[str, Any]] = {}
        for kind in args.training.split(","):
            if kind in stores:
                training[kind] = run_phase(kind, "training", work / f"store-{kind}", work / "pulls")
                print(f"{kind:8s} training {json.dumps(training[kind])}", flush=True)
        for kind in args.job.split(",") if args.job else []:
            if kind in stores:
                training[f"{kind}, the job's rebuild (store_visit_table)"] = figures = run_phase(
                    kind, "job", work / f"store-{kind}", work / "pulls")
                print(f"{kind:8s} job rebuild {json.dumps(figures)}", flush=True)
        if args.paused_gc_training in stores:
            kind = args.paused_gc_training
            training[f"{kind}, collector paused while mapping"] = figures = run_phase(
                kind, "training-paused-gc", work / f"store-{kind}", work / "pulls")
            print(f"{kind:8s} training, collector paused {json.dumps(figures)}", flush=True)
        report(results, disk, training, stores)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, dict[str, list[dict[str, Any]]]], disk: dict[str, list[float]],
           training: dict[str, dict[str, Any]], stores: list[str]) -> None:
    def median(kind: str, name: str, key: str) -> float:
        return statistics.median(float(f[key]) for f in results[kind][name])

    digests = {kind: {f["digest"] for f in results[kind]["latest"]} for kind in stores}
    print(f"\nnewest-version digests: {digests}")
    if training:
        print(f"visit-table digests: { {k: v['digest'] for k, v in training.items()} }")
    base = stores[0]

    def timed(kind: str, name: str) -> str:
        return f"{median(kind, name, 'seconds'):.1f} ({median(kind, name, 'cpu_seconds'):.1f})"

    print("\n| store | first pull s wall (CPU) | second pull s | newest versions s | peak MiB first (pulled list) "
          "| peak MiB second | peak MiB newest | disk MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind in stores:
        print(f"| {kind} | {timed(kind, 'first')} | {timed(kind, 'second')} | {timed(kind, 'latest')} "
              f"| {median(kind, 'first', 'peak_mib'):.0f} ({median(kind, 'first', 'pulled_list_mib'):.0f}) "
              f"| {median(kind, 'second', 'peak_mib'):.0f} | {median(kind, 'latest', 'peak_mib'):.0f} "
              f"| {statistics.median(disk[kind]):.0f} |")
    print(f"\nratios against {base}, wall (CPU); below 1 is faster:")
    for kind in stores[1:]:
        ratios = [f"{name} {median(kind, name, 'seconds') / median(base, name, 'seconds'):.2f}x "
                  f"({median(kind, name, 'cpu_seconds') / median(base, name, 'cpu_seconds'):.2f}x)"
                  for name in ("first", "second", "latest")]
        print(f"  {kind}: {', '.join(ratios)}, disk {statistics.median(disk[kind]) / statistics.median(disk[base]):.2f}x")
    for kind, figures in training.items():
        print(f"  training set from {kind}: {figures['seconds']:.1f} s, CPU {figures['cpu_seconds']:.1f} s "
              f"(newest versions {figures['latest_seconds']:.1f} s), "
              f"peak {figures['peak_mib']:.0f} MiB, {figures['visits']} visits of {figures['patients']} patients")


if __name__ == "__main__":
    main()
