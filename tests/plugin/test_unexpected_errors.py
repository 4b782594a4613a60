"""An unexpected failure is a JSON OperationOutcome 500, and its log names where, never the data in its message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.plugin.fixtures import hook_request, patient_resources


def test_unexpected_error_is_outcome_and_log_has_no_identifiers(make_app: Callable[..., Flask],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A bug raising with a patient id in its message yields a plain 500 and a log without that id."""

    patient = "-".join(("secret", "child", "4711"))  # built at run time: the id is data, not source text

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot handle Patient/{patient}")

    monkeypatch.setattr("plugin.api.decide", broken)
    client = make_app().test_client()
    with caplog.at_level(logging.ERROR):
        response = client.post("/cds-services/epidose-patient-view",
                               json=hook_request("patient-view", patient_resources()))
    assert response.status_code == 500
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert "secret-child-4711" not in response.get_data(as_text=True)
    assert "RuntimeError" in caplog.text and "broken" in caplog.text  # where it failed
    assert "secret-child-4711" not in caplog.text
