"""Safety over a simulated cohort: no card ever carries a dose above the label or renal bound, whatever the model says."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask

from fhir_mapping import dosing
from fhir_mapping.build import build_timeline
from fhir_mapping.inputs import collect_resources, parse_date
from fhir_mapping.medication import normalise_medication_request
from plugin.decide import decide
from plugin.gather import Gathered
from tests.plugin.cardspec import check_card, check_response
from tests.plugin.fixtures import FakeModel, draft_bundle, lev_order
from training.simulator.cohort import write_cohort
from training.simulator.config import DEFAULT_CONFIG, ending_on

PATIENTS = 25


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[list[dict[str, Any]]]:
    """The resources of each simulated child."""
    out = tmp_path_factory.mktemp("cohort")
    # Follow-up ending last month, so that "today" over HTTP finds current weights for many children.
    write_cohort(out, PATIENTS, seed=11, config=ending_on(DEFAULT_CONFIG, date.today() - timedelta(days=30)))
    children = []
    for path in sorted((out / "bundles").glob("*.json")):
        resources, _ = collect_resources(json.loads(path.read_text()))
        children.append(resources)
    return children


def _prefetch(resources: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    others = [r for r in resources if r["resourceType"] != "Patient"]
    return patient["id"], {"patient": patient, "weight": {"resourceType": "Bundle", "type": "searchset",
                                                          "entry": [{"resource": r} for r in others]}}


def _card_doses(card: dict[str, Any]) -> list[float]:
    """Every daily dose a card recommends: its summary and its suggested MedicationRequest."""
    doses = []
    decision = (card.get("extension") or {}).get("org.epidose.decision") or {}
    if decision.get("recommended_mg_per_day"):
        doses.append(float(decision["recommended_mg_per_day"]))
    for suggestion in card.get("suggestions") or []:
        for action in suggestion["actions"]:
            if action["type"] == "delete" or action["resource"].get("status") == "stopped":
                continue  # discarding a draft or stopping the order replaced orders no dose
            read = normalise_medication_request(action["resource"])
            assert not isinstance(read, list), read
            doses.append(read.mg_per_day)
    return doses


def _maximum(resources: list[dict[str, Any]], patient_id: str, day: date) -> float | None:
    timeline = build_timeline(resources, patient_id, as_of=day)
    visit = timeline.visits[-1] if timeline.visits else None
    weight = visit.weight if visit else None
    if weight is not None and (day - weight.measured_on).days > dosing.MAX_WEIGHT_AGE_DAYS:
        weight = None  # the service refuses to dose on an outdated weight
    return dosing.label_bounds(weight.value if weight else None, timeline.age_years_on(day),
                               visit.egfr if visit else None).max_mg_per_day


class RandomModel:
    """Random scores and a random (often forbidden) choice: the rail must hold for any output."""

    version = "random"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def model_input(self, values: Any, observed: Any) -> Any:
        return values

    def coverage(self, model_input: Any) -> Any:
        raise AttributeError("no coverage statistics")

    def choose(self, model_input: Any, allowed_mask: Any) -> tuple[int, np.ndarray, int]:
        scores = self.rng.normal(size=dosing.N_DOSE_CLASSES) * 50
        choice = int(self.rng.integers(0, dosing.N_DOSE_CLASSES))
        return choice, scores, choice


def _models() -> list[Any]:
    return [FakeModel("adversarial-highest"), FakeModel("adversarial-3g", favour=11), RandomModel(7)]


@pytest.mark.slow
def test_every_visit_of_every_child_stays_within_bounds(cohort: list[list[dict[str, Any]]]) -> None:
    """At each visit date of each child, the recommended dose (summary and suggestion) is within the bounds."""
    checked = 0
    for resources in cohort:
        patient_id, prefetch = _prefetch(resources)
        days = sorted({d for r in resources if r["resourceType"] == "Encounter"
                       for d in [parse_date((r.get("period") or {}).get("start"))] if d is not None})
        for day in days:
            maximum = _maximum(resources, patient_id, day)
            for model in _models():
                outcome = decide("patient-view", {"patientId": patient_id}, Gathered(values=prefetch), model,
                                 "https://cds.example.org/models/current", today=day)
                for card in outcome.cards:
                    check_card(card)
                    doses = _card_doses(card)
                    if maximum is None:
                        assert doses == [], card["summary"]
                    for dose in doses:
                        assert dose <= maximum + 1e-6, (card["summary"], maximum)
                        checked += 1
    assert checked > PATIENTS  # the test really looked at doses


def test_cards_over_http_for_the_whole_cohort(make_app: Callable[..., Flask], cohort: list[list[dict[str, Any]]]) -> None:
    """Today, over HTTP, patient-view and an order-sign with a 3 g/day draft stay within bounds for every child."""
    client = make_app().test_client()
    today = date.today()
    flagged = 0
    for resources in cohort:
        patient_id, prefetch = _prefetch(resources)
        maximum = _maximum(resources, patient_id, today)
        body = {"hook": "patient-view", "hookInstance": "safety", "context": {"patientId": patient_id}, "prefetch": prefetch}
        response = client.post("/cds-services/epidose-patient-view", json=body)
        assert response.status_code == 200
        cards = check_response(response.get_json())
        draft = lev_order("draft", patient_id, 1000, today)
        draft["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 3  # 3000 mg/day
        order = {"hook": "order-sign", "hookInstance": "safety",
                 "context": {"patientId": patient_id, "draftOrders": draft_bundle(draft)}, "prefetch": prefetch}
        response = client.post("/cds-services/epidose-order-sign", json=order)
        assert response.status_code == 200
        order_cards = check_response(response.get_json())
        for card in cards + order_cards:
            for dose in _card_doses(card):
                assert maximum is not None and dose <= maximum + 1e-6
        if maximum is not None and maximum < 3000:
            assert order_cards[0]["indicator"] == "critical"
            flagged += 1
    assert flagged >= PATIENTS // 4  # enough children had current data for the check to bite


@pytest.mark.slow
def test_real_model_stays_within_bounds(cohort: list[list[dict[str, Any]]], trained_model: Path) -> None:
    """A real trained model, through the service's rail, never puts a dose above the bounds on a card."""
    from training.inference import load_inference_model

    model = load_inference_model(trained_model)
    checked = 0
    for resources in cohort:
        patient_id, prefetch = _prefetch(resources)
        days = sorted({d for r in resources if r["resourceType"] == "Encounter"
                       for d in [parse_date((r.get("period") or {}).get("start"))] if d is not None})
        for day in [*days, date.today()]:
            maximum = _maximum(resources, patient_id, day)
            outcome = decide("patient-view", {"patientId": patient_id}, Gathered(values=prefetch), model,
                             "https://cds.example.org/models/current", today=day)
            for card in outcome.cards:
                check_card(card)
                for dose in _card_doses(card):
                    assert maximum is not None and dose <= maximum + 1e-6
                    checked += 1
    assert checked > PATIENTS
