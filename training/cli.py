"""Training commands of the ``epidose`` CLI, each family in its own module."""

from __future__ import annotations

import click

from training.commands_model import register as register_model
from training.commands_retrain import register as register_retrain
from training.simulator.cli import register as register_cohort


def register(group: click.Group) -> None:
    """Attach the training subcommands (cohort; train, evaluate; retrain, scheduler, models)."""
    register_cohort(group)
    register_model(group)
    register_retrain(group)
