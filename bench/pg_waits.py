"""Where one hook call's database time goes on PostgreSQL: round trip, pool, statement, commit flush.

A hook call without authentication writes its audit rows in one autocommitted INSERT. This times, one
call at a time on a real PostgreSQL (tests/support/postgres.py, fsync on) and on SQLite, interleaved:

- ``SELECT 1`` on a bare psycopg connection: the network round trip and the server's dispatch;
- ``Database.query("SELECT 1")``: the same through the service's pool (checkout, release, row mapping);
- ``Store.add_audits`` of one card: the audit INSERT as the service runs it, with
  ``synchronous_commit`` on (the default: the commit returns once its WAL is flushed to disk) and off
  (it returns before the flush; a PostgreSQL crash can lose the last ~0.6 s of commits, never corrupt);
- the same INSERT on SQLite (WAL, ``synchronous=NORMAL``: no flush per commit either).

The difference between ``on`` and ``off`` is the flush. Medians over ``--calls`` calls per kind.

    python bench/pg_waits.py [--calls 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugin.store import AuditRecord, Store  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402
from training.database import PostgresDatabase, SqliteDatabase  # noqa: E402


def record() -> AuditRecord:
    return AuditRecord(card_uuid=str(uuid.uuid4()), served_at="2026-12-01T10:00:00Z", service="epidose-patient-view",
                       hook_instance=str(uuid.uuid4()), patient_hash="ab" * 32, model_version="m1",
                       input_fingerprint="f" * 16, indicator="info", recommended_mg_per_day=1000.0,
                       compared_mg_per_day=None, raw_model_mg_per_day=1250.0, safety_adjustments=())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    import psycopg

    with running_postgres(fsync=True) as server, tempfile.TemporaryDirectory() as tmp:
        url = server.create_database()
        unflushed = url + ("&" if "?" in url else "?") + "options=-c%20synchronous_commit%3Doff"
        bare = psycopg.connect(url, autocommit=True)
        pooled = PostgresDatabase(url)
        flushed_store = Store(pooled, b"k")
        unflushed_store = Store(PostgresDatabase(unflushed), b"k")
        sqlite_store = Store(SqliteDatabase(Path(tmp) / "epidose.sqlite3"), b"k")
        kinds: dict[str, Callable[[], object]] = {
            "round trip (bare SELECT 1)": lambda: bare.execute("SELECT 1").fetchall(),
            "through the pool (SELECT 1)": lambda: pooled.query("SELECT 1"),
            "audit INSERT, synchronous_commit on": lambda: flushed_store.add_audits([record()]),
            "audit INSERT, synchronous_commit off": lambda: unflushed_store.add_audits([record()]),
            "audit INSERT, SQLite (WAL, NORMAL)": lambda: sqlite_store.add_audits([record()]),
        }
        for call in kinds.values():  # connect, migrate, warm
            for _ in range(20):
                call()
        times: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.calls):
            for name, call in kinds.items():
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)
        bare.close()
    print(f"{args.calls} calls per kind, interleaved, one at a time; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPU(s)")
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name, value in medians.items():
        ninety = sorted(times[name])[int(0.9 * (len(times[name]) - 1))] * 1000
        print(f"  {name:<40} median {value:6.3f} ms   p90 {ninety:6.3f} ms")
    flush = medians["audit INSERT, synchronous_commit on"] - medians["audit INSERT, synchronous_commit off"]
    pool = medians["through the pool (SELECT 1)"] - medians["round trip (bare SELECT 1)"]
    print(f"commit flush {flush:.3f} ms; pool and wrapper {pool:.3f} ms; round trip "
          f"{medians['round trip (bare SELECT 1)']:.3f} ms per call")


if __name__ == "__main__":
    main()
