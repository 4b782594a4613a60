"""``epidose train`` and ``epidose evaluate``: fit a policy on FHIR data, and judge a model honestly."""

from __future__ import annotations

from pathlib import Path

import click

from training.default_model import DEFAULT_CONFIG
from training.policies.config import CONFIGS

# Every configuration training knows, so a study's variant can be trained by name.
CONFIG_NAMES = tuple(CONFIGS)
CONFIG_HELP = ("Policy to train. conservative_light (default, what the service builds and serves): DQN with a light "
               "CQL penalty (alpha 0.03) that stays near the physicians' doses where data are thin; conservative: the "
               "same with alpha 1; conservative_ae: conservative with an adverse-effect term in the reward; paper: the "
               "published DQN as described (its loss can diverge: read the report); double: double DQN; bc: behaviour "
               "cloning of the physicians; forest: a random-forest classifier baseline.")


def register(group: click.Group) -> None:
    """Attach ``train`` and ``evaluate`` to the root group."""
    group.add_command(train)
    group.add_command(evaluate)


@click.command()
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="Cohort folder (DIR/ndjson) or any FHIR NDJSON/JSON export.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Model folder to write.")
@click.option("--config", "config_name", type=click.Choice(CONFIG_NAMES), default=DEFAULT_CONFIG, show_default=True,
              help=CONFIG_HELP)
@click.option("--steps", type=int, default=None, help="Gradient steps (default: the configuration's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the patient split and the training.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on standard error.")
def train(data_dir: Path, out_dir: Path, config_name: str, steps: int | None, seed: int, progress: bool) -> None:
    """Train a dose policy on the training split of DATA and write the model folder OUT."""
    from training.pipeline import train_model
    from training.policies import named_config

    config = named_config(config_name, steps=steps, seed=seed)
    folder, policy, dataset = train_model(data_dir, out_dir, config, split_seed=seed, progress=progress)
    sizes = ", ".join(f"{name} {len(ids)}" for name, ids in dataset.splits.items())
    click.echo(f"{config.name}: {policy.history.total_steps} steps in {policy.history.seconds:.1f} s "
               f"(patients: {sizes}) -> {folder}")


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Model folder to evaluate (written by epidose train, or a registry version's folder).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, path_type=Path),
              help="Cohort folder (DIR/ndjson) or FHIR NDJSON/JSON export; a simulated cohort also gives true outcomes.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Report folder to write.")
@click.option("--split", type=click.Choice(("test", "all")), default="test", show_default=True,
              help="Score the model's held-out test patients, or every patient (data it never saw).")
def evaluate(model_dir: Path, data_dir: Path, out_dir: Path, split: str) -> None:
    """Write REPORT/metrics.json, report.md and plots for MODEL on DATA (true values on simulator data)."""
    from training.dataset import load_data, split_patients, visit_table
    from training.evaluation.report import evaluate_model
    from training.evaluation.simulated import true_values_for_models
    from training.inference import load_inference_model

    loaded = load_data(data_dir)
    table = visit_table(loaded.timelines, loaded.behaviour)
    model = load_inference_model(model_dir)
    true_values = None
    if loaded.is_cohort:
        seed = int(model.metadata.get("split_seed", 0))
        patients = table.patient_ids if split == "all" else split_patients(table.patient_ids, seed)["test"]
        true_values = true_values_for_models(data_dir, {"model": model}, patients,
                                             gamma=float(model.config.get("gamma", 0.9)))
    metrics = evaluate_model(model_dir, loaded, out_dir, split=split, table=table, true_values=true_values)
    click.echo(f"top-1 {metrics['top1_agreement']:.3f}, safety violations {metrics['safety_violations']}, "
               f"report -> {Path(out_dir) / 'report.md'}")
