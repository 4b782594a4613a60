"""The service's exceptions and their one translation into JSON responses: an HTTP status and an OperationOutcome."""

from __future__ import annotations

import traceback
from typing import Any, Final

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from fhir_mapping.errors import EpidoseError
from training.database import DatabaseUnavailable

# FHIR OperationOutcome issue codes (http://hl7.org/fhir/issue-type) by HTTP status.
_ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               412: "incomplete", 413: "too-costly", 415: "not-supported", 422: "invalid", 500: "exception",
               503: "transient"}


class ServiceError(EpidoseError):
    """A hook call answered with an error status and a message safe to show the caller (no identifiers, no tokens).

    The status comes from :data:`HTTP_STATUS` by class; ``status`` given here overrides it for one
    error (prefer a named class).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self._status = status

    @property
    def status(self) -> int:
        return self._status if self._status is not None else http_status(self)


class BadRequest(ServiceError):
    """The request breaks the CDS Hooks contract or this service's bounds (400)."""


class Unauthorized(ServiceError):
    """JWT verification failed: answered with a bare 401 (CDS Hooks: no detail)."""


class PreconditionFailed(ServiceError):
    """Data needed to decide could not be obtained from prefetch or the FHIR server (CDS Hooks: 412)."""


class NotFound(ServiceError):
    """No such service or resource (404)."""


class UnsupportedMediaType(ServiceError):
    """A body that is not application/json (415)."""


class ModelUnavailable(ServiceError):
    """No model is loaded yet: cards cannot be made until one is promoted (503)."""


# The one table from errors to HTTP statuses; the first row whose class matches wins (subclasses first).
# The OperationOutcome's issue code follows the status (_ISSUE_CODE). An EpidoseError in no row is
# unexpected here and answered as any other exception: 500, "internal error", frames logged.
HTTP_STATUS: Final[tuple[tuple[type[EpidoseError], int], ...]] = (
    (Unauthorized, 401),
    (NotFound, 404),
    (PreconditionFailed, 412),
    (UnsupportedMediaType, 415),
    (ModelUnavailable, 503),
    (DatabaseUnavailable, 503),
    (BadRequest, 400),
    (ServiceError, 400),
)


def http_status(error: BaseException) -> int:
    """The HTTP status the service answers ``error`` with (500 for anything unexpected)."""
    explicit = getattr(error, "_status", None) if isinstance(error, ServiceError) else None
    if explicit is not None:
        return int(explicit)
    return next((status for kind, status in HTTP_STATUS if isinstance(error, kind)), 500)


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
    def _service_error(error: EpidoseError) -> Response:
        return error_response(error.message, http_status(error))

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
