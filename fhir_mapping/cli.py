"""Mapping commands of the ``epidose`` CLI (``epidose map``)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the mapping subcommands to the root group."""
