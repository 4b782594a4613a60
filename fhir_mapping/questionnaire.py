"""The project's FHIR R4 Questionnaire for a BECT follow-up visit, and reading its responses.

The Questionnaire (``fhir_mapping/data/questionnaire-bect-follow-up.json``) asks the visit items of
the state (seizure since the last visit, count, longest duration, 3 and 6 months, behavioural
adverse effect, examination, assessment); each item's ``linkId`` is the mapping's key and its answers
are the project codes of :mod:`fhir_mapping.codes`. The service serves it at
``/fhir/Questionnaire/bect-follow-up`` so any form filler can capture the state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from fhir_mapping import codes

QUESTIONNAIRE_FILE: Final = Path(__file__).resolve().parent / "data" / "questionnaire-bect-follow-up.json"
QUESTIONNAIRE_URL: Final = "https://epidose.org/fhir/Questionnaire/bect-follow-up"
READ_STATUSES: Final = frozenset({"completed", "amended"})
MAX_SEIZURE_COUNT: Final = 10000  # as fhir_mapping.build: more is a typing error
CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "seizure_duration_class": codes.DURATION_CLASSES,
    "physical_exam_class": codes.EXAM_CLASSES,
    "physician_assessment": codes.ASSESSMENT_CLASSES,
}


@lru_cache(maxsize=1)
def questionnaire() -> dict[str, Any]:
    """The Questionnaire resource (loaded once; callers must not modify it)."""
    loaded: dict[str, Any] = json.loads(QUESTIONNAIRE_FILE.read_text(encoding="utf-8"))
    return loaded


def item_types() -> dict[str, str]:
    """linkId → Questionnaire item type."""
    return {item["linkId"]: item["type"] for item in questionnaire()["item"]}


def answers_this(resource: Mapping[str, Any]) -> bool:
    """Whether a QuestionnaireResponse answers this Questionnaire (any version)."""
    canonical = resource.get("questionnaire")
    return isinstance(canonical, str) and canonical.split("|", 1)[0].strip() == QUESTIONNAIRE_URL


def _walk(items: object, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            where = f"{path}item[{index}]"
            yield where, item
            yield from _walk(item.get("item"), f"{where}.")


def read_response(resource: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The items answered (linkId → value: bool, int, or the ordinal index of a duration class, or an
    exam/assessment code) and what could not be read as (path, why)."""
    types = item_types()
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for path, item in _walk(resource.get("item"), ""):
        key = item.get("linkId")
        if not isinstance(key, str) or key not in types:
            continue
        answers = item.get("answer")
        if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
            continue  # not answered: not recorded
        answer = answers[0]
        kind = types[key]
        if kind == "boolean":
            value: Any = answer.get("valueBoolean")
            if not isinstance(value, bool):
                problems.append((f"{path}.answer[0]", f"{key} expects valueBoolean"))
                continue
        elif kind == "integer":
            value = answer.get("valueInteger")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEIZURE_COUNT:
                problems.append((f"{path}.answer[0]", f"{key} expects a whole number from 0 to {MAX_SEIZURE_COUNT}"))
                continue
        else:
            coding = answer.get("valueCoding")
            options = CHOICES[key]
            code = coding.get("code") if isinstance(coding, dict) else None
            if not (isinstance(coding, dict) and coding.get("system") == codes.EPIDOSE_SYSTEM and code in options):
                problems.append((f"{path}.answer[0]", f"{key} answer is not one of the project codes {', '.join(options)}"))
                continue
            value = options.index(code) if key == "seizure_duration_class" else code
        values[key] = value
    return values, problems
