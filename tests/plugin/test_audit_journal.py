"""An acknowledged card has its audit row, though the row reaches SQLite after the answer.

The rows of a response are in the worker's journal before the answer is sent; these tests kill the
process holding them (SIGKILL, before its mover commits anything) and find every row afterwards, and
read the rows of a live process that has not committed them yet.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from plugin.store import AuditRecord, Store
from tests.plugin.fixtures import hook_request, patient_resources
from tests.support.fhir_server import free_port
from tests.support.service import wait_until_healthy
from training.artifact.registry import ModelRegistry
from training.database import SqliteDatabase

ROOT = Path(__file__).resolve().parents[2]


def record(card: str) -> AuditRecord:
    return AuditRecord(card_uuid=card, served_at="2026-12-01T10:00:00Z", service="epidose-patient-view",
                       hook_instance="h1", patient_hash="ab" * 32, model_version="m1", input_fingerprint="f" * 16,
                       indicator="info", recommended_mg_per_day=1000.0, compared_mg_per_day=None,
                       raw_model_mg_per_day=None, safety_adjustments=("renal cap",))


def table_count(path: Path) -> int:
    """Rows in the audit table itself, read past the store (nothing settled first)."""
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM audit").fetchone()[0])


_KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from plugin.store import Store
from tests.plugin.test_audit_journal import record
store = Store(Path(sys.argv[1]), b"key", audit_flush_seconds=60.0)
store.add_audits([record("c1"), record("c2")])
store.add_audits([record("c3")])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_rows_of_a_killed_process_are_moved_in_by_the_next_store(tmp_path: Path) -> None:
    path = tmp_path / "epidose.sqlite3"
    Store(path, b"key")  # the schema
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path), str(ROOT)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    assert table_count(path) == 0  # killed before its mover's first batch: the rows were only in its journal
    store = Store(SqliteDatabase(path), b"key")
    assert table_count(path) == 3 and all(store.known_card(c) for c in ("c1", "c2", "c3"))
    assert not list(store.journal.folder.glob("*.jsonl"))  # type: ignore[union-attr]


def test_rows_a_live_process_has_not_committed_are_read_by_another(tmp_path: Path) -> None:
    path = tmp_path / "epidose.sqlite3"
    serving = Store(SqliteDatabase(path), b"key", audit_flush_seconds=60.0)
    serving.add_audits([record("c1")])
    other = Store(SqliteDatabase(path), b"key", audit_flush_seconds=60.0)
    assert table_count(path) == 0
    assert other.known_card("c1", "epidose-patient-view") and not other.known_card("c2")
    serving.journal.flush()  # type: ignore[union-attr]  # its own commit after the other's insert: no second row
    assert other.audit_count() == 1
    assert not list(serving.journal.folder.glob("*.jsonl"))  # type: ignore[union-attr]


def test_the_mover_commits_by_itself_and_leaves_no_journal(tmp_path: Path) -> None:
    path = tmp_path / "epidose.sqlite3"
    store = Store(SqliteDatabase(path), b"key", audit_flush_seconds=0.01)
    for index in range(30):
        store.add_audits([record(f"c{index}")])
    deadline = time.monotonic() + 10
    while table_count(path) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert table_count(path) == 30
    store.journal.close()  # type: ignore[union-attr]
    assert not list(store.journal.folder.glob("*.jsonl"))  # type: ignore[union-attr]


@pytest.mark.slow
def test_cards_answered_by_a_gunicorn_worker_killed_after_each_answer_are_all_audited(
        tmp_path: Path, trained_model: Path) -> None:
    """``epidose serve`` (1 gevent worker); after each answer is read the worker gets SIGKILL and gunicorn
    starts another; every card uuid the client received has its audit row."""
    data = tmp_path / "data"
    registry = ModelRegistry(data / "models")
    registry.promote(registry.add(trained_model))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPIDOSE_")}
    env.update({"EPIDOSE_DATA_DIR": str(data), "EPIDOSE_BUILD_DEFAULT_MODEL": "off", "EPIDOSE_AUTH": "off",
                "EPIDOSE_RESPONSE_CACHE_SIZE": "0", "EPIDOSE_LOG_LEVEL": "ERROR"})
    process = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--port", str(port), "--workers", "1"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    received: list[str] = []
    try:
        wait_until_healthy(process, base)
        for index in range(4):
            response = requests.post(base + "/cds-services/epidose-patient-view", timeout=30,
                                     json=hook_request("patient-view", patient_resources(f"p{index}"), f"p{index}"))
            assert response.status_code == 200, response.text
            cards = response.json()["cards"]
            assert cards
            received.extend(card["uuid"] for card in cards)
            workers = [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
            assert len(workers) == 1
            os.kill(workers[0], signal.SIGKILL)
            wait_until_healthy(process, base)
    finally:
        process.terminate()
        process.communicate(timeout=20)
    store = Store(SqliteDatabase(data / "epidose.sqlite3"), b"unused")
    assert [card for card in received if not store.known_card(card)] == []


def test_a_journal_written_before_the_decision_column_is_moved_in(tmp_path: Path) -> None:
    """Rows a dead worker of the previous version journalled (12 columns) land with an empty decision."""
    path = tmp_path / "epidose.sqlite3"
    Store(path, b"key").journal.close()  # type: ignore[union-attr]
    folder = path.parent / f".{path.name}.audit-journal"
    old_row = ["c-old", "2026-12-01T10:00:00Z", "s", "h", "p" * 64, "m0", "f" * 64, "info", 500.0, None, None, "[]"]
    (folder / "4242-0123456789ab.jsonl").write_text(json.dumps([old_row]) + "\n")
    store = Store(SqliteDatabase(path), b"key")
    row = store.audit("c-old")
    assert row is not None and row["decision"] is None and row["recommended_mg_per_day"] == 500.0
    assert not list(folder.glob("*.jsonl"))
