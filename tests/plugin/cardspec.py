"""The CDS Hooks 2.0 card rules (§Card Attributes) as a checker used by every test that gets cards."""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest

INDICATORS = {"info", "warning", "critical"}
ACTION_TYPES = {"create", "update", "delete"}
SELECTION = {"at-most-one", "any"}


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def check_response(body: Any) -> list[dict[str, Any]]:
    """Raise AssertionError unless ``body`` is a valid CDS Hooks response; return its cards."""
    assert isinstance(body, dict) and isinstance(body.get("cards"), list), body
    for card in body["cards"]:
        check_card(card)
    return body["cards"]


def check_card(card: dict[str, Any]) -> None:
    assert _is_uuid(card.get("uuid")), "card uuid"
    summary = card.get("summary")
    assert isinstance(summary, str) and 0 < len(summary) < 140, summary
    assert card.get("indicator") in INDICATORS
    source = card.get("source")
    assert isinstance(source, dict) and isinstance(source.get("label"), str) and source["label"]
    if "detail" in card:
        assert isinstance(card["detail"], str) and card["detail"]
    suggestions = card.get("suggestions")
    if suggestions is not None:
        assert suggestions, "omit empty optional arrays"
        assert card.get("selectionBehavior") in SELECTION, "selectionBehavior is required with suggestions"
        for suggestion in suggestions:
            assert isinstance(suggestion.get("label"), str) and suggestion["label"]
            assert _is_uuid(suggestion.get("uuid"))
            for action in suggestion.get("actions") or []:
                assert action.get("type") in ACTION_TYPES
                assert isinstance(action.get("description"), str)
                if action["type"] in ("create", "update"):
                    resource = action["resource"]
                    if resource.get("resourceType") == "MedicationRequest":
                        MedicationRequest.model_validate(resource)
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons") or []:
        assert reason.get("code") and reason.get("system") and reason.get("display")
    for link in card.get("links") or []:
        assert link.get("type") in ("absolute", "smart") and link.get("label") and link.get("url")
