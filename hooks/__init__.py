"""CDS Hooks service definitions and prefetch templates, as data (``*.json`` beside this file)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def service_definitions() -> list[dict[str, Any]]:
    """Every service definition in this package, sorted by id."""
    found = []
    for entry in resources.files(__name__).iterdir():
        if entry.name.endswith(".json"):
            found.append(json.loads(entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda d: d["id"])
