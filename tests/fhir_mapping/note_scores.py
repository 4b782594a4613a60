"""Precision and recall of the note extractor per item, against labelled sentences."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_mapping.notes import ITEMS, read_sentence

NOTES = Path(__file__).resolve().parent / "notes"


@dataclass
class Score:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positive + self.false_negative
        return self.true_positive / expected if expected else 1.0


def load(name: str) -> list[dict[str, Any]]:
    """The labelled sentences of one file (labels that are null are dropped: not stated)."""
    rows = [json.loads(line) for line in (NOTES / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["labels"] = {k: v for k, v in row["labels"].items() if v is not None}
    return rows


def same(item: str, expected: Any, found: Any) -> bool:
    """Equal values; months within 10% (a week is 0.23 months however it is rounded)."""
    if item in ("seizure_free_months", "seizure_months_ago"):
        return isinstance(found, (int, float)) and abs(float(found) - float(expected)) <= 0.1 * float(expected) + 0.05
    return type(found) is type(expected) and found == expected


def score(rows: Iterable[Mapping[str, Any]], read: Callable[[str], Mapping[str, Any]] = read_sentence) -> tuple[dict[str, Score], list[str]]:
    """Per item scores over the rows (a wrong value is a false positive and a false negative), and the errors."""
    scores = {item: Score() for item in ITEMS}
    errors: list[str] = []
    for row in rows:
        expected, found = row["labels"], read(row["text"])
        for item in ITEMS:
            if item in expected and item in found and same(item, expected[item], found[item]):
                scores[item].true_positive += 1
                continue
            if item in found:
                scores[item].false_positive += 1
            if item in expected:
                scores[item].false_negative += 1
            if item in found or item in expected:
                errors.append(f"{item}: expected {expected.get(item)!r}, found {found.get(item)!r} in {row['text']!r}")
    return scores, errors


def table(scores: Mapping[str, Score]) -> str:
    """A plain-text table of the scores."""
    lines = [f"{'item':34} {'labelled':>8} {'precision':>9} {'recall':>7}"]
    for item, s in scores.items():
        labelled = s.true_positive + s.false_negative
        if labelled or s.false_positive:
            lines.append(f"{item:34} {labelled:8d} {s.precision:9.3f} {s.recall:7.3f}")
    return "\n".join(lines)
