"""The decision as named steps: the state is imputed once per call, and each card's audit record says
what every step decided (and is what the audit log keeps)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from plugin.audit import DecisionRecord
from plugin.decide import decide
from plugin.gather import Gathered
from plugin.runtime import Runtime
from plugin.store import _decision_text
from tests.plugin.fixtures import FakeModel, hook_request, patient_resources
from training.inference import load_inference_model

PV = "/cds-services/epidose-patient-view"
TODAY = date.today()
REPORT = "https://cds.example.org/models/current"
DECISION_KEY = "org.epidose.decision"


class CountingImputation:
    """The model's own imputation, counting its calls."""

    def __init__(self, imputation: Any) -> None:
        self.imputation = imputation
        self.calls = 0

    def transform(self, values: Any, observed: Any) -> Any:
        self.calls += 1
        return self.imputation.transform(values, observed)


def _runtime(client: FlaskClient) -> Runtime:
    found: Runtime = client.application.extensions["epidose"]
    return found


def _decide(model: Any, prefetch: dict[str, Any], hook: str = "patient-view", **context: Any) -> Any:
    body = hook_request(hook, prefetch)
    body["context"].update(context)
    return decide(hook, body["context"], Gathered(values=prefetch), model, REPORT, today=TODAY)


def test_the_state_is_imputed_once_per_call(trained_model: Path) -> None:
    """A dose card costs one imputation of the state (the model's choice and its coverage share it)."""
    model = load_inference_model(trained_model)
    counting = CountingImputation(model.imputation)
    model.imputation = counting
    outcome = _decide(model, patient_resources(weight_kg=25.0))
    assert len(outcome.cards) == 1 and outcome.audit[0].model is not None
    assert counting.calls == 1
    assert outcome.audit[0].model.coverage is not None  # the coverage was computed, from that one imputation


def test_the_audit_record_says_what_each_step_decided() -> None:
    """The record of a model-decided card matches the card's decision: rails, the model's choices, confidence, action."""
    outcome = _decide(FakeModel("fake-one"), patient_resources(weight_kg=25.0))
    card, record = outcome.cards[0], outcome.audit[0]
    shown = card["extension"][DECISION_KEY]
    assert isinstance(record, DecisionRecord)
    assert record.card_uuid == card["uuid"] and record.indicator == card["indicator"]
    assert (record.hook, record.scope) == ("patient-view", "in-scope")
    assert record.action == shown["action"] and record.source == shown["source"]
    assert record.confidence == shown["confidence"] == "narrow"
    assert record.confidence_reasons  # a narrow margin says why
    assert list(record.rules_shown) == shown["rules"]
    assert record.recommended_mg_per_day == shown["recommended_mg_per_day"]
    assert record.compared_mg_per_day == shown["current_mg_per_day"] == 500.0
    assert record.model is not None
    assert record.model.version == record.model_version == "fake-one"
    assert record.model.raw_mg_per_day == 3000.0  # the fake's unconstrained best: the highest dose
    assert record.model.chosen_mg_per_day < 3000.0  # what the rails allowed instead
    assert record.model.margin == pytest.approx(1.0)  # the fake's scores are one apart
    assert "model choice 3000 mg/day replaced" in record.safety_adjustments
    assert not any(problem.blocking for problem in record.problems)
    assert len(record.input_fingerprint) == 64


def test_a_card_stopped_by_the_data_records_no_model() -> None:
    """Without a body weight no model is asked: the record names the blocking problem and no model."""
    prefetch = patient_resources(weight_kg=25.0)
    prefetch["weight"] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    outcome = _decide(FakeModel("fake-one"), prefetch)
    record = outcome.audit[0]
    assert record.model is None and record.model_version == "none" and record.raw_model_mg_per_day is None
    assert (record.action, record.source, record.recommended_mg_per_day) == ("no-recommendation", "none", None)
    assert any(p.kind == "missing" and p.item == "body weight" and p.blocking for p in record.problems)
    assert outcome.cards[0]["extension"][DECISION_KEY]["action"] == "no-recommendation"


def test_the_audit_row_keeps_its_columns_and_the_whole_record(client: FlaskClient) -> None:
    """The service writes the record: the columns every version wrote, and the steps as JSON, no identifier."""
    response = client.post(PV, json=hook_request("patient-view", patient_resources(weight_kg=25.0)))
    assert response.status_code == 200
    card = response.get_json()["cards"][0]
    row = _runtime(client).store.audit(card["uuid"])
    assert row is not None
    decision = json.loads(row["decision"])
    assert decision["card_uuid"] == card["uuid"] == row["card_uuid"]
    assert decision["action"] == card["extension"][DECISION_KEY]["action"]
    assert decision["model"]["version"] == row["model_version"] == "fake-one"
    assert decision["model"]["raw_mg_per_day"] == row["raw_model_mg_per_day"] == 3000.0
    assert decision["input_fingerprint"] == row["input_fingerprint"]
    assert json.loads(row["safety_adjustments"]) == decision["safety_adjustments"]
    assert row["compared_mg_per_day"] == decision["compared_mg_per_day"] == 500.0
    assert "p1" not in row["decision"]  # problems are kept as kind and item, never their detail


def test_a_cached_answer_gets_its_own_records(client: FlaskClient) -> None:
    """An identical call served from the cache writes a record under the new card's uuid, the same decision."""
    prefetch = patient_resources(weight_kg=25.0)
    first = client.post(PV, json=hook_request("patient-view", prefetch)).get_json()["cards"][0]
    second = client.post(PV, json=hook_request("patient-view", prefetch)).get_json()["cards"][0]
    store = _runtime(client).store
    assert _runtime(client).cache.hits == 1
    rows = [store.audit(card["uuid"]) for card in (first, second)]
    assert first["uuid"] != second["uuid"] and all(rows)
    decisions = [json.loads(row["decision"]) for row in rows if row]
    assert [d["card_uuid"] for d in decisions] == [first["uuid"], second["uuid"]]
    assert {k: v for k, v in decisions[0].items() if k != "card_uuid"} == \
        {k: v for k, v in decisions[1].items() if k != "card_uuid"}


def test_scores_summary_has_no_infinite_values() -> None:
    """A rail-removed best score leaves no -inf in the record (it is written as JSON)."""
    outcome = _decide(FakeModel("fake-clear", adversarial=False, favour=6), patient_resources(weight_kg=25.0))
    record = outcome.audit[0]
    assert record.model is not None
    text = json.dumps(record.to_json(), allow_nan=False)
    assert np.isfinite(record.model.best_score or 0.0) and "Infinity" not in text


def test_the_audit_json_holds_every_field_of_the_record_and_its_parts() -> None:
    """The ``decision`` column is the whole record: each dataclass a dict in field order, tuples as lists."""
    outcome = _decide(FakeModel("fake-clear", adversarial=False, favour=6), patient_resources(weight_kg=25.0))
    record = outcome.audit[0]
    assert record.model is not None
    plain = json.loads(json.dumps(dataclasses.asdict(record)))  # the standard library's reading, tuples as lists
    assert record.to_json() == plain
    assert list(record.to_json()) == [field.name for field in dataclasses.fields(record)]
    assert isinstance(record.to_json()["model"], dict) and isinstance(record.to_json()["fired_rules"], list)
    text = _decision_text(record)  # the audit row's column
    assert json.loads(text) == plain and list(json.loads(text)) == sorted(plain)
