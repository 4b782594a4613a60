"""The published figures' counterparts as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fhir_mapping.dosing import DOSE_CLASSES_G, N_DOSE_CLASSES


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: dict[str, Any], path: Path, title: str) -> None:
    """Training loss against gradient steps (the published training-error curve)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    if history.get("steps"):
        axis.plot(history["steps"], history["loss"], lw=1.2)
    axis.set_xlabel("gradient step")
    axis.set_ylabel("training loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def dose_distribution(prescribed: np.ndarray, recommended: np.ndarray, path: Path) -> None:
    """Visits per dose class: physician vs model."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.5))
    x = np.arange(N_DOSE_CLASSES)
    axis.bar(x - 0.2, np.bincount(prescribed, minlength=N_DOSE_CLASSES), 0.4, label="physician")
    axis.bar(x + 0.2, np.bincount(recommended, minlength=N_DOSE_CLASSES), 0.4, label="model")
    axis.set_xticks(x, [f"{g:g}" for g in DOSE_CLASSES_G])
    axis.set_xlabel("daily dose (g)")
    axis.set_ylabel("visits")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def confusion(matrix: np.ndarray, path: Path) -> None:
    """Confusion matrix, rows = prescribed class, columns = recommended class."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.5, 5))
    image = axis.imshow(np.log1p(matrix), cmap="Blues")
    labels = [f"{g:g}" for g in DOSE_CLASSES_G]
    axis.set_xticks(range(N_DOSE_CLASSES), labels, rotation=90)
    axis.set_yticks(range(N_DOSE_CLASSES), labels)
    axis.set_xlabel("recommended (g/day)")
    axis.set_ylabel("prescribed (g/day)")
    for i in range(N_DOSE_CLASSES):
        for j in range(N_DOSE_CLASSES):
            if matrix[i, j]:
                axis.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6)
    figure.colorbar(image, ax=axis, label="log(1 + visits)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
