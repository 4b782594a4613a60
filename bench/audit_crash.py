"""The audit guarantee under a crash: every acknowledged card has its audit row, even when the worker dies right after answering.

Starts ``epidose serve`` (1 gevent worker, auth off, a given model) on 127.0.0.1, sends distinct
patient-view bodies (``bench/bodies.py``) one at a time, and right after reading each answer kills the
worker with SIGKILL (gunicorn starts a new one); then counts, in the SQLite store, the audit rows of
the card uuids the client received. Also reports the in-process CPU cost of one audit insert.

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
    with sqlite3.connect(data / "epidose.sqlite3") as connection:
        found = {row[0] for row in connection.execute("SELECT card_uuid FROM audit")}
    missing = [u for u in received if u not in found]
    print(f"{kills} workers killed right after answering; {len(received)} cards received, "
          f"{len(received) - len(missing)} with their audit row, {len(missing)} without")

    from plugin.store import AuditRecord, Store

    store = Store(data / "timing.sqlite3", b"bench")
    times = []
    for index in range(500):
        record = AuditRecord(card_uuid=f"u{index}", served_at="2026-01-01T00:00:00Z", service="s", hook_instance="h",
                             patient_hash=store.patient_hash("p"), model_version="m", input_fingerprint="f" * 64,
                             indicator="info", recommended_mg_per_day=1000.0, compared_mg_per_day=None,
                             raw_model_mg_per_day=None, safety_adjustments=("a",))
        started = time.process_time()
        store.add_audit(record)
        times.append(time.process_time() - started)
    print(f"one audit insert (WAL, synchronous=NORMAL, committed before the answer): "
          f"{statistics.median(times) * 1e3:.3f} ms CPU (median of 500)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
