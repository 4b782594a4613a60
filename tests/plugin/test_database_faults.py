"""The service with its state in a real PostgreSQL server that is stopped and started under it.

Down at start: the service starts, says so, and serves no card (503) since none could be audited.
Lost mid-run: every call that needs the database answers 503 with an OperationOutcome and nothing of
it is written. Back: the next call succeeds, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from plugin import create_app
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.plugin.fixtures import (
    ISSUER,
    Signer,
    fake_loader,
    hook_request,
    patient_resources,
    write_fake_artifact,
)
from tests.support.postgres import PostgresServer
from training.artifact.registry import DatabasePointer, ModelRegistry
from training.database import PostgresDatabase

PV = "/cds-services/epidose-patient-view"
AUDIENCE = "http://localhost"


@pytest.fixture
def service(own_postgres: PostgresServer, tmp_path: Path) -> Iterator[tuple[PostgresServer, Any]]:
    """The test's PostgreSQL server with a promoted fake model, and a builder of apps that use it."""
    url = own_postgres.create_database()
    setup = PostgresDatabase(url)
    registry = ModelRegistry(tmp_path / "models", pointer=DatabasePointer(setup))
    registry.promote(registry.add(write_fake_artifact(tmp_path / "build", "fake-one")))
    setup.close()
    signer = Signer(tmp_path)
    apps: list[Flask] = []

    def build(auth: bool = False) -> Flask:
        settings = Settings.from_env({}, auth=auth, data_dir=tmp_path / "data", model_dir=tmp_path / "models",
                                     database_url=url, jwks={ISSUER: str(signer.jwks_path)},
                                     model_check_seconds=0.0, hash_key="test-hash-key",
                                     public_base_url=AUDIENCE)
        app = create_app(settings, loader=fake_loader)
        app.testing = False
        apps.append(app)
        return app

    build.signer = signer  # type: ignore[attr-defined]
    yield own_postgres, build
    for app in apps:
        runtime(app).store.database.close()


def runtime(app: Flask) -> Runtime:
    result: Runtime = app.extensions["epidose"]
    return result


def call(client: FlaskClient, patient: str = "child-1", token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(PV, json=hook_request("patient-view", patient_resources(patient=patient), patient=patient),
                       headers=headers)


def assert_unavailable(response: Any, because: str = "database is unavailable") -> None:
    assert response.status_code == 503
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "transient"
    assert because in outcome["issue"][0]["diagnostics"]


def test_down_at_start_refuses_cards_says_so_and_recovers(service: tuple[PostgresServer, Any],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    server, build = service
    server.stop()
    with caplog.at_level(logging.ERROR):
        app = build()
    assert any("unavailable at start" in record.getMessage() for record in caplog.records)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["store_writable"] is False
    # The model pointer is in the database too: no model, no card (and none could be audited).
    assert_unavailable(call(client), because="no model is loaded")
    server.start()
    response = call(client)
    assert response.status_code == 200, response.get_json()
    card = response.get_json()["cards"][0]
    assert runtime(app).store.audit(card["uuid"]) is not None
    assert client.get("/readyz").status_code == 200


def test_lost_mid_run_answers_503_writes_nothing_and_recovers(service: tuple[PostgresServer, Any]) -> None:
    server, build = service
    app = build()
    client = app.test_client()
    served = call(client)
    assert served.status_code == 200
    card = served.get_json()["cards"][0]["uuid"]
    store = runtime(app).store
    before = store.audit_count()
    server.stop()
    assert_unavailable(call(client, "child-2"))
    assert_unavailable(client.post(PV + "/feedback", json={"feedback": [{"card": card, "outcome": "accepted"}]}))
    assert client.get("/readyz").status_code == 503
    server.start()
    assert store.audit_count() == before  # the refused call left no record behind
    assert store.feedback_rows() == []
    again = call(client, "child-3")
    assert again.status_code == 200
    assert store.audit_count() == before + len(again.get_json()["cards"])
    stored = client.post(PV + "/feedback", json={"feedback": [{"card": card, "outcome": "accepted"}]})
    assert stored.status_code == 200 and stored.get_json()["stored"] == 1


def test_token_checks_need_the_shared_replay_cache(service: tuple[PostgresServer, Any]) -> None:
    """With the database gone a token cannot be checked against other hosts' uses: 503, not a pass."""
    server, build = service
    app = build(auth=True)
    client = app.test_client()
    signer: Signer = build.signer
    assert call(client, token=signer.token(AUDIENCE + PV)).status_code == 200
    server.stop()
    assert_unavailable(call(client, token=signer.token(AUDIENCE + PV)))
    server.start()
    token = signer.token(AUDIENCE + PV)
    assert call(client, token=token).status_code == 200
    assert call(client, token=token).status_code == 401  # replayed
