"""SQLite store for card audit records, feedback and the shared JWT replay cache.

Patients appear only as keyed hashes (HMAC-SHA256 with a secret from settings or a generated key
file), so the store can be exported without re-identifying anyone. One connection per thread; WAL
mode lets several gunicorn workers write.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from plugin.private_files import private_dir, private_file
from plugin.settings import Settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    card_uuid TEXT PRIMARY KEY,
    served_at TEXT NOT NULL,
    service TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    patient_hash TEXT NOT NULL,
    model_version TEXT NOT NULL,
    input_fingerprint TEXT NOT NULL,
    indicator TEXT NOT NULL,
    recommended_mg_per_day REAL,
    compared_mg_per_day REAL,
    raw_model_mg_per_day REAL,
    safety_adjustments TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    card_uuid TEXT NOT NULL,
    service TEXT NOT NULL,
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    outcome_timestamp TEXT,
    accepted_suggestions TEXT NOT NULL,
    override_reason_system TEXT,
    override_reason_code TEXT,
    override_comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback(card_uuid);
CREATE TABLE IF NOT EXISTS jti_seen (key TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""


@dataclass(frozen=True)
class AuditRecord:
    """What was served on one card (no identifiers: the patient is a keyed hash)."""

    card_uuid: str
    served_at: str
    service: str
    hook_instance: str
    patient_hash: str
    model_version: str
    input_fingerprint: str
    indicator: str
    recommended_mg_per_day: float | None
    compared_mg_per_day: float | None
    raw_model_mg_per_day: float | None
    safety_adjustments: tuple[str, ...]


def load_hash_key(settings: Settings) -> bytes:
    """The patient-hash key: from settings, else a generated file readable by the owner only."""
    if settings.hash_key:
        return settings.hash_key.encode("utf-8")
    path = settings.hash_key_file
    if path.exists():
        return path.read_bytes().strip()
    private_dir(path.parent)
    key = secrets.token_hex(32).encode("ascii")
    # Write a private temporary file, then link it into place: atomic, and a worker that loses the
    # race to create the key reads the winner's complete key instead of a half-written one.
    descriptor, temporary = tempfile.mkstemp(prefix=".hash-key-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        os.chmod(temporary, 0o600)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes().strip()
    finally:
        os.unlink(temporary)
    return key


class Store:
    """Audit and feedback records in one SQLite file."""

    def __init__(self, path: Path, hash_key: bytes) -> None:
        self.path = path
        self._hash_key = hash_key
        self._local = threading.local()
        private_dir(path.parent)
        # SQLite gives its -wal and -shm files the database file's mode, so 0600 here covers all three.
        private_file(path)
        with self._connect() as connection:
            connection.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def patient_hash(self, patient_id: str) -> str:
        """Keyed hash of a patient id (HMAC-SHA256, hex)."""
        return hmac.new(self._hash_key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def add_audit(self, record: AuditRecord) -> None:
        self._connect().execute(
            "INSERT OR REPLACE INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (record.card_uuid, record.served_at, record.service, record.hook_instance, record.patient_hash,
             record.model_version, record.input_fingerprint, record.indicator, record.recommended_mg_per_day,
             record.compared_mg_per_day, record.raw_model_mg_per_day, json.dumps(list(record.safety_adjustments))),
        )

    def audit(self, card_uuid: str) -> dict[str, Any] | None:
        cursor = self._connect().execute("SELECT * FROM audit WHERE card_uuid = ?", (card_uuid,))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cursor.description], row, strict=True))

    def known_card(self, card_uuid: str, service: str | None = None) -> bool:
        """Whether this store served the card (through ``service``, when given)."""
        if service is None:
            row = self._connect().execute("SELECT 1 FROM audit WHERE card_uuid = ?", (card_uuid,)).fetchone()
        else:
            row = self._connect().execute("SELECT 1 FROM audit WHERE card_uuid = ? AND service = ?",
                                          (card_uuid, service)).fetchone()
        return row is not None

    def add_feedback(self, service: str, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store validated feedback items, each card and outcome once; returns the items newly stored.

        CDS Hooks lets a client report a card more than once; a repeat of the same outcome adds nothing
        to what is known, so it is not stored again (the caller counts it). A different outcome for the
        same card (accepted, then overridden) is stored.
        """
        received = _now()
        stored = []
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")  # one writer at a time across workers: no duplicate slips in
        try:
            for item in items:
                reason = item.get("overrideReason") or {}
                coding = reason.get("reason") or {}
                cursor = connection.execute(
                    "INSERT INTO feedback (card_uuid, service, received_at, outcome, outcome_timestamp, "
                    "accepted_suggestions, override_reason_system, override_reason_code, override_comment) "
                    "SELECT ?,?,?,?,?,?,?,?,? WHERE NOT EXISTS "
                    "(SELECT 1 FROM feedback WHERE card_uuid = ? AND service = ? AND outcome = ?)",
                    (item["card"], service, received, item["outcome"], item.get("outcomeTimestamp"),
                     json.dumps([s.get("id") for s in item.get("acceptedSuggestions") or []]),
                     coding.get("system"), coding.get("code"), reason.get("userComment"),
                     item["card"], service, item["outcome"]))
                if cursor.rowcount == 1:
                    stored.append(item)
            connection.execute("COMMIT")
        except Exception:
            connection.execute("ROLLBACK")
            raise
        return stored

    def feedback_rows(self) -> list[dict[str, Any]]:
        """Feedback joined to the audit record of its card."""
        cursor = self._connect().execute(
            "SELECT f.card_uuid, f.service, f.received_at, f.outcome, f.outcome_timestamp, f.accepted_suggestions, "
            "f.override_reason_system, f.override_reason_code, f.override_comment, a.served_at, a.hook_instance, "
            "a.patient_hash, a.model_version, a.input_fingerprint, a.indicator, a.recommended_mg_per_day, "
            "a.compared_mg_per_day, a.raw_model_mg_per_day, a.safety_adjustments "
            "FROM feedback f LEFT JOIN audit a ON a.card_uuid = f.card_uuid ORDER BY f.id")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def export_feedback_csv(self, out: IO[str]) -> int:
        rows = self.feedback_rows()
        columns = ["card_uuid", "service", "received_at", "outcome", "outcome_timestamp", "accepted_suggestions",
                   "override_reason_system", "override_reason_code", "override_comment", "served_at",
                   "hook_instance", "patient_hash", "model_version", "input_fingerprint", "indicator",
                   "recommended_mg_per_day", "compared_mg_per_day", "raw_model_mg_per_day", "safety_adjustments"]
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return len(rows)

    def first_jti_use(self, key: str, expires_at: float) -> bool:
        """Record a token id across workers; False when it was already used and has not expired."""
        connection = self._connect()
        now = time.time()
        connection.execute("DELETE FROM jti_seen WHERE key = ? AND expires_at < ?", (key, now))
        try:
            connection.execute("INSERT INTO jti_seen VALUES (?, ?)", (key, expires_at))
        except sqlite3.IntegrityError:
            return False
        if secrets.randbelow(200) == 0:
            connection.execute("DELETE FROM jti_seen WHERE expires_at < ?", (now,))
        return True

    def writable(self) -> bool:
        try:
            self._connect().execute("CREATE TABLE IF NOT EXISTS readiness_probe (x INTEGER)")
            self._connect().execute("DELETE FROM readiness_probe")
            return True
        except sqlite3.Error:
            return False


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
