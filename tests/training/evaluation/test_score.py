"""The report and the retraining gate score a model by one function against one estimate of the physicians' policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.dataset import load_data, split_patients, visit_table
from training.evaluation.report import evaluate_model
from training.evaluation.score import BEHAVIOUR_STEPS
from training.policies.config import named_config
from training.retrain.job import behaviour_probabilities, evaluate_on_holdout, train_candidate
from training.retrain.settings import RetrainSettings
from training.simulator.cohort import write_cohort

pytestmark = pytest.mark.slow


def test_gate_and_report_agree_on_the_same_held_out_visits(tmp_path: Path) -> None:
    """With no recorded π_b (EHR-like data), the gate and the report give one model the same agreement, safety
    and weighted importance sampling estimate: the same behaviour-cloning π_b, the same scoring path."""
    write_cohort(tmp_path / "cohort", n_patients=60, seed=1)
    loaded = load_data(tmp_path / "cohort")
    table = visit_table(loaded.timelines, None)  # as from an EHR: the physicians' probabilities unknown
    splits = split_patients(table.patient_ids, 0)
    train, test = table.subset(splits["train"]), table.subset(splits["test"])
    model = train_candidate(named_config("bc", steps=100).to_json(), train, tmp_path / "model")
    report = evaluate_model(model, loaded, tmp_path / "report", table=table, bootstrap_samples=50, fqe_steps=20,
                            calibration_points=0)
    gate = evaluate_on_holdout(model, test, behaviour_probabilities(train, test), gamma=0.9, seed=0,
                               bootstrap_samples=50)
    assert report["ope_settings"]["behaviour_policy"] == "estimated"
    assert gate["top1_agreement"] == report["top1_agreement"]
    assert gate["safety_violations"] == report["safety_violations"] == 0
    assert gate["ope"]["wis"] == pytest.approx(report["ope"]["wis"])
    assert all(value == value for value in gate["ope"]["wis"].values())  # a real estimate, not NaN on both sides


def test_the_gate_estimates_the_physicians_as_the_report_does_by_default() -> None:
    """The retraining setting's default number of behaviour-cloning steps is the report's."""
    assert RetrainSettings().behaviour_steps == BEHAVIOUR_STEPS
