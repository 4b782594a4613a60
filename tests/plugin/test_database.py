"""The shared-state store on both engines: SQLite (embedded) and a real PostgreSQL server on 127.0.0.1."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugin.store import AuditRecord, Store
from tests.plugin.fixtures import write_fake_artifact
from training.artifact.registry import DatabasePointer, ModelRegistry, RegistryError
from training.database import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    DatabaseUnavailable,
    PostgresDatabase,
    SqliteDatabase,
)


def audit_record(card: str, *, model_version: str = "m1", indicator: str = "info") -> AuditRecord:
    return AuditRecord(card_uuid=card, served_at="2026-12-01T10:00:00Z", service="lev-dose", hook_instance="h1",
                       patient_hash="ab" * 32, model_version=model_version, input_fingerprint="f" * 16,
                       indicator=indicator, recommended_mg_per_day=1000.0, compared_mg_per_day=None,
                       raw_model_mg_per_day=1250.0, safety_adjustments=("renal cap",))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database location for either engine (the PostgreSQL one is a fresh database)."""
    if request.param == "sqlite":
        return str(tmp_path / "epidose.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def connect() -> Iterator[Callable[[str], Database]]:
    """Open a new Database object, as another worker or host would (closed after the test)."""
    opened: list[Database] = []

    def open_one(location: str) -> Database:
        database = PostgresDatabase(location) if location.startswith("postgresql://") else SqliteDatabase(Path(location))
        opened.append(database)
        return database

    yield open_one
    for database in opened:
        database.close()


def test_migrations_applied_once_and_versioned(engine: str, connect: Callable[[str], Database]) -> None:
    database = connect(engine)
    database.migrate()
    assert database.schema_version() == SCHEMA_VERSION == MIGRATIONS[-1][0]
    again = connect(engine)
    again.migrate()
    versions = [row["version"] for row in again.query("SELECT version FROM schema_migrations ORDER BY version").rows]
    assert versions == [version for version, _ in MIGRATIONS]


def test_an_existing_sqlite_store_is_adopted_with_its_records(tmp_path: Path) -> None:
    """A store written before migrations existed gets version 1 recorded and version 2 applied; nothing lost."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        for statement in MIGRATIONS[0][1]:
            old.execute(statement.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", float="REAL"))
        old.execute("INSERT INTO audit VALUES ('c0', 't', 's', 'h', 'p', 'm0', 'f', 'info', 1.0, NULL, NULL, '[]')")
    store = Store(path, b"key")
    assert store.database.schema_version() == SCHEMA_VERSION
    assert store.known_card("c0") and store.audit_count() == 1
    store.database.close()


def test_rows_written_before_the_decision_column_keep_their_columns(tmp_path: Path) -> None:
    """Migration 3 adds the decision record beside the old columns: an old row reads as before, decision empty."""
    path = tmp_path / "v2.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        for version, statements in MIGRATIONS[:2]:
            for statement in statements:
                old.execute(statement.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", float="REAL"))
            old.execute("INSERT INTO schema_migrations VALUES (?, 't')", (version,))
        old.execute("INSERT INTO audit VALUES ('c0', 't', 's', 'h', 'p', 'm0', 'f', 'info', 1.0, NULL, NULL, '[\"x\"]')")
    store = Store(path, b"key")
    assert store.database.schema_version() == SCHEMA_VERSION >= 3
    row = store.audit("c0")
    assert row is not None and row["decision"] is None
    assert (row["model_version"], row["recommended_mg_per_day"], row["safety_adjustments"]) == ("m0", 1.0, '["x"]')
    store.add_audit(audit_record("c1"))
    assert store.audit("c1")["decision"] is None  # type: ignore[index]
    store.database.close()


def test_audit_round_trip_and_known_card(engine: str, connect: Callable[[str], Database]) -> None:
    store = Store(connect(engine), b"key")
    store.add_audits([audit_record("c1"), audit_record("c2", indicator="warning")])
    other_host = Store(connect(engine), b"key")
    row = other_host.audit("c2")
    assert row is not None and row["indicator"] == "warning" and row["raw_model_mg_per_day"] == 1250.0
    assert other_host.known_card("c1") and not other_host.known_card("c3")
    assert other_host.audit_count() == 2


def test_one_response_is_audited_whole_or_not_at_all(engine: str, connect: Callable[[str], Database]) -> None:
    store = Store(connect(engine), b"key")
    broken = AuditRecord(**{**audit_record("c2").__dict__, "model_version": None})  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"(?i)not.null"):
        store.add_audits([audit_record("c1"), broken])
    assert store.audit_count() == 0


def test_jti_is_used_once_across_hosts_until_it_expires(engine: str, connect: Callable[[str], Database]) -> None:
    first, second = Store(connect(engine), b"key"), Store(connect(engine), b"key")
    now = time.time()
    assert first.first_jti_use("iss\x00t1", now + 60) is True
    assert second.first_jti_use("iss\x00t1", now + 60) is False
    assert first.first_jti_use("iss\x00t1", now + 60) is False
    assert second.first_jti_use("iss\x00t2", now + 60) is True
    assert first.first_jti_use("iss\x00old", now - 1) is True
    assert second.first_jti_use("iss\x00old", now + 60) is True  # expired: a new token may reuse the id


def test_racing_hosts_cannot_both_use_one_jti(postgres_url: str, connect: Callable[[str], Database]) -> None:
    stores = [Store(connect(postgres_url), b"key") for _ in range(8)]
    for store in stores:
        store.database.migrate()
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def use(store: Store) -> None:
        barrier.wait()
        results.append(store.first_jti_use("iss\x00race", time.time() + 60))

    threads = [threading.Thread(target=use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_feedback_joined_to_its_audit(engine: str, connect: Callable[[str], Database]) -> None:
    store = Store(connect(engine), b"key")
    store.add_audits([audit_record("c1")])
    store.add_feedback("lev-dose", [{"card": "c1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s1"}]}])
    rows = Store(connect(engine), b"key").feedback_rows()
    assert [(r["card_uuid"], r["outcome"], r["model_version"]) for r in rows] == [("c1", "accepted", "m1")]


def test_promotion_and_rollback_through_one_host_seen_by_another(postgres_url: str, tmp_path: Path,
                                                                  connect: Callable[[str], Database]) -> None:
    shared_models = tmp_path / "models"
    host_a = ModelRegistry(shared_models, pointer=DatabasePointer(connect(postgres_url)))
    host_b = ModelRegistry(shared_models, pointer=DatabasePointer(connect(postgres_url)))
    assert host_b.current_version() is None
    one = host_a.add(write_fake_artifact(tmp_path / "one", "fake-one"))
    host_a.promote(one)
    two = host_b.add(write_fake_artifact(tmp_path / "two", "fake-two"))
    assert two != one  # version names come from the shared log and folders
    host_b.promote(two)
    assert host_a.current_version() == two
    assert host_a.rollback() == one
    assert host_b.current_version() == one
    assert [e["action"] for e in host_b.history()] == ["promote", "promote", "rollback"]
    assert not (shared_models / "current").exists()  # the pointer is the database's, not a file
    with pytest.raises(RegistryError):
        host_b.rollback()


def test_named_lock_admits_one_holder_across_hosts(engine: str, connect: Callable[[str], Database]) -> None:
    first, second = connect(engine), connect(engine)
    with first.try_lock("retrain-run") as got_first, second.try_lock("retrain-run") as got_second:
        assert got_first is True and got_second is False
    with second.try_lock("retrain-run") as got_again:
        assert got_again is True


def test_lock_keys_are_distinct_and_stable() -> None:
    keys = {PostgresDatabase.lock_key(name) for name in ("retrain-run", "scheduler", "model-registry", "schema-migrations")}
    assert len(keys) == 4
    assert PostgresDatabase.lock_key("scheduler") == PostgresDatabase.lock_key("scheduler")


def test_many_concurrent_requests_share_a_bounded_pool(postgres_url: str, connect: Callable[[str], Database]) -> None:
    """Sixteen threads at once (a gevent worker's requests) use at most pool_size sessions of the server."""
    import psycopg

    store = Store(connect(postgres_url), b"key")
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            while not stop.is_set():
                row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'epidose' "
                                         "AND datname = current_database()").fetchone()
                peak = max(peak, int(row[0]) if row else 0)
                time.sleep(0.005)

    def work(worker: int) -> None:
        for index in range(25):
            assert store.first_jti_use(f"iss\x00{worker}-{index}", time.time() + 60)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert 1 <= peak <= store.database.pool_size
    assert store.database.query("SELECT COUNT(*) AS n FROM jti_seen").first() == {"n": 16 * 25}


def test_a_call_that_finds_every_connection_busy_is_refused_not_queued_forever(
        postgres_url: str, connect: Callable[[str], Database]) -> None:
    database = connect(postgres_url)
    database.pool_size, database.pool_wait = 1, 0.2
    database.migrate()
    with database.transaction() as tx:
        tx.execute("SELECT 1 AS one")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="busy"):
            database.query("SELECT 1 AS one")
        assert time.monotonic() - started < 2
    assert database.query("SELECT 1 AS one").first() == {"one": 1}


def test_feedback_on_a_card_is_stored_once_per_outcome_across_hosts(engine: str,
                                                                     connect: Callable[[str], Database]) -> None:
    first, second = Store(connect(engine), b"key"), Store(connect(engine), b"key")
    first.add_audits([audit_record("c1")])
    accepted = {"card": "c1", "outcome": "accepted"}
    assert first.add_feedback("lev-dose", [accepted]) == [accepted]
    assert second.add_feedback("lev-dose", [accepted]) == []  # the repeat, sent to the other host
    overridden = {"card": "c1", "outcome": "overridden"}
    assert second.add_feedback("lev-dose", [overridden]) == [overridden]
    assert [r["outcome"] for r in first.feedback_rows()] == ["accepted", "overridden"]
    assert second.known_card("c1", "lev-dose") and not second.known_card("c1", "other-service")


def test_hosts_racing_on_one_feedback_store_it_once(postgres_url: str, connect: Callable[[str], Database]) -> None:
    stores = [Store(connect(postgres_url), b"key") for _ in range(6)]
    stores[0].add_audits([audit_record("c1")])
    barrier = threading.Barrier(len(stores))
    stored: list[int] = []

    def report(store: Store) -> None:
        barrier.wait()
        stored.append(len(store.add_feedback("lev-dose", [{"card": "c1", "outcome": "accepted"}])))

    threads = [threading.Thread(target=report, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stored) == [0] * 5 + [1]
    assert len(stores[0].feedback_rows()) == 1
