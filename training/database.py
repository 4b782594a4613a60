"""The shared-state database: SQLite embedded by default, PostgreSQL when ``EPIDOSE_DATABASE_URL`` names one.

Everything that must agree across hosts lives here when the database is PostgreSQL: card audit
records, feedback, the JWT replay cache, the model registry's current pointer and promotion log, and
the retraining run records. One interface, :class:`Database`, two implementations that differ only in
how they connect, how they name a placeholder, and how they lock; every statement is written once, in
the SQL both engines accept (``INSERT … ON CONFLICT`` needs SQLite 3.24 or newer).

The schema is versioned by a small ``schema_migrations`` table and the ordered :data:`MIGRATIONS`
below, applied once each, in a transaction, under a lock so hosts starting together do not race.

A database that cannot be reached raises :class:`DatabaseUnavailable` (HTTP 503 with an
OperationOutcome); the broken connection is dropped, so the next call reconnects and the service
recovers without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fhir_mapping.errors import EpidoseError
from training.private_files import locked_file, private_dir, private_file

log = logging.getLogger(__name__)

# Seconds to wait for a PostgreSQL connection: a hook call has ~500 ms end to end (CDS Hooks), so a
# database that does not answer is reported quickly instead of holding the EHR's request.
CONNECT_TIMEOUT_S = 2
# Connections one worker process keeps open at most, and how long a call waits for a free one. A gevent
# worker runs many requests at once; without a bound each would open a session of its own, and N hosts ×
# workers × requests in flight would exhaust the server's max_connections (100 by default).
POOL_SIZE = 4
POOL_WAIT_S = 2.0

# Ordered schema migrations: (version, statements). Types written as {id} and {float} are the only
# words that differ between the two engines. Never edit an applied migration; add the next one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE IF NOT EXISTS audit (
            card_uuid TEXT PRIMARY KEY,
            served_at TEXT NOT NULL,
            service TEXT NOT NULL,
            hook_instance TEXT NOT NULL,
            patient_hash TEXT NOT NULL,
            model_version TEXT NOT NULL,
            input_fingerprint TEXT NOT NULL,
            indicator TEXT NOT NULL,
            recommended_mg_per_day {float},
            compared_mg_per_day {float},
            raw_model_mg_per_day {float},
            safety_adjustments TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS feedback (
            id {id},
            card_uuid TEXT NOT NULL,
            service TEXT NOT NULL,
            received_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            outcome_timestamp TEXT,
            accepted_suggestions TEXT NOT NULL,
            override_reason_system TEXT,
            override_reason_code TEXT,
            override_comment TEXT)""",
        "CREATE INDEX IF NOT EXISTS feedback_card ON feedback(card_uuid)",
        "CREATE TABLE IF NOT EXISTS jti_seen (key TEXT PRIMARY KEY, expires_at {float} NOT NULL)",
    )),
    (2, (
        # The registry's pointer and promotion log, shared so every host promotes and rolls back together.
        "CREATE TABLE IF NOT EXISTS model_pointer (name TEXT PRIMARY KEY, version TEXT NOT NULL, updated_at TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS promotions (
            id {id}, action TEXT NOT NULL, version TEXT NOT NULL, previous TEXT, at TEXT NOT NULL)""",
        "CREATE TABLE IF NOT EXISTS retrain_runs (id {id}, run_id TEXT NOT NULL, record TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS jti_seen_expiry ON jti_seen(expires_at)",
    )),
    (3, (
        # What each step of a card's decision decided (plugin.audit.DecisionRecord as JSON); NULL in rows
        # written before, whose other columns keep their meaning.
        "ALTER TABLE audit ADD COLUMN decision TEXT",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class DatabaseUnavailable(EpidoseError):
    """The database cannot be reached or refused the statement; nothing of the call was written."""

    status = 503


@dataclass(frozen=True)
class Result:
    """Rows of one statement (as dicts) and how many rows it changed."""

    rows: list[dict[str, Any]]
    rowcount: int

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None


class Transaction:
    """Statements run on one connection inside one transaction (all written, or none)."""

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return self._database._run(self._connection, sql, params)


class Database(ABC):
    """The shared-state database; ``transaction()`` is the only way statements run."""

    kind: str
    unavailable_errors: tuple[type[BaseException], ...]

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        self.pool_size = pool_size
        self.pool_wait = POOL_WAIT_S
        self._migrated = False
        self._migrate_lock = threading.Lock()
        self._pool = threading.Condition()
        self._idle: list[Any] = []
        self._open_count = 0
        self._pid = os.getpid()

    # -- what differs between engines ------------------------------------------------------------

    @abstractmethod
    def describe(self) -> str:
        """Where the database is, for logs (never a password)."""

    @abstractmethod
    def _open(self) -> Any:
        """A new connection in autocommit mode."""

    @abstractmethod
    def _begin(self, connection: Any) -> None: ...

    @abstractmethod
    def _sql(self, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in this engine's placeholder style."""

    @abstractmethod
    def _types(self) -> dict[str, str]:
        """The engine's spelling of the {id} and {float} column types of :data:`MIGRATIONS`."""

    @abstractmethod
    def try_lock(self, name: str) -> contextlib.AbstractContextManager[bool]:
        """Hold the named lock across hosts for the block if it is free; yields False when another holds it."""

    @abstractmethod
    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the named lock across hosts for the block, waiting for it."""

    # -- shared behaviour -----------------------------------------------------------------------

    def _checkout(self) -> Any:
        """An idle connection, a new one while fewer than ``pool_size`` are open, else wait for one."""
        deadline = time.monotonic() + self.pool_wait
        with self._pool:
            if self._pid != os.getpid():
                # A forked worker must not share its parent's sessions: forget them (never close them,
                # which would end the parent's) and open its own.
                self._idle, self._open_count, self._pid = [], 0, os.getpid()
            while not self._idle and self._open_count >= self.pool_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._pool.wait(remaining):
                    log.error("database %s: all %d connections busy for %.1f s", self.describe(), self.pool_size,
                              self.pool_wait)
                    raise DatabaseUnavailable(f"the {self.kind} database is busy; nothing of this call was stored")
            if self._idle:
                return self._idle.pop()
            self._open_count += 1
        try:
            return self._open()
        except BaseException:
            self._release(None)
            raise

    def _release(self, connection: Any) -> None:
        """Return ``connection`` to the pool, or (None) give up its place after it was closed or never opened."""
        with self._pool:
            if connection is None:
                self._open_count = max(0, self._open_count - 1)
            else:
                self._idle.append(connection)
            self._pool.notify()

    def _discard(self, connection: Any) -> None:
        with contextlib.suppress(Exception):
            connection.close()
        self._release(None)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection for the block; one that failed is closed, so the next call opens a fresh one."""
        try:
            connection = self._checkout()
        except self.unavailable_errors as error:
            raise self._unavailable(error) from None
        try:
            yield connection
        except BaseException as failure:
            if isinstance(failure, self.unavailable_errors) or _broken(connection):
                self._discard(connection)
            else:
                self._release(connection)
            raise
        self._release(connection)

    def close(self) -> None:
        """Close the idle connections (tests and shutdown; busy ones are closed by their users' failures)."""
        with self._pool:
            idle, self._idle = self._idle, []
            self._open_count -= len(idle)
        for connection in idle:
            with contextlib.suppress(Exception):
                connection.close()

    def _run(self, connection: Any, sql: str, params: Sequence[Any]) -> Result:
        cursor = connection.execute(self._sql(sql), tuple(params))
        rows: list[dict[str, Any]] = []
        if cursor.description is not None:
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return Result(rows, cursor.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction (all its statements written, or none); DatabaseUnavailable when the database fails."""
        self.migrate()
        try:
            with self._connection() as connection:
                self._begin(connection)
                try:
                    yield Transaction(self, connection)
                except BaseException:
                    with contextlib.suppress(*self.unavailable_errors):
                        connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except self.unavailable_errors as error:
            raise self._unavailable(error) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One statement, atomic on its own (autocommit): one round trip instead of BEGIN, it, COMMIT."""
        return self.query(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> Result:
        """One statement on its own (autocommit; a read takes no write lock)."""
        self.migrate()
        try:
            with self._connection() as connection:
                return self._run(connection, sql, params)
        except self.unavailable_errors as error:
            raise self._unavailable(error) from None

    def _unavailable(self, error: BaseException) -> DatabaseUnavailable:
        log.error("database %s unavailable: %s", self.describe(), type(error).__name__)
        return DatabaseUnavailable(f"the {self.kind} database is unavailable; nothing of this call was stored")

    def migrate(self) -> None:
        """Apply the migrations not yet applied (once per process, then a no-op)."""
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            try:
                with self.lock("schema-migrations"), self._connection() as connection:
                    self._apply_migrations(connection)
            except self.unavailable_errors as error:
                raise self._unavailable(error) from None
            self._migrated = True

    def _apply_migrations(self, connection: Any) -> None:
        connection.execute(self._sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"))
        applied = {row["version"] for row in self._run(connection, "SELECT version FROM schema_migrations", ()).rows}
        types = self._types()
        for version, statements in MIGRATIONS:
            if version in applied:
                continue
            self._begin(connection)
            try:
                for statement in statements:
                    connection.execute(self._sql(statement.format(**types)))
                self._run(connection, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                          (version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
                connection.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(*self.unavailable_errors):
                    connection.execute("ROLLBACK")
                raise
            log.info("database %s: schema migration %d applied", self.describe(), version)

    def schema_version(self) -> int:
        row = self.query("SELECT MAX(version) AS version FROM schema_migrations").first()
        return int(row["version"]) if row and row["version"] is not None else 0

    def available(self) -> bool:
        """Whether a write succeeds now (the readiness probe)."""
        try:
            with self.transaction() as tx:
                tx.execute("CREATE TABLE IF NOT EXISTS readiness_probe (x INTEGER)")
                tx.execute("DELETE FROM readiness_probe")
            return True
        except DatabaseUnavailable:
            return False


class SqliteDatabase(Database):
    """One SQLite file (WAL, so several gunicorn workers write); locks are fcntl locks beside it."""

    kind = "SQLite"
    unavailable_errors = (sqlite3.OperationalError,)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        private_dir(self.path.parent)
        # SQLite gives its -wal and -shm files the database file's mode, so 0600 here covers all three.
        private_file(self.path)

    def describe(self) -> str:
        return str(self.path)

    def connect(self) -> sqlite3.Connection:
        """A connection of the caller's own, outside the pool (the audit journal's mover thread)."""
        connection: sqlite3.Connection = self._open()
        return connection

    def _open(self) -> Any:
        connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _begin(self, connection: Any) -> None:
        connection.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later

    def _sql(self, sql: str) -> str:
        return sql

    def _types(self) -> dict[str, str]:
        return {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "float": "REAL"}

    def _lock_path(self, name: str) -> Path:
        return self.path.parent / f".{self.path.name}.{name}.lock"

    def try_lock(self, name: str) -> contextlib.AbstractContextManager[bool]:
        return file_try_lock(self._lock_path(name))

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with locked_file(self._lock_path(name)):
            yield


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3; locks are session advisory locks on a connection of their own."""

    kind = "PostgreSQL"

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.unavailable_errors = (psycopg.OperationalError, psycopg.InterfaceError)

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    def _open(self) -> Any:
        cooperative_psycopg_waits(self._psycopg)
        return self._psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                     application_name="epidose")

    def _begin(self, connection: Any) -> None:
        connection.execute("BEGIN")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _types(self) -> dict[str, str]:
        return {"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "float": "DOUBLE PRECISION"}

    @staticmethod
    def lock_key(name: str) -> int:
        """The advisory lock number of ``name``: a signed 64-bit integer from its SHA-256."""
        return int.from_bytes(hashlib.sha256(b"epidose:" + name.encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def _lock_connection(self) -> Iterator[Any]:
        try:
            connection = self._open()
        except self.unavailable_errors as error:
            raise self._unavailable(error) from None
        try:
            yield connection
        finally:
            with contextlib.suppress(Exception):
                connection.close()  # closing the session releases its advisory locks

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        with self._lock_connection() as connection:
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key(name),)).fetchone()
            yield bool(row[0])

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with self._lock_connection() as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (self.lock_key(name),))
            yield


def cooperative_psycopg_waits(psycopg: Any) -> bool:
    """Make psycopg wait for the server through gevent's patched ``select`` in a gevent worker.

    psycopg chooses how it waits once, when first imported: its C wait unless gevent has already patched
    ``select``. The service imports it in the gunicorn master (the registry check before the workers
    fork), so gevent workers inherited the C wait, which holds the whole worker, every greenlet, through
    each round trip and commit flush. Called before each new connection; True when it switched. A wait
    chosen with psycopg's own ``PSYCOPG_WAIT_FUNC`` is left alone.
    """
    waiting = psycopg.waiting
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is None or "PSYCOPG_WAIT_FUNC" in os.environ or getattr(waiting, "wait_c", None) is None:
        return False
    if waiting.wait is not waiting.wait_c or not gevent_monkey.is_module_patched("select"):
        return False
    waiting.wait = waiting.wait_poll if hasattr(waiting, "wait_poll") else waiting.wait_select
    log.info("psycopg waits through gevent (it was imported before the worker patched select)")
    return True


@contextlib.contextmanager
def file_try_lock(path: Path) -> Iterator[bool]:
    """A non-blocking lock on ``path`` for the block: yields False when another process holds it."""
    with locked_file(path, wait=False) as handle:
        yield handle is not None


def _broken(connection: Any) -> bool:
    """Whether a connection can no longer be used (psycopg marks it; an SQLite connection never is)."""
    return bool(getattr(connection, "broken", False) or getattr(connection, "closed", False) is True)


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def open_database(url: str | None, sqlite_path: Path) -> Database:
    """PostgreSQL when ``url`` is a postgresql:// URL, else the SQLite file at ``sqlite_path``."""
    if is_postgres_url(url):
        return shared_database(str(url))
    return SqliteDatabase(sqlite_path)


_shared: dict[str, PostgresDatabase] = {}
_shared_lock = threading.Lock()


def shared_database(url: str) -> PostgresDatabase:
    """One PostgresDatabase per URL in this process (the CLI, the scheduler and the registry share it)."""
    with _shared_lock:
        database = _shared.get(url)
        if database is None:
            database = _shared[url] = PostgresDatabase(url)
        return database
