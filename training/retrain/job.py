"""One retraining run: pull what is new, train a candidate, compare it with the champion, gate, record.

``retrain_once(settings)`` is the one job function: ``epidose retrain --once``, the scheduler and the
tests all call it. It never raises for an expected failure (server down, bad page, training error):
the run is recorded as ``failed`` and the model in service is left alone.

The gate is :mod:`training.retrain.gate`; the run records :mod:`training.retrain.records`.

Both models are scored on the same patient-level held-out split: a patient is held out when a hash of
its id (with the split seed) falls below ``holdout_fraction``, so a patient stays on the same side as
the data grows and a champion trained by an earlier run never saw the held-out patients either.
Each model reads the held-out raw features through its own imputation statistics.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from training.artifact.check import check_model_folder
from training.artifact.registry import ModelRegistry, open_registry
from training.database import file_try_lock
from training.evaluation.score import BEHAVIOUR_STEPS
from training.retrain.gate import GATED_ESTIMATORS, gate
from training.retrain.records import RunRecord, append_record, shared_database, strict_json
from training.retrain.settings import RetrainSettings

log = logging.getLogger(__name__)

CHAMPION_CONFIG_FILE: Final = "config.json"

TrueValue = Callable[[Any, Any, np.ndarray], float | None]
"""(loaded model, held-out visit table, its recommendations) → the policy's true value on simulated data."""
ProfileCheck = Callable[[Any, Any], dict[str, Any] | None]
"""(loaded model, held-out visit table) → {"passed", "ci_low_by_profile"}: beats the physician under every PD profile."""


# -- data ------------------------------------------------------------------------------------------


def held_out(patient_id: str, fraction: float, seed: int) -> bool:
    """Whether a patient belongs to the held-out split: stable as data grows, fixed by the seed.

    >>> held_out("p1", 0.0, 0), held_out("p1", 1.0 - 1e-12, 0)
    (False, True)
    """
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_table(table: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(training, held-out) visit tables split by patient with :func:`held_out`."""
    holdout = [p for p in table.patient_ids if held_out(p, fraction, seed)]
    train = [p for p in table.patient_ids if p not in set(holdout)]
    if not holdout or not train:
        raise ValueError(f"{len(table.patient_ids)} patients are too few for a held-out split")
    return table.subset(train), table.subset(holdout)


def load_visit_table(resources: Sequence[Mapping[str, Any]], truth_dir: Path | None = None) -> Any:
    """Resources from the store → timelines → the visit table (raw features, actions, rewards, masks)."""
    from fhir_mapping.build import build_timelines
    from fhir_mapping.inputs import collect_resources
    from training.dataset import visit_table

    collected, _problems = collect_resources(list(resources))
    timelines = build_timelines(collected)
    return visit_table(timelines, behaviour_from_truth(truth_dir))


def store_visit_table(store: Any, truth_dir: Path | None = None) -> Any:
    """:func:`load_visit_table` of a :class:`training.retrain.resources.ResourceStore`'s ``latest()``, one patient's resources in memory at a time."""
    from training.dataset import visit_table

    return visit_table(list(store.patient_index().timelines()), behaviour_from_truth(truth_dir))


def behaviour_from_truth(truth_dir: Path | None) -> dict[tuple[str, str], list[float]] | None:
    """The simulator's physician probabilities per (patient, visit date) from ``truth/visits.jsonl``."""
    if truth_dir is None:
        return None
    from training.dataset import TRUTH_VISITS_FILE

    path = Path(truth_dir) / TRUTH_VISITS_FILE
    if not path.exists():
        return None
    behaviour: dict[tuple[str, str], list[float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("action_probabilities") is not None:
                behaviour[(str(row["patient_id"]), str(row["date"]))] = [float(p) for p in row["action_probabilities"]]
    return behaviour


def simulator_true_value(cohort_dir: Path, gamma: float) -> TrueValue | None:
    """True value by replaying the held-out simulated children under the model; None if not a cohort."""
    from training.evaluation.simulated import cohort_setup, true_values_for_models

    if cohort_setup(cohort_dir) is None:
        return None

    def value(model: Any, holdout_table: Any, recommended: np.ndarray) -> float | None:
        results = true_values_for_models(
            cohort_dir, {"model": model}, holdout_table.patient_ids, gamma=gamma, include_physician=False
        )
        return None if results is None else float(results["model"]["value"])

    return value


def simulator_profile_check(cohort_dir: Path, gamma: float) -> ProfileCheck | None:
    """Whether a model beats the physician under every PD profile on the held-out simulated children; None if not a cohort."""
    from training.evaluation.simulated import beats_physician_everywhere, cohort_setup, sensitivity

    if cohort_setup(cohort_dir) is None:
        return None

    def check(model: Any, holdout_table: Any) -> dict[str, Any] | None:
        rows = sensitivity(cohort_dir, {"model": model}, holdout_table.patient_ids, gamma=gamma)
        if rows is None:
            return None
        passed, bounds = beats_physician_everywhere(rows, "model")
        return {"passed": passed, "ci_low_by_profile": bounds}

    return check


# -- training ----------------------------------------------------------------------------------------


def champion_config(registry: ModelRegistry) -> dict[str, Any] | None:
    """The training configuration of the model in service, or None before the first promotion."""
    path = registry.current_path()
    if path is None:
        return None
    return dict(json.loads((path / CHAMPION_CONFIG_FILE).read_text(encoding="utf-8")))


def train_candidate(
    config_json: Mapping[str, Any],
    train_table: Any,
    out_dir: Path,
    *,
    shuffle_rewards_seed: int | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Fit a policy of the given configuration on the training table and write its model folder.

    ``shuffle_rewards_seed`` permutes the rewards across transitions before training: a candidate
    made worse on purpose, used to show the gate refuses it.
    """
    from fhir_mapping import features
    from training.artifact.save import save_model
    from training.dataset import to_transitions
    from training.policies import config_from_json, make_policy

    config = config_from_json(dict(config_json))
    imputation = features.Imputation.fit(train_table.values, train_table.observed)
    train = to_transitions(train_table, imputation)
    if shuffle_rewards_seed is not None:
        rows = train.transition_rows
        rng = np.random.default_rng(shuffle_rewards_seed)
        train.rewards[rows] = train.rewards[rng.permutation(rows)]
    policy = make_policy(config, int(train.states.shape[1]))
    policy.fit(train)
    metadata = dict(extra_metadata or {})
    if shuffle_rewards_seed is not None:
        metadata["shuffled_rewards"] = True
    return save_model(out_dir, policy, imputation=imputation, train=train, extra_metadata=metadata)


CandidateTrainer = Callable[..., Path]


# -- comparison on the held-out split ---------------------------------------------------------------


def behaviour_probabilities(train_table: Any, holdout_table: Any, *, steps: int = BEHAVIOUR_STEPS, seed: int = 0) -> np.ndarray:
    """π_b on the held-out visits, as the evaluation report estimates it (training.evaluation.score)."""
    from training.evaluation.score import behaviour_policies

    (behaviour,) = behaviour_policies(train_table, [holdout_table], steps=steps, seed=seed)
    return behaviour.probabilities


def evaluate_on_holdout(
    model_dir: Path,
    holdout_table: Any,
    behaviour: np.ndarray,
    *,
    gamma: float,
    seed: int,
    true_value: TrueValue | None = None,
    bootstrap_samples: int = 500,
    profile_check: ProfileCheck | None = None,
) -> dict[str, Any]:
    """Gate metrics of one model folder on the held-out visits (same visits, same π_b for every model).

    Scored by the evaluation report's own function; the off-policy values use Q̂ ≡ 0 (WDR becomes
    per-decision weighted importance sampling), and only the gated estimators are kept.
    """
    from training.evaluation.score import held_out_metrics, score_split
    from training.inference import load_inference_model

    model = load_inference_model(model_dir)
    evaluated = score_split(model, holdout_table)
    recommended = evaluated.recommended
    scored = held_out_metrics(evaluated, behaviour, gamma=gamma, seed=seed, samples=bootstrap_samples)
    agreement = scored["agreement"]
    ope = {name: values for name, values in scored["ope"].items() if name in GATED_ESTIMATORS}
    metrics: dict[str, Any] = {
        "version": model.version,
        "top1_agreement": float(agreement["top1_agreement"]),
        "within_one_step": float(agreement["within_one_step"]),
        "safety_violations": int(scored["safety_violations"]),
        "ope": {name: {k: float(v) for k, v in values.items()} for name, values in ope.items()},
        "true_value": None,
        "heldout_visits": len(holdout_table),
        "heldout_patients": len(holdout_table.patient_ids),
    }
    if true_value is not None:
        value = true_value(model, holdout_table, recommended)
        metrics["true_value"] = None if value is None else float(value)
    if profile_check is not None:
        metrics["beats_physician_everywhere"] = profile_check(model, holdout_table)
    return metrics


# -- the gate --------------------------------------------------------------------------------------


# -- the job ---------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_resource_store(settings: RetrainSettings) -> Any:
    """The raw resource store: the format already in the folder, else ``settings.store_format``."""
    from training.retrain.parquet_store import open_store

    return open_store(settings.store_dir, settings.store_format)


def pull(settings: RetrainSettings) -> Any:
    """Run the configured pull (server search, server $export, or the local folder) into the store."""
    from training.retrain.pull import pull_bulk, pull_from_folder, pull_from_server

    store = open_resource_store(settings)
    if settings.fhir_server_url:
        from training.retrain.client import FhirClient

        client = FhirClient.from_settings(settings)
        return pull_bulk(client, store) if settings.bulk_export else pull_from_server(client, store)
    if settings.source_dir is None:
        raise ValueError("neither EPIDOSE_FHIR_SERVER_URL nor EPIDOSE_RETRAIN_SOURCE is set")
    return pull_from_folder(settings.source_dir, store)


def retrain_once(
    settings: RetrainSettings,
    *,
    trainer: CandidateTrainer = train_candidate,
    true_value: TrueValue | None = None,
    truth_dir: Path | None = None,
) -> RunRecord:
    """Pull, train a candidate, compare, promote or refuse; append and return the run record.

    On simulated data (``settings.simulator_dir``, or a source folder that is a simulator cohort)
    the truth files give the physicians' probabilities and the true values; ``true_value`` and
    ``truth_dir`` override them (tests).
    """
    record = RunRecord(run_id=uuid.uuid4().hex[:12], started=_now())
    database = shared_database(settings)
    registry = open_registry(settings.registry_dir, settings.keep, settings.database_url, check=check_model_folder)
    # Across hosts sharing PostgreSQL an advisory lock admits one run; on one host, a lock file.
    lock = database.try_lock("retrain-run") if database is not None else file_try_lock(settings.data_dir / "run.lock")
    with lock as acquired:
        if not acquired:
            # The CLI and the scheduler may overlap; a second run would pull into the same store.
            record.reason = "another retraining run is in progress"
            record.model_version = registry.current_version()
            record.finished = _now()
            append_record(settings.runs_file, record, database)
            return record
        return _run(settings, record, registry, trainer=trainer, true_value=true_value, truth_dir=truth_dir,
                    database=database)


def _run(
    settings: RetrainSettings,
    record: RunRecord,
    registry: ModelRegistry,
    *,
    trainer: CandidateTrainer,
    true_value: TrueValue | None,
    truth_dir: Path | None,
    database: Any = None,
) -> RunRecord:
    record.champion_version = registry.current_version()
    record.model_version = record.champion_version
    work = Path(tempfile.mkdtemp(prefix="run-", dir=_ensure(settings.data_dir / "work")))
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        record.seconds[stage] = round(now - clock, 3)
        clock = now

    try:
        result = pull(settings)
        lap("pull")
        record.pulled_resources, record.fetched_resources = result.new, result.fetched
        record.pull = result.as_dict()
        if result.new == 0 and record.champion_version is not None:
            record.decision, record.reason = "refused", "no new resources since the last run"
            return record

        cohort = settings.simulator_dir or settings.source_dir
        truth_dir = truth_dir or cohort
        store = open_resource_store(settings)
        table = store_visit_table(store, truth_dir)
        train_table, holdout_table = split_table(table, settings.holdout_fraction, settings.split_seed)
        record.data = {
            "patients": len(table.patient_ids), "visits": len(table),
            "train_patients": len(train_table.patient_ids), "heldout_patients": len(holdout_table.patient_ids),
            "stored_resources": store.count(),
        }
        config = champion_config(registry) or initial_config(settings)
        record.config = config
        lap("data")
        candidate_dir = trainer(config, train_table, work / "candidate", extra_metadata={"run_id": record.run_id})
        lap("train")
        gamma = float(config.get("gamma", 0.9))
        if true_value is None and cohort is not None:
            true_value = simulator_true_value(Path(cohort), gamma)
        profile_check = simulator_profile_check(Path(cohort), gamma) if cohort is not None else None
        record.data["simulated"] = true_value is not None
        behaviour = behaviour_probabilities(train_table, holdout_table, steps=settings.behaviour_steps, seed=settings.split_seed)
        score = functools.partial(
            evaluate_on_holdout, holdout_table=holdout_table, behaviour=behaviour, gamma=gamma,
            seed=settings.split_seed, true_value=true_value, bootstrap_samples=settings.bootstrap_samples,
        )
        champion_path = registry.current_path()
        # The every-profile comparison with the physician is enforced only against a champion (gate, check 5).
        metrics = {"candidate": score(candidate_dir, profile_check=profile_check if champion_path is not None else None)}
        if champion_path is not None:
            metrics["champion"] = score(champion_path)
        record.metrics = metrics
        lap("evaluate")
        promote, reason, checks = gate(
            metrics["candidate"], metrics.get("champion"),
            agreement_margin=settings.agreement_margin, estimator=settings.ope_estimator,
        )
        record.gate = checks
        # Every candidate is kept (unpromoted when refused) so a refusal can be inspected or overridden.
        record.candidate_version = registry.add(
            candidate_dir, strict_json({"run_id": record.run_id, "metrics": metrics["candidate"], "promoted": promote})
        )
        if promote:
            registry.promote(record.candidate_version)
            record.decision = "promoted"
        else:
            record.decision = "refused"
        record.reason = reason
    except Exception as error:  # any failure is a recorded "failed" run; the champion keeps serving
        record.decision = "failed"
        record.reason = f"{type(error).__name__}: {error}"
        record.error = "".join(traceback.format_exception_only(type(error), error)).strip()
        log.warning("retraining run %s failed: %s", record.run_id, record.reason)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        record.model_version = registry.current_version()
        record.finished = _now()
        append_record(settings.runs_file, record, database)
    return record


def initial_config(settings: RetrainSettings) -> dict[str, Any]:
    """The configuration of the very first model (no champion yet)."""
    from training.policies import named_config

    config = named_config(settings.initial_config, steps=settings.initial_steps)
    return config.to_json()


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
