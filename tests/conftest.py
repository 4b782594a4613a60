"""Shared fixtures: the real local FHIR server and a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fhir_server import running_fhir_server, sekmet_available
from tests.support.postgres import PostgresServer, postgres_bindir, running_postgres


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real FHIR R4 server on 127.0.0.1, empty at session start (shared by the session)."""
    if not sekmet_available():
        if os.environ.get("CI"):
            pytest.fail("the FHIR test server is not installed: run scripts/install.sh dev")
        pytest.skip("the FHIR test server is not installed: run scripts/install.sh dev")
    data: Path = tmp_path_factory.mktemp("fhir-server")
    with running_fhir_server(data) as base:
        yield base


@pytest.fixture
def fresh_fhir_server(tmp_path: Path) -> Iterator[str]:
    """A FHIR server of the test's own (for tests that need an empty server or stop it)."""
    if not sekmet_available():
        if os.environ.get("CI"):
            pytest.fail("the FHIR test server is not installed: run scripts/install.sh dev")
        pytest.skip("the FHIR test server is not installed: run scripts/install.sh dev")
    with running_fhir_server(tmp_path / "fhir") as base:
        yield base


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 shared by the session (each test takes a fresh database)."""
    _require_postgres()
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres.create_database()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, for tests that stop and start it."""
    _require_postgres()
    with running_postgres() as server:
        yield server


def _require_postgres() -> None:
    """Skip without PostgreSQL, saying why; under CI a missing server is a failure."""
    if postgres_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: run scripts/install.sh dev")
        pytest.skip("PostgreSQL is not installed: run scripts/install.sh dev")
