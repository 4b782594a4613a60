"""The report's opening for clinicians: the published Table 1 beside ours, row verdicts, divergence warnings."""

from __future__ import annotations

from typing import Any

from training.evaluation.clinician import (
    PUBLISHED_TABLE1,
    clinician_sections,
    published_table_section,
    training_divergence,
)


def _metrics(shift_accuracy: float = 0.0, shift_error: float = 0.0) -> dict[str, Any]:
    table = [{"dose_g": dose, "n": 10, "accuracy": (accuracy + shift_accuracy) / 100, "error_g": error + shift_error}
             for dose, (accuracy, error) in PUBLISHED_TABLE1.items()]
    return {"paper_table": table, "mean_class_accuracy": 0.897, "weighted_mae_g": 0.3413, "top1_agreement": 0.42,
            "within_one_step": 0.8, "agreement_limit": 0.7, "safety_violations": 0,
            "split": {"patients": 37, "visits": 400}, "ope_settings": {"behaviour_policy": "truth"}}


def test_the_published_figures_are_reproduced_row_by_row() -> None:
    text = "\n".join(published_table_section(_metrics()))
    assert "12 of 12 rows reproduced" in text
    assert "| **mean** | | **89.7%** | **89.7%** | **0.3413** | **0.3413** | yes |" in text


def test_rows_outside_the_tolerance_say_which_figure_and_which_way() -> None:
    text = "\n".join(published_table_section(_metrics(shift_accuracy=6.0, shift_error=-0.2)))
    assert "0 of 12 rows reproduced" in text
    assert "| 0.75 | 10 | 66.5% | 72.5% | 0.1791 | -0.0209 | no (accuracy higher, error smaller) |" in text


def test_a_rising_loss_or_an_impossible_q_value_is_divergence() -> None:
    steps = list(range(0, 4000, 100))
    falling = {"loss": [30 - i * 0.1 for i in range(len(steps))], "mean_q": [50.0] * len(steps)}
    rising = {"loss": [30 - i for i in range(10)] + [20 + 3 * i for i in range(30)], "mean_q": [50.0] * 40}
    exploding = {"loss": falling["loss"], "mean_q": [50.0 * 1.3 ** i for i in range(40)]}
    assert training_divergence(falling, 0.9) is None
    # The loss of a healthy DQN rises while values propagate from their zero start, then levels off.
    levelled = {"loss": [0.28 + 0.34 * min(i, 15) / 15 for i in range(40)], "mean_q": [50.0] * 40}
    assert training_divergence(levelled, 0.9) is None
    assert "loss rose" in (training_divergence(rising, 0.9) or "")
    assert "beyond the ±1000" in (training_divergence(exploding, 0.9) or "")


def test_the_report_opens_with_the_warning_then_the_summary() -> None:
    metrics = _metrics()
    assert clinician_sections(metrics)[0] == "## In brief, for clinicians"
    metrics["training_divergence"] = "the training loss rose from 20 at its lowest to 80 at the end"
    sections = clinician_sections(metrics)
    assert sections[0] == "## Warning: training diverged"
    assert sections.index("## In brief, for clinicians") > 0
