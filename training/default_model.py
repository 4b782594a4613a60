"""The model the service builds at first start when none exists: conservative DQN on a simulated cohort.

No real patient data ships with epidose, so a fresh installation trains its first model on the
simulator's cohort (training.simulator), with the conservative configuration (CQL: stays close to the
physicians' doses where data are thin), evaluates it on held-out simulated children and writes the
model folder with its report. The cohort is written in the ``mixed`` dialect (half the children as
coded reports, half as EHR-shaped records with notes and gaps), so the model learns states with the
seizure history partly missing, as real charts give it; the report gives agreement and true value
per dialect of the test children (``report/dialects.json``). It is labelled as trained on simulated data in its metadata; replace it
by retraining on your own FHIR data.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Final

DEFAULT_PATIENTS: Final = 1500
DEFAULT_STEPS: Final = 6000
DEFAULT_CONFIG: Final = "conservative"
DEFAULT_DIALECT: Final = "mixed"


def build_default_model(out_dir: str | Path, *, patients: int = DEFAULT_PATIENTS, steps: int = DEFAULT_STEPS,
                        seed: int = 0, progress: bool = True, dialect: str = DEFAULT_DIALECT) -> Path:
    """Simulate a cohort (temporary folder), train the conservative policy, evaluate it, write the model folder."""
    from training.artifact import write_json
    from training.evaluation.dialects import dialect_report
    from training.evaluation.report import evaluate_model, published_metrics
    from training.evaluation.simulated import true_values_for_models
    from training.inference import load_inference_model
    from training.pipeline import prepare, train_model
    from training.policies import named_config
    from training.simulator.cohort import write_cohort

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="epidose-cohort-") as temporary:
        cohort = Path(temporary) / "cohort"
        write_cohort(cohort, patients, seed, dialect=dialect)
        prepared = prepare(cohort, seed)
        loaded, table, dataset = prepared
        config = dataclasses.replace(named_config(DEFAULT_CONFIG, seed=seed), steps=steps)
        folder, _, _ = train_model(cohort, out, config, split_seed=seed, progress=progress, prepared=prepared)
        model = load_inference_model(folder)
        gamma = float(model.config.get("gamma", 0.9))
        true_values = true_values_for_models(cohort, {"model": model}, dataset.splits["test"], gamma=gamma, dialect=dialect,
                                             without_rails=True, lifted_rails=("R-NO-START-AFTER-SINGLE-SEIZURE",))
        metrics = evaluate_model(folder, loaded, folder / "report", table=table, true_values=true_values,
                                 bootstrap_samples=200)
        by_dialect = dialect_report(cohort, model, dataset.splits["test"], gamma=gamma)
    metadata_path = folder / "metadata.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    metadata["training_data"] = f"simulated cohort ({patients} children, seed {seed}, FHIR dialect {dialect}): not real patients"
    metadata_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_json(folder / "metrics.json", published_metrics(metrics))
    if by_dialect is not None:
        write_json(folder / "report" / "dialects.json", by_dialect)
    return folder
