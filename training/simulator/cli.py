"""CLI commands (stub until implemented)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach this module's subcommands to the root group."""
