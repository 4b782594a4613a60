"""Training commands of the ``epidose`` CLI (cohort, train, evaluate, retrain, scheduler, models)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the training subcommands to the root group."""
