"""A small FHIR R4 read client for the retraining job: search with paging, Bulk Data $export, auth.

- Authentication: a static bearer token, or SMART Backend Services (client credentials with a signed
  JWT assertion, RS384 or ES384; token endpoint discovered from ``.well-known/smart-configuration``;
  the access token cached until shortly before it expires).
- Every request has a timeout and is retried on 429, 5xx, timeouts and lost connections, with
  exponential backoff and full jitter, honouring ``Retry-After``.
- HTTP statuses become exceptions in exactly one place, :meth:`FhirClient._raise_for_status`; all
  errors derive from :class:`FhirError`.

References: FHIR R4 search paging (http://hl7.org/fhir/R4/http.html#paging), SMART Backend Services
(https://hl7.org/fhir/smart-app-launch/backend-services.html), Bulk Data Access 2.0
(https://hl7.org/fhir/uv/bulkdata/export.html).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from fhir_mapping.references import same_origin
from training.retrain.auth import Auth, BearerAuth, SmartBackendAuth
from training.retrain.errors import (
    BulkExportError,
    FhirAuthError,
    FhirConnectionError,
    FhirError,
    FhirHttpError,
    FhirMalformedResponse,
    FhirNotFound,
    FhirPagingError,
    FhirRateLimited,
    FhirServerError,
    FhirTimeoutError,
)
from training.retrain.settings import RetrainSettings

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
FHIR_JSON = "application/fhir+json"


# -- the client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a failed request again."""

    retries: int = 4
    """Retries after the first attempt."""
    backoff_base: float = 0.5
    """First backoff ceiling in seconds; doubles each retry (full jitter below it)."""
    backoff_max: float = 30.0
    """Longest single wait, also the cap on a server's Retry-After."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        jitter = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            # The server said when; add a little jitter so many clients do not return in lockstep.
            return min(self.backoff_max, retry_after) + rng.uniform(0.0, min(ceiling, 1.0) * 0.1)
        return jitter


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent or unreadable.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after(None) is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now())


@dataclass
class Page:
    """One page of a search: its resources and the URL of the next page, if any."""

    resources: list[dict[str, Any]]
    next_url: str | None
    total: int | None = None


class FhirClient:
    """Read access to one FHIR R4 server."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        page_size: int = 200,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        bulk_poll_limit: float = 3600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth or Auth()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.session = session or requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.bulk_poll_limit = bulk_poll_limit
        self.requests_made = 0
        self.retries_made = 0

    @classmethod
    def from_settings(cls, settings: RetrainSettings, **overrides: Any) -> FhirClient:
        """A client configured from the retraining settings (URL, auth, timeout, retries)."""
        if not settings.fhir_server_url:
            raise ValueError("no FHIR server URL configured")
        session = overrides.pop("session", None) or requests.Session()
        auth: Auth
        if settings.auth == "bearer" and settings.bearer_token:
            auth = BearerAuth(settings.bearer_token)
        elif settings.auth == "smart" and settings.smart_client_id and settings.smart_private_key:
            auth = SmartBackendAuth(
                settings.fhir_server_url,
                client_id=settings.smart_client_id,
                private_key=Path(settings.smart_private_key).read_text(encoding="utf-8"),
                algorithm=settings.smart_algorithm,
                scope=settings.smart_scope,
                key_id=settings.smart_key_id,
                session=session,
                timeout=settings.request_timeout,
            )
        else:
            auth = Auth()
        return cls(
            settings.fhir_server_url,
            auth=auth,
            timeout=settings.request_timeout,
            retry=RetryPolicy(settings.retries, settings.backoff_base, settings.backoff_max),
            page_size=settings.page_size,
            session=session,
            bulk_poll_limit=settings.bulk_poll_limit,
            **overrides,
        )

    # -- low level: one request, retried, statuses raised in one place ---------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        accept_statuses: Sequence[int] = (),
        json_body: Any = None,
    ) -> requests.Response:
        """Send a request with timeout, auth and retries; return the response or raise a FhirError.

        Statuses in ``accept_statuses`` (e.g. 202 while a $export runs) are returned, not retried.
        """
        full_url = self._absolute(url)
        reauthenticated = False
        attempt = 0
        while True:
            request_headers = {"Accept": FHIR_JSON, **(headers or {})}
            if json_body is not None:
                request_headers["Content-Type"] = FHIR_JSON
            if authenticated:
                request_headers.update(self.auth.headers())
            self.requests_made += 1
            try:
                response = self.session.request(
                    method, full_url, params=params, headers=request_headers, timeout=self.timeout,
                    data=None if json_body is None else json.dumps(json_body),
                )
            except requests.Timeout as error:
                failure: FhirError = FhirTimeoutError(f"{method} {self._describe(full_url)} timed out")
                failure.__cause__ = error
                retry_after = None
            except requests.RequestException as error:
                failure = FhirConnectionError(f"{method} {self._describe(full_url)}: {type(error).__name__}")
                failure.__cause__ = error
                retry_after = None
            else:
                if response.status_code in accept_statuses or response.ok:
                    return response
                if response.status_code == 401 and authenticated and not reauthenticated:
                    # An expired or revoked token: fetch a new one once, without counting a retry.
                    reauthenticated = True
                    self.auth.invalidate()
                    continue
                try:
                    self._raise_for_status(response)
                except FhirHttpError as error:
                    if error.status not in RETRYABLE_STATUSES:
                        raise
                    failure, retry_after = error, error.retry_after
            if attempt >= self.retry.retries:
                raise failure
            delay = self.retry.delay(attempt, retry_after, self._rng)
            log.info("retrying %s after %s (%.2f s)", method, type(failure).__name__, delay)
            self.retries_made += 1
            attempt += 1
            self._sleep(delay)

    @staticmethod
    def _raise_for_status(response: requests.Response) -> None:
        """Raise the FhirHttpError of an HTTP response's error status (nothing below 400)."""
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code, _outcome_text(response), parse_retry_after(response.headers.get("Retry-After"))
            )

    def get_json(self, url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object (a resource or a Bundle)."""
        response = self.request("GET", url, params=params)
        return _json_object(response)

    # -- search with paging -----------------------------------------------------------------------

    def search_pages(self, resource_type: str, params: Mapping[str, str] | None = None) -> Iterator[Page]:
        """Pages of a type-level search, following ``next`` links until there is none."""
        query = {"_count": str(self.page_size), **(params or {})}
        yield from self._follow(self.get_json(resource_type, query))

    def _follow(self, bundle: dict[str, Any]) -> Iterator[Page]:
        """A searchset page and the pages its ``next`` links lead to (refusing a loop)."""
        seen: set[str] = set()
        while True:
            page = _read_searchset(bundle, self.base_url)
            yield page
            if page.next_url is None:
                return
            if page.next_url in seen:
                raise FhirMalformedResponse("search paging loops back to a page already read")
            seen.add(page.next_url)
            bundle = self.get_json(page.next_url)

    def search(self, resource_type: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """All resources of ``resource_type`` matching ``params``, page by page.

        Raises FhirPagingError when fewer arrive than the first page's ``total`` announced: with
        offset paging, a resource updated mid-search moves to the end and shifts the next pages, so
        one result can be skipped silently.
        """
        announced: int | None = None
        received = 0
        for number, page in enumerate(self.search_pages(resource_type, params)):
            if number == 0:
                announced = page.total
            received += len(page.resources)
            yield from page.resources
        if announced is not None and received < announced:
            raise FhirPagingError(f"{resource_type} search announced {announced} results, {received} arrived")

    def search_many(self, queries: Sequence[tuple[str, Mapping[str, str]]], *, per_batch: int = 100) -> Iterator[dict[str, Any]]:
        """Resources of many searches, sent ``per_batch`` at a time as batch Bundles (one POST each).

        Each entry's first page comes back inside the batch response; further pages follow ``next``.
        A server that refuses batches (400, 404, 405, 501) is asked one search at a time instead.
        """
        for start in range(0, len(queries), per_batch):
            chunk = queries[start : start + per_batch]
            entries = [
                {"request": {"method": "GET", "url": f"{resource_type}?{urlencode({'_count': str(self.page_size), **params})}"}}
                for resource_type, params in chunk
            ]
            try:
                response = self.request(
                    "POST", "", json_body={"resourceType": "Bundle", "type": "batch", "entry": entries}
                )
            except FhirHttpError as error:
                if error.status not in (400, 404, 405, 501):
                    raise
                for resource_type, params in chunk:
                    yield from self.search(resource_type, params)
                continue
            body = _json_object(response)
            answers = body.get("entry")
            if body.get("resourceType") != "Bundle" or not isinstance(answers, list) or len(answers) != len(chunk):
                raise FhirMalformedResponse("batch answered without one entry per search")
            for answer in answers:
                yield from self._batch_entry(answer)

    def _batch_entry(self, answer: Any) -> Iterator[dict[str, Any]]:
        if not isinstance(answer, dict):
            raise FhirMalformedResponse("batch entry is not an object")
        status_text = str((answer.get("response") or {}).get("status", ""))
        try:
            status = int(status_text.split()[0])
        except (ValueError, IndexError) as error:
            raise FhirMalformedResponse("batch entry without a status") from error
        if status >= 400:
            raise error_for_status(status, "batch entry failed")
        bundle = answer.get("resource")
        if not isinstance(bundle, dict):
            raise FhirMalformedResponse("batch entry without its search Bundle")
        announced: int | None = None
        received = 0
        for page in self._follow(bundle):
            announced = page.total if announced is None else announced
            received += len(page.resources)
            yield from page.resources
        if announced is not None and received < announced:
            raise FhirPagingError(f"a batched search announced {announced} results, {received} arrived")

    # -- Bulk Data $export ------------------------------------------------------------------------

    def bulk_export(
        self,
        *,
        level: str = "Patient",
        types: Sequence[str] = (),
        since: str | None = None,
    ) -> tuple[str | None, Iterator[dict[str, Any]]]:
        """Run a $export to completion; returns (transactionTime, resources from the NDJSON files).

        ``level`` is ``Patient`` (all patients), ``Group/<id>`` or ``""`` (system level).
        """
        params = {}
        if types:
            params["_type"] = ",".join(types)
        if since:
            params["_since"] = since
        path = f"{level}/$export" if level else "$export"
        kickoff = self.request(
            "GET", path, params=params, headers={"Prefer": "respond-async"}, accept_statuses=(202,)
        )
        if kickoff.status_code != 202 or not kickoff.headers.get("Content-Location"):
            raise BulkExportError(f"$export kick-off answered {kickoff.status_code} without a status URL")
        status_url = kickoff.headers["Content-Location"]
        deadline = time.monotonic() + self.bulk_poll_limit
        while True:
            status = self.request("GET", status_url, accept_statuses=(202,))
            if status.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise BulkExportError("$export did not complete in time")
            wait = parse_retry_after(status.headers.get("Retry-After"))
            self._sleep(min(self.retry.backoff_max, wait if wait is not None else self.retry.backoff_base))
        manifest = _json_object(status)
        if manifest.get("error"):
            raise BulkExportError(f"$export reported {len(manifest['error'])} error file(s)")
        outputs = manifest.get("output")
        if not isinstance(outputs, list):
            raise FhirMalformedResponse("$export manifest without an output list")
        needs_token = bool(manifest.get("requiresAccessToken", True))
        transaction_time = manifest.get("transactionTime")
        files = [str(item["url"]) for item in outputs if isinstance(item, dict) and item.get("url")]

        def resources() -> Iterator[dict[str, Any]]:
            for url in files:
                response = self.request(
                    "GET", url, headers={"Accept": "application/fhir+ndjson"}, authenticated=needs_token
                )
                for number, line in enumerate(response.text.splitlines(), start=1):
                    if not line.strip():
                        continue
                    try:
                        resource = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise FhirMalformedResponse(f"$export file line {number} is not JSON") from error
                    if not isinstance(resource, dict) or "resourceType" not in resource:
                        raise FhirMalformedResponse(f"$export file line {number} is not a resource")
                    yield resource

        return (str(transaction_time) if transaction_time else None), resources()

    # -- helpers ----------------------------------------------------------------------------------

    def _absolute(self, url: str) -> str:
        if url.startswith(("http://", "https://")):
            return url
        if not url:
            return self.base_url
        return urljoin(self.base_url + "/", url.lstrip("/"))

    def _describe(self, url: str) -> str:
        """The resource type (or operation) a URL addresses, for messages: ids and queries can
        identify patients, and they are never logged.

        >>> FhirClient("http://h/fhir")._describe("http://h/fhir/Patient/123?name=x")
        'Patient/…'
        >>> FhirClient("http://h/fhir")._describe("http://h/fhir")
        '[base]'
        """
        path = urlsplit(url).path
        base_path = urlsplit(self.base_url).path
        relative = path[len(base_path) :] if path.startswith(base_path) else path
        segments = [segment for segment in relative.split("/") if segment]
        if not segments:
            return "[base]"
        return segments[0] + ("/…" if len(segments) > 1 else "")


def error_for_status(status: int, message: str, retry_after: float | None = None) -> FhirHttpError:
    """The one place where an error status (of a response or of a batch entry) becomes an exception."""
    if status in (401, 403):
        return FhirAuthError(status, message)
    if status in (404, 410):
        return FhirNotFound(status, message)
    if status == 429:
        return FhirRateLimited(status, message, retry_after=retry_after)
    if status >= 500:
        return FhirServerError(status, message, retry_after=retry_after)
    return FhirHttpError(status, message, retry_after=retry_after)


def _outcome_text(response: requests.Response) -> str:
    """The OperationOutcome's issue codes, else the status reason.

    Diagnostics are left out on purpose: servers echo search parameters there, which can identify
    patients, and these messages reach logs and run records.
    """
    try:
        body = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue") or []
        codes = sorted({str(i.get("code")) for i in issues if isinstance(i, dict) and i.get("code")})
        return ("OperationOutcome: " + ", ".join(codes)) if codes else (response.reason or "error")
    return response.reason or "error"


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise FhirMalformedResponse("response body is not JSON") from error
    if not isinstance(body, dict):
        raise FhirMalformedResponse("response body is not a JSON object")
    return body


def _read_searchset(bundle: Mapping[str, Any], base_url: str) -> Page:
    """Resources and next link of a searchset Bundle; FhirMalformedResponse when it is not one."""
    if bundle.get("resourceType") != "Bundle":
        raise FhirMalformedResponse("search answered with something other than a Bundle")
    entries = bundle.get("entry") or []
    links = bundle.get("link") or []
    if not isinstance(entries, list) or not isinstance(links, list):
        raise FhirMalformedResponse("Bundle entry or link is not a list")
    resources = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not resource.get("resourceType") or not resource.get("id"):
            raise FhirMalformedResponse("Bundle entry without a resource with type and id")
        if resource["resourceType"] == "OperationOutcome":
            continue  # search warnings (mode=outcome), not data
        resources.append(resource)
    next_url = None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            next_url = str(link["url"])
    if next_url is not None and not same_origin(next_url, base_url):
        # Following it would send our token to another host.
        raise FhirMalformedResponse("next link points outside the FHIR server")
    total = bundle.get("total")
    return Page(resources, next_url, total if isinstance(total, int) and not isinstance(total, bool) else None)
