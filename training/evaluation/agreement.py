"""Agreement with the physicians: the published Table 1 exactly as published, and honest measures.

Table 1 of the published DQN (../shared/domain.md §1) reports per dose class the one-vs-rest binary
accuracy (TP + TN) / N over all visits and the mean |recommended − prescribed| in grams over visits
prescribed that class; its headline "mean accuracy" is the unweighted mean of the 12 accuracies
(inflated by rare classes, where predicting "not this class" is almost always right) and its "mean
error" the visit-weighted mean absolute error. The honest measures next to it: top-1 agreement,
agreement within one dose step, macro-F1, Cohen's kappa, and how often rare doses are recommended.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fhir_mapping.dosing import DOSE_CLASSES_G, N_DOSE_CLASSES, RARE_DOSE_CLASSES

GRAMS = np.asarray(DOSE_CLASSES_G)


def paper_table(recommended: np.ndarray, prescribed: np.ndarray) -> list[dict[str, Any]]:
    """Per class: dose_g, one-vs-rest accuracy, mean |error| in g over visits prescribed it (None if none), n."""
    recommended = np.asarray(recommended, dtype=np.int64)
    prescribed = np.asarray(prescribed, dtype=np.int64)
    rows = []
    errors = np.abs(GRAMS[recommended] - GRAMS[prescribed])
    for k in range(N_DOSE_CLASSES):
        prescribed_k = prescribed == k
        accuracy = float(np.mean((recommended == k) == prescribed_k)) if len(prescribed) else float("nan")
        n = int(prescribed_k.sum())
        rows.append({"dose_g": float(GRAMS[k]), "accuracy": accuracy,
                     "error_g": float(errors[prescribed_k].mean()) if n else None, "n": n})
    return rows


def mean_class_accuracy(table: list[dict[str, Any]]) -> float:
    """The published headline: unweighted mean of the 12 one-vs-rest accuracies."""
    return float(np.mean([row["accuracy"] for row in table]))


def weighted_mae_g(recommended: np.ndarray, prescribed: np.ndarray) -> float:
    """The published mean error: |recommended − prescribed| in grams averaged over all visits."""
    return float(np.mean(np.abs(GRAMS[np.asarray(recommended)] - GRAMS[np.asarray(prescribed)])))


def confusion_matrix(recommended: np.ndarray, prescribed: np.ndarray) -> np.ndarray:
    """Counts [prescribed class, recommended class], 12 × 12."""
    matrix = np.zeros((N_DOSE_CLASSES, N_DOSE_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(prescribed), np.asarray(recommended)), 1)
    return matrix


def macro_f1(recommended: np.ndarray, prescribed: np.ndarray) -> float:
    """Unweighted mean F1 over the classes that occur in either the prescriptions or the recommendations."""
    matrix = confusion_matrix(recommended, prescribed)
    true_positive = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    present = (support + predicted) > 0
    denominator = support + predicted
    f1 = np.where(denominator > 0, 2 * true_positive / np.maximum(denominator, 1), 0.0)
    return float(f1[present].mean()) if present.any() else float("nan")


def cohen_kappa(recommended: np.ndarray, prescribed: np.ndarray) -> float:
    """Cohen's kappa: agreement beyond what the two marginal distributions give by chance."""
    matrix = confusion_matrix(recommended, prescribed).astype(float)
    n = matrix.sum()
    if n == 0:
        return float("nan")
    observed = np.trace(matrix) / n
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / n**2)
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def agreement_metrics(recommended: np.ndarray, prescribed: np.ndarray) -> dict[str, Any]:
    """Table 1 as published plus top-1, within one step, macro-F1, kappa and rare-dose shares."""
    recommended = np.asarray(recommended, dtype=np.int64)
    prescribed = np.asarray(prescribed, dtype=np.int64)
    table = paper_table(recommended, prescribed)
    rare = np.asarray(RARE_DOSE_CLASSES)
    return {
        "paper_table": table,
        "mean_class_accuracy": mean_class_accuracy(table),
        "weighted_mae_g": weighted_mae_g(recommended, prescribed),
        "top1_agreement": float(np.mean(recommended == prescribed)),
        "within_one_step": float(np.mean(np.abs(recommended - prescribed) <= 1)),
        "macro_f1": macro_f1(recommended, prescribed),
        "kappa": cohen_kappa(recommended, prescribed),
        "rare_dose_share_model": float(np.mean(np.isin(recommended, rare))),
        "rare_dose_share_physician": float(np.mean(np.isin(prescribed, rare))),
    }


def safety_violations(recommended: np.ndarray, masks: np.ndarray) -> int:
    """Recommendations outside the label bounds of their visit (must be 0)."""
    recommended = np.asarray(recommended, dtype=np.int64)
    return int((~np.asarray(masks, dtype=bool)[np.arange(len(recommended)), recommended]).sum())
