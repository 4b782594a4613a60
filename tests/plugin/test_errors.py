"""The one table from errors to HTTP statuses and OperationOutcomes, and the one tree under EpidoseError."""

from __future__ import annotations

import pytest
from flask import Flask

from fhir_mapping.errors import EpidoseError, InputError
from fhir_mapping.problems import MappingError
from plugin import errors
from plugin.errors import (
    BadRequest,
    ModelUnavailable,
    NotFound,
    PreconditionFailed,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    http_status,
)
from plugin.jsonbody import JsonBodyError
from plugin.load import LoadError
from plugin.sandbox import SandboxError
from plugin.security import Refused
from training.artifact.check import ModelCheckError
from training.artifact.registry import RegistryError
from training.database import DatabaseUnavailable
from training.inference import ArtifactError
from training.retrain.errors import FhirError, FhirNotFound
from training.retrain.scheduler import SchedulerAlreadyRunning
from training.settings_base import SettingsError


@pytest.mark.parametrize(("error", "status"), [
    (BadRequest("x"), 400), (Unauthorized("x"), 401), (Refused("expired"), 401), (NotFound("x"), 404),
    (PreconditionFailed("x"), 412), (UnsupportedMediaType("x"), 415), (ModelUnavailable("x"), 503),
    (DatabaseUnavailable("x"), 503), (ServiceError("x"), 400), (ServiceError("x", 415), 415),
    (ArtifactError("x"), 500), (ValueError("x"), 500),
])
def test_each_error_has_one_status(error: Exception, status: int) -> None:
    """Statuses come from the table by class (subclasses first); one explicit status wins; anything else is 500."""
    assert http_status(error) == status


@pytest.mark.parametrize("kind", [InputError, MappingError, SettingsError, ArtifactError, ModelCheckError, RegistryError,
                                  DatabaseUnavailable, FhirError, FhirNotFound, SchedulerAlreadyRunning, JsonBodyError,
                                  LoadError, SandboxError, ServiceError, Refused])
def test_every_deliberate_error_descends_from_one_root(kind: type[Exception]) -> None:
    """Every exception class epidose raises on purpose is an EpidoseError, so one handler reaches them all."""
    assert issubclass(kind, EpidoseError)


def test_the_service_answers_each_with_its_outcome() -> None:
    """A 503 is an OperationOutcome with a fatal 'transient' issue and the message; a 401 is bare."""
    app = Flask(__name__)
    errors.init_app(app)

    @app.get("/model")
    def _model() -> str:
        raise ModelUnavailable("no model is loaded yet")

    @app.get("/database")
    def _database() -> str:
        raise DatabaseUnavailable("the sqlite database is unavailable; nothing of this call was stored")

    @app.get("/token")
    def _token() -> str:
        raise Refused("expired")

    client = app.test_client()
    answer = client.get("/model")
    assert answer.status_code == 503
    assert answer.get_json()["issue"] == [{"severity": "fatal", "code": "transient", "diagnostics": "no model is loaded yet"}]
    assert client.get("/database").get_json()["issue"][0]["code"] == "transient"
    refused = client.get("/token")
    assert refused.status_code == 401 and refused.data == b""
