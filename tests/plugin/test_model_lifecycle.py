"""Model lifecycle in the service: hot swap under load without failed requests; wrong-schema artifacts refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from flask import Flask
from werkzeug.serving import make_server

from tests.plugin.fixtures import hook_request, patient_resources, write_fake_artifact
from training.artifact.registry import ModelRegistry

PV = "/cds-services/epidose-patient-view"


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Run the app on a real threaded HTTP server on 127.0.0.1."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _version_in(card_detail: str) -> str:
    return card_detail.rsplit("Model version ", 1)[1].split(".", 1)[0]


def test_hot_swap_under_concurrent_requests(make_app: Callable[..., Flask], registry: ModelRegistry,
                                            tmp_path: Path) -> None:
    """Promoting a new model while 4 clients send requests fails none of them, and the new model takes over."""
    app = make_app(model_check_seconds=0.0)
    body = hook_request("patient-view", patient_resources())
    statuses: list[int] = []
    versions: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(base: str) -> None:
        session = requests.Session()
        while not stop.is_set():
            response = session.post(base + PV, json=body, timeout=10)
            with lock:
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(_version_in(response.json()["cards"][0]["detail"]))

    with serving(app) as base:
        threads = [threading.Thread(target=client, args=(base,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for number in range(2, 6):
            version = registry.add(write_fake_artifact(tmp_path / f"build-{number}", f"fake-{number}", favour=5))
            registry.promote(version)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # wait until a request has seen it
                with lock:
                    if versions and versions[-1] == f"fake-{number}":
                        break
                time.sleep(0.01)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    assert versions[0] == "fake-one" and versions[-1] == "fake-5"
    assert len(statuses) > 20


def test_wrong_schema_artifact_is_refused_and_the_previous_model_keeps_serving(
        make_app: Callable[..., Flask], registry: ModelRegistry, tmp_path: Path) -> None:
    """A promoted artifact that fails to load (wrong feature schema) is refused; the old model still answers."""
    client = make_app(model_check_seconds=0.0).test_client()
    bad = registry.add(write_fake_artifact(tmp_path / "bad", "fake-bad", schema_ok=False))
    registry.promote(bad)
    response = client.post(PV, json=hook_request("patient-view", patient_resources()))
    assert response.status_code == 200
    assert "Model version fake-one" in response.get_json()["cards"][0]["detail"]
    assert client.get("/readyz").get_json()["model"] == "fake-one"
    good = registry.add(write_fake_artifact(tmp_path / "good", "fake-good"))
    registry.promote(good)
    response = client.post(PV, json=hook_request("patient-view", patient_resources()))
    assert "Model version fake-good" in response.get_json()["cards"][0]["detail"]


def test_real_loader_refuses_a_wrong_schema(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """With the real numpy loader, an artifact whose schema hash differs is refused (ArtifactError) and not served."""
    from plugin.model import ModelHolder, default_loader

    reg = ModelRegistry(tmp_path / "real-models")
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "metadata.json").write_text('{"format_version": 1, "kind": "mlp_q", "schema_hash": "0000"}')
    (folder / "config.json").write_text("{}")
    reg.promote(reg.add(folder))
    holder = ModelHolder(reg, default_loader, 0.0)
    assert holder.model is None
    assert holder.last_error is not None and "refused" in holder.last_error
