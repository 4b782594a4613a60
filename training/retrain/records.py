"""Run records: what each retraining run did and why, in ``runs.jsonl`` or the shared database."""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.retrain.settings import RetrainSettings


@dataclass
class RunRecord:
    """What one run did and why: one JSON object per line in ``runs.jsonl``."""

    run_id: str
    started: str
    finished: str | None = None
    decision: str = "failed"
    """promoted, refused or failed."""
    reason: str = ""
    model_version: str | None = None
    """The version in service when the run ended."""
    champion_version: str | None = None
    candidate_version: str | None = None
    pulled_resources: int = 0
    """Resources new to the store in this run."""
    fetched_resources: int = 0
    """Resources received from the source (new or already stored)."""
    pull: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    """{"candidate": {...}, "champion": {...}} as compared by the gate."""
    gate: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage: pull, data, train, evaluate."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as null, so every record is standard JSON.

    >>> strict_json({"a": [float("nan"), 1.5]})
    {'a': [None, 1.5]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def shared_database(settings: RetrainSettings) -> Any:
    """The PostgreSQL database shared by every host (EPIDOSE_DATABASE_URL), or None for one host's files."""
    from training.database import is_postgres_url
    from training.database import shared_database as database_at

    return database_at(settings.database_url) if is_postgres_url(settings.database_url) else None


def append_record(path: Path, record: RunRecord, database: Any = None) -> None:
    """Append one run record: a row of the shared database, else one JSON line (fsync'd)."""
    line = json.dumps(strict_json(record.as_dict()), sort_keys=True, default=str, allow_nan=False)
    if database is not None:
        database.execute("INSERT INTO retrain_runs (run_id, record) VALUES (?, ?)", (record.run_id, line))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_records(path: Path, database: Any = None) -> list[dict[str, Any]]:
    """Every run record, oldest first (unreadable lines skipped)."""
    if database is not None:
        lines = [row["record"] for row in database.query("SELECT record FROM retrain_runs ORDER BY id").rows]
    elif path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        return []
    records = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            if line.strip():
                records.append(json.loads(line))
    return records
