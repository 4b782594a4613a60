"""The service serves the project's BECT follow-up Questionnaire at its stable URL, without a token."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from fhir_mapping.questionnaire import QUESTIONNAIRE_URL, questionnaire


def test_questionnaire_is_served_at_its_stable_url_without_a_token(make_app: Callable[..., Flask]) -> None:
    client = make_app(auth=True).test_client()
    answer = client.get("/fhir/Questionnaire/bect-follow-up")
    assert answer.status_code == 200 and answer.mimetype == "application/fhir+json"
    body = answer.get_json(force=True)
    assert body == questionnaire() and body["url"] == QUESTIONNAIRE_URL
    assert QUESTIONNAIRE_URL.endswith("/fhir/Questionnaire/bect-follow-up")
    assert client.get("/cds-services").status_code == 401  # the rest still needs a token
