"""Shared fixtures: the real local FHIR server and a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Under pytest-xdist (scripts/test.sh runs two workers on two cores) each worker keeps to one thread of
# BLAS and torch: two workers each starting a thread per core would only contend for the same cores.
# Set before numpy or torch is imported by any test module (they read these at import).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, modules with slow tests first (each keeping its own order).

    Workers take whole modules in collection order (``--dist loadscope``); a long module left to the end
    would run alone while the other worker idles, so the long ones start first and the many short
    ones fill in around them. A run without workers keeps the ordinary order.
    """
    if not getattr(config.option, "numprocesses", None):
        return
    slow_modules = {_module(item) for item in items if item.get_closest_marker("slow")}
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (_module(item) not in slow_modules, order[id(item)]))


def _module(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    return module.__name__ if module is not None else item.nodeid.split("::")[0]
