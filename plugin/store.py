"""Card audit records, feedback and the JWT replay cache shared by every worker (and host).

Patients appear only as keyed hashes (HMAC-SHA256 with a secret from settings or a generated key
file), so the store can be exported without re-identifying anyone. The records live in the database
of :mod:`training.database`: an SQLite file by default, PostgreSQL when several hosts share them.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from plugin.audit import DecisionRecord
from plugin.audit_journal import FLUSH_SECONDS, AuditJournal
from plugin.settings import Settings
from training.database import Database, DatabaseUnavailable, SqliteDatabase, open_database
from training.private_files import atomic_write, private_dir

log = logging.getLogger(__name__)

_AUDIT_INSERT = ("INSERT INTO audit (card_uuid, served_at, service, hook_instance, patient_hash, model_version, "
                 "input_fingerprint, indicator, recommended_mg_per_day, compared_mg_per_day, raw_model_mg_per_day, "
                 "safety_adjustments, decision) VALUES ")
_AUDIT_ROW = "(?,?,?,?,?,?,?,?,?,?,?,?,?)"
_AUDIT_CONFLICT = " ON CONFLICT (card_uuid) DO NOTHING"

@dataclass(frozen=True)
class AuditRecord:
    """What was served on one card (no identifiers: the patient is a keyed hash).

    The columns up to ``safety_adjustments`` are the ones every version of the service wrote;
    ``decision`` is what each step of the decision decided (:class:`plugin.audit.DecisionRecord`,
    stored as JSON; None for rows written before it existed).
    """

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
    decision: DecisionRecord | None = None

    @classmethod
    def of(cls, decision: DecisionRecord, *, served_at: str, service: str, hook_instance: str,
           patient_hash: str) -> AuditRecord:
        """The row of one served card: the call's fields and the decision's."""
        return cls(card_uuid=decision.card_uuid, served_at=served_at, service=service, hook_instance=hook_instance,
                   patient_hash=patient_hash, model_version=decision.model_version,
                   input_fingerprint=decision.input_fingerprint, indicator=decision.indicator,
                   recommended_mg_per_day=decision.recommended_mg_per_day,
                   compared_mg_per_day=decision.compared_mg_per_day,
                   raw_model_mg_per_day=decision.raw_model_mg_per_day,
                   safety_adjustments=tuple(decision.safety_adjustments), decision=decision)


def load_hash_key(settings: Settings) -> bytes:
    """The patient-hash key: from settings, else a generated file readable by the owner only."""
    if settings.hash_key:
        return settings.hash_key.encode("utf-8")
    path = settings.hash_key_file
    if path.exists():
        return path.read_bytes().strip()
    private_dir(path.parent)
    key = secrets.token_hex(32).encode("ascii")
    # Created only if absent: a worker that loses the race reads the winner's complete key.
    return key if atomic_write(path, key, replace=False) else path.read_bytes().strip()


class Store:
    """Audit and feedback records in the shared-state database."""

    def __init__(self, database: Database | Path, hash_key: bytes, *, audit_flush_seconds: float = FLUSH_SECONDS) -> None:
        self.database = database if isinstance(database, Database) else SqliteDatabase(Path(database))
        self._hash_key = hash_key
        # SQLite: a response's audit rows go to this process's journal before the answer, and into the
        # file in batches after it (plugin.audit_journal). PostgreSQL, shared by hosts whose journals
        # could not be read by one another: each response's rows are committed before its answer.
        self.journal: AuditJournal | None = None
        try:
            self.database.migrate()
            if isinstance(self.database, SqliteDatabase):
                self.journal = AuditJournal(self.database.path, _AUDIT_INSERT + _AUDIT_ROW + _AUDIT_CONFLICT,
                                            self.database.connect, flush_seconds=audit_flush_seconds)
                self.journal.recover()
        except DatabaseUnavailable:
            # Start anyway so the process can answer /healthz and recover by itself; every call that
            # would serve or store a record answers 503 until the database is back (see /readyz).
            log.error("database %s is unavailable at start: cards and feedback are refused (503) until it answers",
                      self.database.describe())

    def patient_hash(self, patient_id: str) -> str:
        """Keyed hash of a patient id (HMAC-SHA256, hex)."""
        return hmac.new(self._hash_key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def add_audit(self, record: AuditRecord) -> None:
        self.add_audits([record])

    def add_audits(self, records: Sequence[AuditRecord]) -> None:
        """The audit records of one response in one statement, so all are written or none (a card is
        served only once they are); one round trip to the database per response."""
        if not records:
            return
        rows = [(r.card_uuid, r.served_at, r.service, r.hook_instance, r.patient_hash, r.model_version,
                 r.input_fingerprint, r.indicator, r.recommended_mg_per_day, r.compared_mg_per_day,
                 r.raw_model_mg_per_day, json.dumps(list(r.safety_adjustments)),
                 None if r.decision is None else _decision_text(r.decision)) for r in records]
        if self.journal is not None:
            _check_audit_rows(rows)  # before the answer: a journalled row the table refuses could never be moved in
            try:
                self.journal.append(rows)
            except OSError as error:
                log.error("audit journal %s could not be written: %s", self.journal.folder, type(error).__name__)
                raise DatabaseUnavailable("the audit journal could not be written; nothing of this call was stored") from None
            return
        # Only placeholders are joined into the statement; every value is a bound parameter.
        statement = _AUDIT_INSERT + ", ".join([_AUDIT_ROW] * len(rows)) + _AUDIT_CONFLICT
        self.database.execute(statement, [value for row in rows for value in row])

    def settle(self) -> None:
        """Every audit row acknowledged so far, by any process on this database, readable in the table."""
        if self.journal is not None:
            try:
                self.journal.settle()
            except (sqlite3.OperationalError, OSError) as error:
                log.error("audit journal %s could not be settled: %s", self.journal.folder, type(error).__name__)
                raise DatabaseUnavailable("the audit database is unavailable; nothing of this call was stored") from None

    def audit(self, card_uuid: str) -> dict[str, Any] | None:
        self.settle()
        return self.database.query("SELECT * FROM audit WHERE card_uuid = ?", (card_uuid,)).first()

    def audit_count(self) -> int:
        self.settle()
        row = self.database.query("SELECT COUNT(*) AS n FROM audit").first()
        return int(row["n"]) if row else 0

    def known_card(self, card_uuid: str, service: str | None = None) -> bool:
        """Whether this store served the card (through ``service``, when given)."""
        def lookup() -> bool:
            if service is None:
                row = self.database.query("SELECT 1 AS found FROM audit WHERE card_uuid = ?", (card_uuid,)).first()
            else:
                row = self.database.query("SELECT 1 AS found FROM audit WHERE card_uuid = ? AND service = ?",
                                          (card_uuid, service)).first()
            return row is not None
        if lookup():
            return True
        if self.journal is None:
            return False
        self.settle()  # answered moments ago: its row may still be in a journal (committed, then its file deleted)
        return lookup()

    def add_feedback(self, service: str, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store validated feedback items, each card and outcome once; returns the items newly stored.

        CDS Hooks lets a client report a card more than once; a repeat of the same outcome adds nothing
        to what is known, so it is not stored again (the caller counts it). A different outcome for the
        same card (accepted, then overridden) is stored.
        """
        received = _now()
        stored = []
        with self.database.transaction() as tx:
            for item in items:
                # A no-op update locks the card's audit row (PostgreSQL; SQLite's transaction already
                # holds the write lock), so hosts reporting the same card at once store it once.
                tx.execute("UPDATE audit SET card_uuid = card_uuid WHERE card_uuid = ?", (item["card"],))
                reason = item.get("overrideReason") or {}
                coding = reason.get("reason") or {}
                changed = tx.execute(
                    "INSERT INTO feedback (card_uuid, service, received_at, outcome, outcome_timestamp, "
                    "accepted_suggestions, override_reason_system, override_reason_code, override_comment) "
                    "SELECT ?,?,?,?,?,?,?,?,? WHERE NOT EXISTS "
                    "(SELECT 1 FROM feedback WHERE card_uuid = ? AND service = ? AND outcome = ?)",
                    (item["card"], service, received, item["outcome"], item.get("outcomeTimestamp"),
                     json.dumps([s.get("id") for s in item.get("acceptedSuggestions") or []]),
                     coding.get("system"), coding.get("code"), reason.get("userComment"),
                     item["card"], service, item["outcome"])).rowcount
                if changed == 1:
                    stored.append(item)
        return stored

    def feedback_rows(self) -> list[dict[str, Any]]:
        """Feedback joined to the audit record of its card."""
        self.settle()
        return self.database.query(
            "SELECT f.card_uuid, f.service, f.received_at, f.outcome, f.outcome_timestamp, f.accepted_suggestions, "
            "f.override_reason_system, f.override_reason_code, f.override_comment, a.served_at, a.hook_instance, "
            "a.patient_hash, a.model_version, a.input_fingerprint, a.indicator, a.recommended_mg_per_day, "
            "a.compared_mg_per_day, a.raw_model_mg_per_day, a.safety_adjustments "
            "FROM feedback f LEFT JOIN audit a ON a.card_uuid = f.card_uuid ORDER BY f.id").rows

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
        """Record a token id across workers and hosts; False when it was already used and has not expired.

        One statement decides: the insert succeeds for a new id, or replaces an expired one; a live id
        changes no row. Two hosts racing on one id cannot both succeed (the key is unique).
        """
        now = time.time()
        # Stored as a digest: fixed length, and PostgreSQL text cannot hold the NUL that separates issuer and id.
        key = hashlib.sha256(key.encode("utf-8")).hexdigest()
        changed = self.database.execute(
            "INSERT INTO jti_seen (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE jti_seen.expires_at < ?", (key, expires_at, now)).rowcount
        if changed == 1 and secrets.randbelow(200) == 0:
            self.database.execute("DELETE FROM jti_seen WHERE expires_at < ?", (now,))
        return changed == 1

    def writable(self) -> bool:
        return self.database.available()


_AUDIT_TEXT_COLUMNS = ("card_uuid", "served_at", "service", "hook_instance", "patient_hash", "model_version",
                       "input_fingerprint", "indicator")  # then three REAL (or NULL) columns, then safety_adjustments


def _check_audit_rows(rows: Sequence[Sequence[Any]]) -> None:
    """The audit table's constraints, checked as it would (TEXT NOT NULL, REAL or NULL)."""
    for row in rows:
        for name, value in zip((*_AUDIT_TEXT_COLUMNS, None, None, None, "safety_adjustments", "decision"), row,
                               strict=True):
            if name is None:
                if value is not None and type(value) not in (float, int):
                    raise ValueError("audit dose columns are REAL or NULL")
            elif name == "decision":
                if value is not None and type(value) is not str:
                    raise ValueError("audit column decision is text or NULL")
            elif type(value) is not str:
                raise ValueError(f"audit column {name} is NOT NULL text")


def open_store(settings: Settings) -> Store:
    """The store the settings name: PostgreSQL at EPIDOSE_DATABASE_URL, else the SQLite file."""
    return Store(open_database(settings.database_url, settings.database_path), load_hash_key(settings))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _decision_text(decision: DecisionRecord) -> str:
    """The ``decision`` column: the record as compact JSON, keys sorted (orjson: a tenth of the standard
    encoder's CPU on the request path; the text parses to the same values)."""
    return orjson.dumps(decision.to_json(), option=orjson.OPT_SORT_KEYS).decode("utf-8")
