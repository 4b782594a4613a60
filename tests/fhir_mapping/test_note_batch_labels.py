"""The second fresh hand-written batch keeps the notes README's labelling conventions.

The batch is scored as it is; a label that breaks a convention (an unknown item, a wrong type, a
denial without its count) would quietly move the figures, so the conventions are checked here.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fhir_mapping.notes import ITEMS
from tests.fhir_mapping.note_scores import NOTES

FLAGS = ("seizure_since_last_visit", "seizure_last_3_months", "seizure_last_6_months", "somnolence", "irritability", "aggression", "behaviour_adverse_effect")
WHOLE = ("seizure_count_since_last_visit", "seizure_duration_class")
MONTHS = ("seizure_free_months", "seizure_months_ago")
EFFECTS = ("somnolence", "irritability", "aggression")


def rows() -> list[dict]:
    lines = (NOTES / "handwritten_fresh2.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_each_language_has_at_least_160_distinct_sentences() -> None:
    batch = rows()
    assert len({row["text"] for row in batch}) == len(batch)
    languages = Counter(row["language"] for row in batch)
    assert set(languages) == {"en", "zh"}
    assert min(languages.values()) >= 160


@pytest.mark.parametrize("row", rows(), ids=lambda row: row["text"][:40])
def test_labels_follow_the_readme(row: dict) -> None:
    labels = row["labels"]
    assert set(row) == {"text", "labels", "language"}
    assert set(labels) <= set(ITEMS)
    for item, value in labels.items():
        if item in FLAGS:
            assert isinstance(value, bool), item
        elif item in WHOLE:
            assert type(value) is int and value >= 0, item
        else:
            assert item in MONTHS and not isinstance(value, bool) and value > 0, item
    if labels.get("seizure_duration_class") is not None:
        assert labels["seizure_duration_class"] in (0, 1, 2, 3)
    if labels.get("seizure_since_last_visit") is False:
        assert labels.get("seizure_count_since_last_visit") == 0 and labels.get("seizure_duration_class") == 0
    if labels.get("seizure_since_last_visit") is True:
        assert labels.get("seizure_count_since_last_visit", 1) > 0 and labels.get("seizure_duration_class", 1) > 0
    if labels.get("behaviour_adverse_effect") is False:
        assert all(labels.get(effect) is False for effect in EFFECTS)
    if any(labels.get(effect) is True for effect in EFFECTS):
        assert labels.get("behaviour_adverse_effect") is True
    if "seizure_free_months" in labels:
        free = labels["seizure_free_months"]
        assert labels.get("seizure_last_3_months") is (False if free >= 3 else None)
        assert labels.get("seizure_last_6_months") is (False if free >= 6 else None)
