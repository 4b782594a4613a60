"""Audit rows kept before the answer in an append-only journal, moved into SQLite off the request's path.

A card is answered only after its response's audit rows are in this process's journal file: one
``write(2)`` of one line, which is in the kernel when it returns, so the rows outlive the worker
(SIGKILL included) exactly as a committed SQLite WAL transaction with ``synchronous=NORMAL`` does —
and, like it, not a power loss. A thread of the process moves the rows into the database in one
transaction per batch and then deletes the journal file that held them; until then the file is there.

Each journal file is held under an exclusive ``flock`` by its process for as long as the process lives,
so a file whose lock can be taken belongs to a dead process: the next store to open the database (a
restarted worker) moves its rows in and deletes it. Readers of the audit table first :meth:`settle`:
every journal's complete lines, live ones included, are inserted (a row already there is left as it
is), so a card answered by any worker is found as soon as its answer has been read.

Under gevent the mover is a real thread (its own SQLite connection, native locks), so neither the
batch's insert nor a wait on the database's write lock stops the worker's greenlets.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

log = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 0.02  # the mover's pause between batches: rows of ~10 calls per batch under load
SUFFIX: Final = ".jsonl"
Row = Sequence[Any]


def _native() -> tuple[Callable[[], Any], Callable[..., Any], Callable[[float], None]]:
    """allocate_lock, start_new_thread and sleep of the interpreter, even where gevent patched them."""
    from gevent import monkey

    return (monkey.get_original("_thread", "allocate_lock"), monkey.get_original("_thread", "start_new_thread"),
            monkey.get_original("time", "sleep"))


class AuditJournal:
    """This process's journal for one SQLite database, and the thread that empties it."""

    def __init__(self, database_path: Path, insert_sql: str, connect: Callable[[], sqlite3.Connection], *,
                 flush_seconds: float = FLUSH_SECONDS) -> None:
        self.folder = database_path.parent / f".{database_path.name}.audit-journal"
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self._insert_sql = insert_sql
        self._connect = connect
        self._connection: sqlite3.Connection | None = None
        self.flush_seconds = flush_seconds
        allocate_lock, self._start_thread, self._sleep = _native()
        self._lock = allocate_lock()  # the journal file and the pending rows (held for microseconds)
        self._flush_lock = allocate_lock()  # one batch at a time, and the connection
        self._pending: list[Row] = []
        self._held: list[tuple[int, Path, list[Row]]] = []  # rotated files whose rows are not yet committed
        self._mover_running = False
        self._pid = os.getpid()
        self._fd: int | None = None  # this process's journal file, opened by its first row
        self._path: Path | None = None
        atexit.register(self.close)

    # --- the request's side ----------------------------------------------------------------------

    def append(self, rows: Sequence[Row]) -> None:
        """Write one response's rows as one journal line; return once the kernel has them (OSError if not)."""
        line = orjson.dumps(rows) + b"\n"
        with self._lock:
            if os.getpid() != self._pid:  # forked after opening: the parent's file and lock are not ours
                self._pid, self._pending, self._held, self._mover_running = os.getpid(), [], [], False
                self._fd = self._path = None
            if self._fd is None:
                self._fd, self._path = self._new_file()
            written = os.write(self._fd, line)
            if written != len(line):  # a short write to a regular file: the disk is full
                raise OSError("the audit journal took only part of a line")
            self._pending.extend(rows)
            start = not self._mover_running
            self._mover_running = True
        if start:
            self._start_thread(self._move, ())

    # --- the mover ---------------------------------------------------------------------------------

    def _move(self) -> None:
        """Batches every FLUSH_SECONDS until a pause finds nothing new; then the thread ends."""
        while True:
            self._sleep(self.flush_seconds)
            with self._lock:
                if not self._pending and not self._held:
                    self._mover_running = False
                    return
            try:
                self.flush()
            except Exception:  # the rows stay in their journal file; retried after the pause
                log.exception("audit rows could not be moved into the database yet; they stay in the journal")
                self._sleep(1.0)

    def flush(self) -> None:
        """Commit the rows written so far and delete the journal files that held them."""
        with self._flush_lock:
            with self._lock:
                if self._pending and self._fd is not None and self._path is not None:
                    self._held.append((self._fd, self._path, self._pending))
                    self._pending = []
                    self._fd = self._path = None  # the next row opens the next file
                held, self._held = self._held, []
            try:
                if held:
                    self._insert([row for _, _, rows in held for row in rows])
            except BaseException:
                with self._lock:
                    self._held = held + self._held
                raise
            for fd, path, _ in held:
                path.unlink(missing_ok=True)  # before its lock goes, so no one replays it for nothing
                os.close(fd)

    def close(self) -> None:
        """Commit what is pending and delete this process's (then empty) journal file (at exit)."""
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(Exception):
            self.flush()
            with self._flush_lock, self._lock:
                if not self._pending and self._fd is not None and self._path is not None:
                    self._path.unlink(missing_ok=True)
                    os.close(self._fd)
                    self._fd = self._path = None
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def settle(self) -> None:
        """Every journal's complete rows into the database: ours committed, other live processes' inserted
        too (their own commit is then a no-op), dead processes' inserted and their files deleted."""
        self.flush()
        with self._flush_lock:
            for path in sorted(self.folder.glob("*" + SUFFIX)):
                if path == self._path:
                    continue
                self._take_over(path)

    def recover(self) -> None:
        """Move in the rows of journals left by processes that died (at start)."""
        with self._flush_lock:
            for path in sorted(self.folder.glob("*" + SUFFIX)):
                if path != self._path:
                    self._take_over(path, dead_only=True)
            for path in self.folder.glob(".*.new"):  # a process killed between creating a file and naming it
                self._take_over(path, dead_only=True)

    def _take_over(self, path: Path, *, dead_only: bool = False) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return  # committed and deleted by its owner meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                dead = True
            except BlockingIOError:
                dead = False
            if dead_only and not dead:
                return
            rows = _complete_rows(path, os.read(fd, os.fstat(fd).st_size))
            if rows:
                self._insert(rows)
            if dead:
                path.unlink(missing_ok=True)
                if rows:
                    log.info("audit journal of a process that stopped: %d row(s) moved into the database", len(rows))
        finally:
            os.close(fd)

    def _insert(self, rows: list[Row]) -> None:
        # A journal left by a version that wrote fewer columns (before the decision record) fills the newer
        # ones with NULL, as the migration that added them did for the rows already in the table.
        columns = self._insert_sql.count("?")
        rows = [tuple(row) + (None,) * (columns - len(row)) if len(row) < columns else row for row in rows]
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(self._insert_sql, rows)
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            self._connection = None
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            raise

    def _new_file(self) -> tuple[int, Path]:
        """A fresh journal file under this process's lock; named only once locked, so no one takes it for dead."""
        for _ in range(3):
            name = f"{os.getpid()}-{secrets.token_hex(6)}"
            temporary = self.folder / f".{name}.new"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = self.folder / (name + SUFFIX)
            try:
                os.rename(temporary, path)
            except FileNotFoundError:  # a starting store took it, unlocked for an instant, for a dead one's
                os.close(fd)
                continue
            return fd, path
        raise OSError("no audit journal file could be created")


def _complete_rows(path: Path, data: bytes) -> list[Row]:
    """The rows of every complete line (one being written when read has no newline yet and is left)."""
    rows: list[Row] = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], start=1):
        try:
            rows.extend(orjson.loads(line))
        except orjson.JSONDecodeError:
            log.error("audit journal %s: line %d is not a complete record and is skipped", path.name, number)
    return rows
