"""Feedback round trip into the audit store, CSV export, health/readiness/metrics and the model page."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from flask import Flask

from plugin.cli import main
from plugin.runtime import Runtime
from tests.plugin.fixtures import hook_request, patient_resources

PV = "/cds-services/epidose-patient-view"


def test_feedback_round_trip_joins_the_audit_record(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """Feedback on a served card is stored joined to its audit record, and the CSV export shows both."""
    app = make_app()
    client = app.test_client()
    body = hook_request("patient-view", patient_resources(patient="child-7"), patient="child-7")
    card = client.post(PV, json=body).get_json()["cards"][0]
    suggestion = card["suggestions"][0]["uuid"]
    items = [
        {"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
         "outcomeTimestamp": "2026-01-01T10:00:00Z"},
        {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:05:00Z",
         "overrideReason": {"reason": card["overrideReasons"][2], "userComment": "sleepy on 1 g"}},
    ]
    response = client.post(PV + "/feedback", json={"feedback": items})
    assert response.status_code == 200 and response.get_json() == {"stored": 2, "repeated": 0}
    runtime: Runtime = app.extensions["epidose"]
    rows = runtime.store.feedback_rows()
    assert [r["outcome"] for r in rows] == ["accepted", "overridden"]
    assert json.loads(rows[0]["accepted_suggestions"]) == [suggestion]
    assert rows[1]["override_reason_code"] == "adverse-effect"
    assert rows[0]["hook_instance"] == body["hookInstance"]
    assert rows[0]["model_version"] == "fake-one" and rows[0]["recommended_mg_per_day"] == 1000.0  # the guidance's label step (the fake model's margin is narrow)
    assert rows[0]["patient_hash"] == runtime.store.patient_hash("child-7") != "child-7"
    env = {"EPIDOSE_DATA_DIR": str(tmp_path / "data"), "EPIDOSE_HASH_KEY": "test-hash-key"}
    result = CliRunner().invoke(main, ["feedback", "export"], env=env)
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["card_uuid"] for r in exported] == [card["uuid"]] * 2
    assert "child-7" not in result.stdout


def test_feedback_for_unknown_cards_or_bad_shapes_is_refused(make_app: Callable[..., Flask]) -> None:
    """Feedback naming a card never served, or malformed, is a 400 OperationOutcome and stores nothing."""
    app = make_app()
    client = app.test_client()
    bad = [{"feedback": [{"card": "nope", "outcome": "accepted"}]}, {"feedback": []}, {"feedback": "x"},
           {"feedback": [{"card": "a", "outcome": "maybe"}]}]
    for body in bad:
        response = client.post(PV + "/feedback", json=body)
        assert response.status_code == 400 and response.get_json()["resourceType"] == "OperationOutcome"
    assert app.extensions["epidose"].store.feedback_rows() == []


def test_health_readiness_and_metrics(make_app: Callable[..., Flask]) -> None:
    """/healthz is up, /readyz reports the model and store, /metrics counts requests, cards and feedback."""
    client = make_app().test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["model"] == "fake-one"
    card = client.post(PV, json=hook_request("patient-view", patient_resources())).get_json()["cards"][0]
    client.post(PV + "/feedback", json={"feedback": [{"card": card["uuid"], "outcome": "accepted"}]})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'epidose_requests_total{service="epidose-patient-view",status="200"' in text
    # A guidance card (no confident model recommendation) is information, not a warning.
    assert 'epidose_cards_total{indicator="info",service="epidose-patient-view"}' in text  # labels sorted by name
    assert 'epidose_feedback_total{outcome="accepted",service="epidose-patient-view"}' in text
    assert 'epidose_model_info{version="fake-one"' in text
    assert 'epidose_request_seconds_bucket{le="+Inf",service="epidose-patient-view"}' in text


def test_readyz_fails_without_a_model(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """With no model promoted, readiness is 503 and hook calls are 503 OperationOutcomes."""
    client = make_app(model_dir=tmp_path / "empty-models").test_client()
    assert client.get("/readyz").status_code == 503
    response = client.post(PV, json=hook_request("patient-view", patient_resources()))
    assert response.status_code == 503 and response.get_json()["resourceType"] == "OperationOutcome"


def test_model_page_renders_report_table_and_plots(make_app: Callable[..., Flask]) -> None:
    """/models/current shows the report's table, its plots (served as PNG) and the known limits; raw HTML is not rendered."""
    client = make_app().test_client()
    page = client.get("/models/current")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<table>" in text and "<td>0.5 g</td>" in text
    assert '<img src="/models/v0001/files/agreement.png"' in text
    assert "/models/v0001/files/value.png" in text  # plots not referenced by the report are shown too
    assert "not been validated on real patients" in text
    assert "<script>" not in text
    image = client.get("/models/v0001/files/agreement.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert client.get("/models/v0001").status_code == 200
    for path in ("/models/v0009", "/models/v0001/files/..%2Fmetadata.json", "/models/v0001/files/secret.png",
                 "/models/..", "/models/v0001/files/fake.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.is_json


def test_hash_key_is_generated_once_and_private(tmp_path: Path) -> None:
    """Without EPIDOSE_HASH_KEY a private key file is generated once and reused by every worker."""
    from plugin.settings import Settings
    from plugin.store import load_hash_key

    settings = Settings.from_env({}, data_dir=tmp_path)
    first = load_hash_key(settings)
    assert len(first) == 64 and load_hash_key(settings) == first
    assert settings.hash_key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["hash.key"]
