"""The root of every exception epidose raises on purpose, in the lowest layer so every package can use it.

Its message is safe to show a caller or a terminal: no patient identifiers, no tokens. The service
and the command line each translate it in one place (``plugin/errors.py``, ``plugin/cli``).
"""

from __future__ import annotations


class EpidoseError(Exception):
    """An error epidose raises on purpose, with a message safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
