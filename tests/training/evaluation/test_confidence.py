"""Honest confidence: the judgement rules, thresholds saved with the model and chosen on simulated truth,
and the rail violations counted per policy in the counterfactual simulator."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from training.evaluation import confidence
from training.evaluation.confidence import DecisionPoints, calibration_table, choose_thresholds
from training.inference import (
    CONFIDENCE_FILE,
    ConfidenceThresholds,
    default_thresholds,
    judge_confidence,
    load_inference_model,
    score_bound,
)

ALL = np.ones(12, dtype=bool)
Q_THRESHOLDS = ConfidenceThresholds(min_coverage=0.05, clear_margin=5.0, score_bound=1000.0)


def q_scores(best: float = 300.0, second: float = 250.0, rest: float = 100.0) -> np.ndarray:
    scores = np.full(12, rest)
    scores[4], scores[5] = best, second
    return scores


def test_the_reward_bounds_q_by_one_thousand_at_the_published_discount() -> None:
    assert score_bound(0.9) == pytest.approx(1000.0)
    with pytest.raises(ValueError):
        score_bound(1.0)


def test_clear_only_within_the_data_the_reward_range_and_a_clear_margin() -> None:
    clear = judge_confidence(q_scores(), ALL, 0.4, "q", Q_THRESHOLDS)
    assert clear.level == "clear" and clear.margin == pytest.approx(50.0)
    narrow = judge_confidence(q_scores(second=298.0), ALL, 0.4, "q", Q_THRESHOLDS)
    assert narrow.level == "narrow" and "nearly as well" in narrow.reasons[0]
    out_of_range = judge_confidence(q_scores(rest=-7262.0), ALL, 0.4, "q", Q_THRESHOLDS)
    assert out_of_range.level == "abstain" and "-7262" in out_of_range.reasons[0] and "±1000" in out_of_range.reasons[0]
    assert out_of_range.kinds == ("out-of-range",)
    few = judge_confidence(q_scores(), ALL, 0.02, "q", Q_THRESHOLDS)
    assert few.level == "abstain" and "few training children resembled this one (2%" in few.reasons[0]
    unknown = judge_confidence(q_scores(), ALL, None, "q", Q_THRESHOLDS)
    assert unknown.level == "abstain"
    single = np.zeros(12, dtype=bool)
    single[0] = True
    assert judge_confidence(q_scores(), single, 0.4, "q", Q_THRESHOLDS).level == "abstain"


def test_an_out_of_range_score_outside_the_mask_does_not_count() -> None:
    scores = q_scores()
    scores[11] = -7262.0
    mask = ALL.copy()
    mask[11] = False
    assert judge_confidence(scores, mask, 0.4, "q", Q_THRESHOLDS).level == "clear"


def test_log_probabilities_have_no_reward_bound() -> None:
    thresholds = default_thresholds("log_prob")
    scores = np.log(np.array([0.02] * 10 + [0.7, 0.1]))
    assert thresholds.score_bound is None
    assert judge_confidence(scores, ALL, 0.5, "log_prob", thresholds).level == "clear"


def test_never_clear_thresholds_round_trip_through_json() -> None:
    never = ConfidenceThresholds(0.1, math.inf, 1000.0, "test", {"points": 3})
    again = ConfidenceThresholds.from_json(json.loads(json.dumps(never.to_json())))
    assert again == never
    assert judge_confidence(q_scores(best=900.0), ALL, 0.9, "q", never).level == "narrow"


def points(margins: np.ndarray, best: np.ndarray, coverage: float = 0.5) -> DecisionPoints:
    n = len(margins)
    return DecisionPoints([f"p{i}" for i in range(n)], np.zeros(n, np.int64), np.full(n, 4), margins.astype(float),
                          np.full(n, coverage), np.ones(n, bool), np.full(n, 12), best.astype(bool), np.zeros(n),
                          np.where(best, 0.0, 20.0), np.zeros((n, 12)), np.ones((n, 12), bool))


class FakeModel:
    score_kind = "q"
    gamma = 0.9
    confidence_thresholds = default_thresholds("q")


def test_thresholds_make_clear_choices_right_at_the_target_rate() -> None:
    rng = np.random.default_rng(0)
    margins = rng.uniform(0, 100, 400)
    best = np.where(margins > 40, rng.random(400) < 0.95, rng.random(400) < 0.2)
    chosen = choose_thresholds(points(margins, best), FakeModel())  # type: ignore[arg-type]
    assert 0.0 < chosen.clear_margin < 40.0  # as wide as the target allows, mixing in some weaker points
    clear = margins >= chosen.clear_margin
    assert best[clear].mean() >= confidence.TARGET_CLEAR_PRECISION
    wider = [float(np.quantile(margins, q)) for q in confidence.MARGIN_QUANTILES]
    for margin in (m for m in wider if m < chosen.clear_margin - 1e-9):  # any wider clear fails the target
        assert best[margins >= margin].mean() < confidence.TARGET_CLEAR_PRECISION, margin
    assert chosen.calibration["clear_precision"] >= confidence.TARGET_CLEAR_PRECISION
    assert chosen.score_bound == pytest.approx(1000.0)


def test_clear_only_where_following_the_model_beats_following_the_guidance() -> None:
    """Held-out points where the guidance's dose does better than the model's are left to the guidance,
    even though the model's choices there are right as often as the target asks."""
    rng = np.random.default_rng(2)
    margins = rng.uniform(0, 100, 400)
    best = rng.random(400) < 0.9
    judged = points(margins, best)
    chosen_value = np.where(best, 0.0, -20.0)
    guided = np.where(margins < 50, chosen_value + 10.0, chosen_value - 10.0)  # guidance better at small margins
    judged = dataclasses.replace(judged, chosen_value=chosen_value, guided_value=guided,
                                 best_value=np.maximum(np.where(best, chosen_value, chosen_value + 20.0), guided))
    thresholds = choose_thresholds(judged, FakeModel())  # type: ignore[arg-type]
    assert 45.0 <= thresholds.clear_margin <= 55.0, thresholds.clear_margin
    assert thresholds.calibration["served_value"] > float(guided.mean())
    assert thresholds.calibration["served_value"] > float(chosen_value.mean())


def test_clear_choices_are_never_right_less_often_than_the_guidance() -> None:
    rng = np.random.default_rng(3)
    margins = rng.uniform(0, 100, 300)
    best = rng.random(300) < 0.75
    judged = dataclasses.replace(points(margins, best), chosen_value=np.where(best, 0.0, -20.0),
                                 best_value=np.zeros(300), guided_value=np.zeros(300))  # the guidance is always a best dose
    thresholds = choose_thresholds(judged, FakeModel())  # type: ignore[arg-type]
    assert math.isinf(thresholds.clear_margin)


def test_an_uninformative_margin_gives_no_clear_recommendation() -> None:
    rng = np.random.default_rng(1)
    margins = rng.uniform(0, 100, 300)
    chosen = choose_thresholds(points(margins, rng.random(300) < 0.5), FakeModel())  # type: ignore[arg-type]
    assert math.isinf(chosen.clear_margin)
    assert "none is called clear" in chosen.chosen


def test_calibration_table_counts_each_level() -> None:
    margins = np.array([10.0, 60.0, 70.0, 80.0])
    table = calibration_table(points(margins, np.array([False, True, True, False])), FakeModel(),  # type: ignore[arg-type]
                              ConfidenceThresholds(0.05, 50.0, 1000.0))
    assert table is not None
    by_level = {row["level"]: row for row in table["rows"]}
    # the synthetic scores are all zero, so the margin judged is 0: every point is narrow
    assert by_level["narrow"]["points"] == 4 and by_level["clear"]["points"] == 0
    assert by_level["narrow"]["best_allowed"] == pytest.approx(0.5)


# --- On a small simulated cohort, with a real (tiny) model --------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from training.pipeline import train_model
    from training.policies import named_config
    from training.simulator.cohort import write_cohort

    root = tmp_path_factory.mktemp("confidence")
    cohort = root / "cohort"
    write_cohort(cohort, 80, 5)
    config = dataclasses.replace(named_config("conservative", seed=0), steps=300)
    folder, _, _ = train_model(cohort, root / "model", config, split_seed=0)
    return cohort, folder


def test_training_saves_thresholds_chosen_on_simulated_children(trained: tuple[Path, Path]) -> None:
    _, folder = trained
    saved = json.loads((folder / CONFIDENCE_FILE).read_text())
    assert saved["chosen"].startswith("held-out simulated children")
    assert saved["calibration"]["points"] > 0
    model = load_inference_model(folder)
    assert model.confidence_thresholds.chosen == saved["chosen"]
    assert model.confidence_thresholds.score_bound == pytest.approx(1000.0)


def test_an_older_model_without_thresholds_gets_the_defaults(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    _, folder = trained
    copy = tmp_path / "old"
    shutil.copytree(folder, copy)
    (copy / CONFIDENCE_FILE).unlink()
    model = load_inference_model(copy)
    assert model.confidence_thresholds == default_thresholds("q", 0.9)


def test_decision_points_judge_the_choice_against_every_allowed_dose(trained: tuple[Path, Path]) -> None:
    from training.pipeline import prepare

    cohort, folder = trained
    model = load_inference_model(folder)
    _, table, dataset = prepare(cohort, 0)
    judged = confidence.decision_points(cohort, model, table, dataset.splits["test"], max_points=15)
    assert judged is not None and len(judged) > 0
    assert (judged.best_value >= judged.chosen_value - 1e-9).all()
    assert (judged.best == (judged.chosen_value >= judged.best_value - confidence.TIE_TOLERANCE)).all()
    assert judged.masks[np.arange(len(judged)), judged.chosen].all()  # the choice is always allowed


def test_the_model_has_no_violations_and_the_physician_is_counted(trained: tuple[Path, Path]) -> None:
    from training.evaluation.simulated import true_values_for_models
    from training.pipeline import prepare

    cohort, folder = trained
    model = load_inference_model(folder)
    _, _, dataset = prepare(cohort, 0)
    ids = dataset.splits["train"][:30]
    results = true_values_for_models(cohort, {"model": model}, ids, include_oracle=False, without_rails=True,
                                     lifted_rails=("R-NO-START-AFTER-SINGLE-SEIZURE",), state="direct")
    assert results is not None
    assert results["model"]["label_violations"] == 0 and results["model"]["rail_violations"] == 0
    assert results["model"]["decisions"] > 0
    physician = results["physician"]
    assert physician["decisions"] > 0 and physician["label_violations"] == 0
    assert physician["rail_violations"] == sum(physician["rail_violations_by_rule"].values())
    # The physician's other habits break rails (starts below the label dose, raises in remission) ...
    assert physician["rail_violations"] > 0
    # ... but it starts after a single seizure only when it was prolonged or the family asked, which the
    # rail sees on the chart as well: never a violation.
    assert physician["rail_violations_by_rule"].get("R-NO-START-AFTER-SINGLE-SEIZURE", 0) == 0
    assert "model without clinical rails" in results
    lifted = results["model without R-NO-START-AFTER-SINGLE-SEIZURE"]
    assert lifted["label_violations"] == 0
    assert set(lifted["rail_violations_by_rule"]) <= {"R-NO-START-AFTER-SINGLE-SEIZURE"}  # only the lifted rail is broken


def test_the_model_report_counts_violations_abstentions_and_calibration(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from training.dataset import load_data
    from training.evaluation.report import evaluate_model

    cohort, folder = trained
    metrics = evaluate_model(folder, load_data(cohort), tmp_path / "report", bootstrap_samples=20, fqe_steps=50,
                             calibration_points=8)
    held_out = metrics["rail_violations_held_out"]
    assert held_out["model"]["label_violations"] == 0 and held_out["model"]["rail_violations"] == 0
    assert held_out["physician (logged)"]["visits"] == held_out["model"]["visits"] > 0
    shares = metrics["confidence"]["held_out"]
    assert shares["clear_share"] + shares["narrow_share"] + shares["abstain_share"] == pytest.approx(1.0)
    assert metrics["confidence"]["calibration"]["points"] > 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "### Label and clinical-rail violations" in report and "## Honest confidence" in report
    assert "| physician (logged) | held-out visits |" in report
    details = json.loads((tmp_path / "report" / "details.json").read_text())
    assert details["confidence"]["thresholds"]["chosen"].startswith("held-out simulated children")


def test_the_served_policy_follows_the_guidance_when_the_model_is_not_clear(trained: tuple[Path, Path]) -> None:
    """Single seizure, not treated: the rails leave 0 g, the model abstains, the guidance (watchful waiting) is served."""
    from datetime import date, timedelta

    from fhir_mapping.timeline import Measurement, PatientTimeline, Visit
    from training.dataset import timeline_rails
    from training.evaluation.simulated import ServedPolicy, guidance_class

    _, folder = trained
    model = load_inference_model(folder)
    day = date(2022, 5, 1)
    visit = Visit(day, age_years=8.0, weight=Measurement(26.0, day, 0), height=Measurement(128.0, day, 0),
                  seizure_count_since_last_visit=1, seizure_since_last_visit=True, seizure_last_3_months=True,
                  seizure_last_6_months=True)
    timeline = PatientTimeline("single", birth_date=date(2014, 5, 1), visits=[visit])
    served = ServedPolicy(model)
    assert served(timeline) == 0
    assert served.levels["abstain"] == 1
    # A second seizure three months later: the guidance starts at the label's starting dose (20 mg/kg/day × 25 kg = 500 mg).
    later = day + timedelta(days=91)
    timeline.visits.append(Visit(later, age_years=8.25, weight=Measurement(25.0, later, 0), seizure_count_since_last_visit=1,
                                 seizure_since_last_visit=True, seizure_last_3_months=True, days_since_previous_visit=91))
    outcome = timeline_rails(timeline, 1)
    assert guidance_class(outcome, 0.0) == 4 and outcome.guidance is not None and outcome.guidance.action == "start"


def test_where_the_card_is_silent_the_physician_decides(trained: tuple[Path, Path]) -> None:
    """A card that recommends nothing (the guidance cannot say: no weight) leaves the decision to the clinician:
    the deferring served policy returns the sentinel, the state leaves the ledger, and the tally says so."""
    from datetime import date

    from fhir_mapping.timeline import PatientTimeline, Visit
    from training.evaluation.simulated import RailLedger, ServedPolicy
    from training.simulator.simulate import DEFER_TO_CLINICIAN

    _, folder = trained
    model = load_inference_model(folder)
    day = date(2022, 5, 1)
    silent = PatientTimeline("silent", birth_date=date(2014, 5, 1), visits=[
        Visit(day, age_years=8.0, seizure_count_since_last_visit=2, seizure_since_last_visit=True, seizure_last_3_months=True)])
    ledger = RailLedger()
    deferring = ServedPolicy(model, ledger, defer_when_silent=True)
    assert deferring(silent) == DEFER_TO_CLINICIAN and deferring.deferred == 1 and not ledger.entries
    assert ServedPolicy(model)(silent) != DEFER_TO_CLINICIAN  # without deferral the card's "kept dose" is replayed


def test_a_policy_that_always_defers_replays_the_physician_exactly() -> None:
    """Deferral uses the physician and the visit's own draw: a policy that always defers gives, child by child,
    the physician's own run (same doses, same rewards)."""
    from training.simulator.config import DEFAULT_CONFIG
    from training.simulator.environment import Environment
    from training.simulator.simulate import DEFER_TO_CLINICIAN

    environment = Environment(25, 11, DEFAULT_CONFIG, state="direct")
    own = environment.physician_runs()
    deferred = environment.run(lambda timeline: DEFER_TO_CLINICIAN, physician_decides_deferred=True)
    assert [[v.dose_class for v in run.visits] for run in deferred] == [[v.dose_class for v in run.visits] for run in own]
    with pytest.raises(ValueError, match="deferred to a clinician"):
        environment.run(lambda timeline: DEFER_TO_CLINICIAN)
