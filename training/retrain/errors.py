"""What can go wrong talking to a FHIR server: every error derives from :class:`FhirError`."""

from __future__ import annotations

from fhir_mapping.errors import EpidoseError


class FhirError(EpidoseError):
    """Any failure talking to the FHIR server."""


class FhirConnectionError(FhirError):
    """The server could not be reached or dropped the connection (after retries)."""


class FhirTimeoutError(FhirError):
    """The server did not answer within the request timeout (after retries)."""


class FhirMalformedResponse(FhirError):
    """The server answered, but not with what FHIR promises (bad JSON, not a Bundle, foreign link)."""


class FhirHttpError(FhirError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


class FhirAuthError(FhirHttpError):
    """401 or 403, or a token request that failed."""


class FhirNotFound(FhirHttpError):
    """404 or 410."""


class FhirRateLimited(FhirHttpError):
    """429 Too Many Requests (after retries)."""


class FhirServerError(FhirHttpError):
    """5xx (after retries)."""


class FhirPagingError(FhirError):
    """Fewer results arrived across the pages than the first page announced (the result set moved
    under offset paging); the pull must be repeated rather than trusted."""


class BulkExportError(FhirError):
    """A $export that failed, reported errors, or did not finish in time."""
