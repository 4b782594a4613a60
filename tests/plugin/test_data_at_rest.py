"""Data at rest is private whatever the umask, free-text comments are kept only when allowed, feedback once."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from plugin import create_app
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.plugin.fixtures import fake_loader, hook_request, patient_resources, write_fake_artifact
from training.artifact.registry import ModelRegistry
from training.retrain.resources import ResourceStore

PV = "/cds-services/epidose-patient-view"
OS_URL = "/cds-services/epidose-order-sign"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o077], ids=["umask-000", "umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_store_key_raw_store_and_models_are_private(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "data"
    registry = ModelRegistry(data / "models")
    source = write_fake_artifact(tmp_path / "build", "fake", report=True)
    os.chmod(source / "fake.json", 0o644)
    registry.promote(registry.add(source))
    app = create_app(Settings.from_env({}, auth=False, data_dir=data, model_dir=registry.root), loader=fake_loader)
    client = app.test_client()
    assert client.post(PV, json=hook_request("patient-view", patient_resources())).status_code == 200
    raw = ResourceStore(data / "retrain" / "store")
    raw.add_all([{"resourceType": "Patient", "id": "p1"}])
    files = [data / "epidose.sqlite3", data / "epidose.sqlite3-wal", data / "hash.key",
             raw.root / "Patient.ndjson", registry.root / "promotions.jsonl", registry.root / "current"]
    files += [p for p in (registry.root / "versions").rglob("*") if p.is_file()]
    folders = [data, registry.root, registry.root / "versions", raw.root, data / "retrain"]
    folders += [p for p in (registry.root / "versions").rglob("*") if p.is_dir()]
    for path in files:
        assert _mode(path) == 0o600, (path, oct(_mode(path)))
    for path in folders:
        assert _mode(path) == 0o700, (path, oct(_mode(path)))


def _served(client: object, path: str = PV) -> dict[str, object]:
    response = client.post(path, json=hook_request("patient-view", patient_resources()))  # type: ignore[attr-defined]
    assert response.status_code == 200
    return response.get_json()["cards"][0]  # type: ignore[no-any-return]


def _overridden(card: str, comment: str) -> dict[str, object]:
    return {"feedback": [{"card": card, "outcome": "overridden",
                          "overrideReason": {"reason": {"system": "http://example.org", "code": "other"},
                                             "userComment": comment}}]}


def test_override_comments_are_dropped_and_counted_by_default(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    card = _served(client)["uuid"]
    comment = "mother " + "Anna" + " asked to wait"  # a name typed into a comment
    response = client.post(PV + "/feedback", json=_overridden(str(card), comment))
    assert response.get_json() == {"stored": 1, "repeated": 0}
    runtime: Runtime = app.extensions["epidose"]
    rows = runtime.store.feedback_rows()
    assert rows[0]["override_comment"] is None and rows[0]["override_reason_code"] == "other"
    assert "Anna" not in runtime.store.database.path.read_bytes().decode("latin-1")
    assert 'epidose_override_comments_dropped_total{service="epidose-patient-view"' in client.get("/metrics").text


def test_override_comments_are_kept_when_allowed(make_app: Callable[..., Flask]) -> None:
    app = make_app(keep_override_comments=True)
    client = app.test_client()
    card = _served(client)["uuid"]
    client.post(PV + "/feedback", json=_overridden(str(card), "kept as typed"))
    runtime: Runtime = app.extensions["epidose"]
    assert runtime.store.feedback_rows()[0]["override_comment"] == "kept as typed"


def test_repeated_feedback_is_stored_once_and_counted(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    card = str(_served(client)["uuid"])
    accepted = {"card": card, "outcome": "accepted"}
    first = client.post(PV + "/feedback", json={"feedback": [accepted, accepted]})
    assert first.get_json() == {"stored": 1, "repeated": 1}
    again = client.post(PV + "/feedback", json={"feedback": [accepted]})
    assert again.get_json() == {"stored": 0, "repeated": 1}
    changed = client.post(PV + "/feedback", json=_overridden(card, "x"))
    assert changed.get_json() == {"stored": 1, "repeated": 0}  # a different outcome is news
    runtime: Runtime = app.extensions["epidose"]
    assert [r["outcome"] for r in runtime.store.feedback_rows()] == ["accepted", "overridden"]
    assert 'epidose_feedback_repeated_total{service="epidose-patient-view"}' in client.get("/metrics").text


def test_feedback_only_for_cards_this_service_served(make_app: Callable[..., Flask]) -> None:
    """A card served by patient-view is not order-sign's to receive feedback for."""
    client = make_app().test_client()
    card = str(_served(client)["uuid"])
    response = client.post(OS_URL + "/feedback", json={"feedback": [{"card": card, "outcome": "accepted"}]})
    assert response.status_code == 400 and "did not serve" in response.get_json()["issue"][0]["diagnostics"]
    assert client.post(PV + "/feedback", json={"feedback": [{"card": card, "outcome": "accepted"}]}).status_code == 200


def test_an_existing_shared_folder_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    """A database configured inside a shared folder is private; the folder itself is not the service's."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)  # noqa: S103 - a shared folder, as found on servers
    from plugin.store import Store

    Store(shared / "epidose.sqlite3", b"key")
    assert _mode(shared) == 0o755 and _mode(shared / "epidose.sqlite3") == 0o600
