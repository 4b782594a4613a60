"""Service commands of the ``epidose`` CLI (serve, feedback, sandbox)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the service's subcommands to the root group."""
