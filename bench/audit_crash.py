"""The audit guarantee under a crash: every acknowledged card has its audit row, even when the worker dies right after answering.

Starts ``epidose serve`` (1 gevent worker, auth off, a given model) on 127.0.0.1, sends distinct
patient-view bodies (``bench/bodies.py``) one at a time, and right after reading each answer kills the
worker with SIGKILL (gunicorn starts a new one); then counts, in the SQLite store, the audit rows of
the card uuids the client received (as any reader sees them: a store opening the database moves in the
rows the killed workers' journals hold). Also reports the in-process CPU cost of the audit write on the
request (the journal line) and per row with the batched commits, against a commit before the answer.

    python bench/audit_crash.py --model MODEL_FOLDER [--kills 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the service did not become ready")


def main() -> int:
    from bodies import benchmark_requests, distinct_bodies

    from training.artifact.registry import ModelRegistry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    requests = [r for r in benchmark_requests(args.kills * 2) if r["hook"] == "patient-view"]
    bodies = distinct_bodies(requests)
    data = Path(tempfile.mkdtemp(prefix="epidose-crash-"))
    registry = ModelRegistry(data / "models")
    registry.promote(registry.add(args.model))
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_AUTH": "off", "EPIDOSE_DATA_DIR": str(data), "EPIDOSE_LOG_LEVEL": "ERROR",
                "EPIDOSE_RESPONSE_CACHE_SIZE": "0", "PYTHONPATH": str(ROOT)})
    server = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/cds-services/epidose-patient-view"
    received: list[str] = []
    kills = 0
    try:
        for body in bodies:
            if kills >= args.kills:
                break
            _ready(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 120)
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                cards = json.loads(answer.read())["cards"]
            for worker in _workers(server.pid):  # at once: the answer is acknowledged, the worker dies
                os.kill(worker, signal.SIGKILL)
                kills += 1
            received.extend(card["uuid"] for card in cards)
            time.sleep(0.5)  # gunicorn notices and starts a new worker
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    from plugin.store import AuditRecord, Store
    from training.database import SqliteDatabase

    with sqlite3.connect(data / "epidose.sqlite3") as connection:
        in_table = {row[0] for row in connection.execute("SELECT card_uuid FROM audit")}
    # What any reader sees: the rows the killed workers' journals hold are moved in when a store opens.
    store = Store(SqliteDatabase(data / "epidose.sqlite3"), b"unused")
    missing = [u for u in received if not store.known_card(u)]
    print(f"{kills} workers killed right after answering; {len(received)} cards received, "
          f"{len(received) - len(missing)} with their audit row, {len(missing)} without "
          f"({len([u for u in received if u in in_table])} in the table when the server stopped: each killed worker's "
          "journal is moved in by the worker started after it; the rest by the store opened here)")

    def records(prefix: str, hashed: str) -> list[AuditRecord]:
        return [AuditRecord(card_uuid=f"{prefix}{index}", served_at="2026-01-01T00:00:00Z", service="s",
                            hook_instance="h", patient_hash=hashed, model_version="m", input_fingerprint="f" * 64,
                            indicator="info", recommended_mg_per_day=1000.0, compared_mg_per_day=None,
                            raw_model_mg_per_day=None, safety_adjustments=("a",)) for index in range(500)]

    for label, journal in (("committed before the answer (no journal)", False), ("journal line before the answer", True)):
        timing = Store(SqliteDatabase(data / f"timing-{journal}.sqlite3"), b"bench")
        if not journal:
            timing.journal = None
        times = []
        whole = time.process_time()
        for record in records("u", timing.patient_hash("p")):
            started = time.process_time()
            timing.add_audit(record)
            times.append(time.process_time() - started)
        timing.settle()
        whole = time.process_time() - whole
        print(f"audit write, {label}: {statistics.median(times) * 1e3:.3f} ms CPU on the request (median of 500); "
              f"{whole / 500 * 1e3:.3f} ms CPU per row with the batches' commits (whole process)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
