"""A real PostgreSQL server started in a temporary folder on 127.0.0.1 (tests and benchmarks).

Debian's ``postgresql`` package provides the binaries (scripts/install.sh dev installs it in CI). The
cluster lives in a fresh folder with its unix socket inside it, listens on a free loopback port and
takes a password (scram-sha-256) over TCP, as a production server would. PostgreSQL refuses to run as
root, so under root the server runs as the package's ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support.fhir_server import free_port

SERVER_USER = "postgres"


def postgres_bindir() -> Path | None:
    """The folder with initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(f"running as root needs the {SERVER_USER!r} system user (apt-get install postgresql)") from None
    return ["runuser", "-u", SERVER_USER, "--"]


class PostgresServer:
    """One cluster: ``start()``, ``stop()`` (and start again: the data stays), ``url(database)``."""

    def __init__(self, *, fsync: bool = False) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.user = "epidose"
        self.fsync = fsync
        # Not under pytest's tmp folder: that is private to root, and the server user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="epidose-pg-"))
        self.data = self.root / "data"
        self._prefix = _as_server_user()
        if self._prefix:
            shutil.chown(self.root, SERVER_USER)
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        if self._prefix:
            shutil.chown(password_file, SERVER_USER)
        password_file.chmod(0o600)
        self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={password_file}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-instructions")
        password_file.unlink()

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._prefix, str(self.bindir / tool), *args], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``fast`` ends every session at once (what a crash looks like to clients)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    server = PostgresServer(fsync=fsync)
    try:
        server.start()  # pg_ctl -w returns once the server accepts connections
        yield server
    finally:
        server.remove()
