"""The service's exceptions and their one translation into JSON responses with an OperationOutcome."""

from __future__ import annotations

import traceback
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from fhir_mapping.errors import EpidoseError
from training.database import DatabaseUnavailable

# FHIR OperationOutcome issue codes (http://hl7.org/fhir/issue-type) by HTTP status.
_ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               412: "incomplete", 413: "too-costly", 415: "not-supported", 422: "invalid", 500: "exception",
               503: "transient"}


class ServiceError(EpidoseError):
    """An error with an HTTP status and a message safe to show the caller (no identifiers, no tokens)."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    """JWT verification failed: answered with a bare 401 (CDS Hooks: no detail)."""

    status = 401


class PreconditionFailed(ServiceError):
    """Data needed to decide could not be obtained from prefetch or the FHIR server (CDS Hooks: 412)."""

    status = 412


class NotFound(ServiceError):
    status = 404


def operation_outcome(message: str, status: int) -> dict[str, Any]:
    """A FHIR OperationOutcome with one issue."""
    severity = "fatal" if status >= 500 else "error"
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": _ISSUE_CODE.get(status, "processing"), "diagnostics": message}]}


def error_response(message: str, status: int) -> Response:
    response = jsonify(operation_outcome(message, status))
    response.status_code = status
    return response


def bare_401() -> Response:
    """401 with an empty body, as CDS Hooks asks for invalid tokens."""
    return Response(status=401)


def init_app(app: Flask) -> None:
    """Register the handlers so every error is JSON, never an HTML trace."""

    @app.errorhandler(Unauthorized)
    def _unauthorized(error: Unauthorized) -> Response:
        return bare_401()

    @app.errorhandler(ServiceError)
    @app.errorhandler(DatabaseUnavailable)
    def _service_error(error: ServiceError | DatabaseUnavailable) -> Response:
        return error_response(error.message, error.status)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 401:
            return bare_401()
        return error_response(error.name, status)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Where it failed, but not the exception's message: that can carry request data (patient ids).
        frames = "".join(traceback.format_tb(error.__traceback__))
        app.logger.error("unexpected error: %s\n%s", type(error).__name__, frames)
        return error_response("internal error", 500)
