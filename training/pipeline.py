"""Train one policy from a data folder and write its model folder (shared by the CLI and the default model)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from fhir_mapping.errors import InputError
from training.artifact.save import save_model
from training.dataset import Dataset, LoadedData, VisitTable, build_dataset, load_data, visit_table
from training.evaluation import agreement
from training.policies import Policy, PolicyConfig, make_policy


def prepare(data: str | Path | LoadedData, seed: int, *, adverse_effect_weight: float = 0.0) -> tuple[LoadedData, VisitTable, Dataset]:
    """Load (if a path), tabulate every visit (rewards with the optional adverse-effect term) and split by patient."""
    loaded = data if isinstance(data, LoadedData) else load_data(data)
    table = visit_table(loaded.timelines, loaded.behaviour, adverse_effect_weight=adverse_effect_weight)
    if len(table) == 0:
        raise InputError(f"no visits found in {loaded.source}")
    return loaded, table, build_dataset(table, seed)


def validation_metrics(policy: Policy, dataset: Dataset) -> dict[str, Any]:
    """Quick checks on the validation split: top-1 agreement and label-bound violations."""
    data = dataset.validation
    if len(data) == 0:
        return {}
    chosen = policy.act(data.states, data.masks)
    return {"validation_top1_agreement": float(np.mean(chosen == data.actions)),
            "validation_safety_violations": agreement.safety_violations(chosen, data.masks),
            "validation_visits": len(data)}


def train_model(
    data: str | Path | LoadedData,
    out_dir: str | Path,
    config: PolicyConfig,
    *,
    split_seed: int = 0,
    progress: bool = False,
    prepared: tuple[LoadedData, VisitTable, Dataset] | None = None,
) -> tuple[Path, Policy, Dataset]:
    """Fit ``config`` on the training split of ``data`` and save the model folder at ``out_dir``."""
    weight = float(getattr(config, "adverse_effect_weight", 0.0))
    if prepared is not None and weight:
        prepared = prepare(prepared[0], split_seed, adverse_effect_weight=weight)  # same visits, other rewards
    loaded, table, dataset = prepared if prepared is not None else prepare(data, split_seed, adverse_effect_weight=weight)
    policy = make_policy(config, dataset.train.states.shape[1])
    fit_started = time.process_time()
    policy.fit(dataset.train, progress=progress, validation=dataset.validation)
    fit_cpu = time.process_time() - fit_started
    metrics = validation_metrics(policy, dataset)
    metrics["train_seconds"] = policy.history.seconds
    metrics["train_cpu_seconds"] = round(fit_cpu, 2)
    metrics["steps"] = policy.history.total_steps
    extra = {
        "split_seed": dataset.seed,
        "split_sizes": {name: len(ids) for name, ids in dataset.splits.items()},
        "data_source": Path(loaded.source).name,
        "behaviour_truth": table.behaviour_probs is not None,
        "train_cpu_seconds": metrics["train_cpu_seconds"],  # the fit alone, CPU of this process
    }
    folder = save_model(out_dir, policy, imputation=dataset.imputation, train=dataset.train, metrics=metrics,
                        extra_metadata=extra)
    save_confidence_thresholds(folder, loaded, table, dataset)
    return folder, policy, dataset


def save_confidence_thresholds(folder: Path, loaded: LoadedData, table: VisitTable, dataset: Dataset,
                               *, max_points: int | None = None) -> Any:
    """Choose the confidence thresholds on the validation children (simulator truth) and save them in the folder.

    On data that is not a simulator cohort there is no truth to choose on: nothing is written and the
    loaded model uses :func:`training.inference.default_thresholds`.
    """
    from training.artifact.save import write_json
    from training.evaluation.confidence import DEFAULT_POINTS, choose_thresholds, decision_points
    from training.evaluation.simulated import cohort_setup
    from training.inference import CONFIDENCE_FILE, load_inference_model

    if cohort_setup(loaded.source) is None:
        return None
    model = load_inference_model(folder)
    points = decision_points(loaded.source, model, table, dataset.splits["validation"],
                             max_points=DEFAULT_POINTS if max_points is None else max_points, seed=dataset.seed)
    thresholds = choose_thresholds(points, model)
    write_json(Path(folder) / CONFIDENCE_FILE, thresholds.to_json())
    return thresholds
