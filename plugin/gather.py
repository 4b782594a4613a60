"""Data gathering for a hook call: prefetch first, then the EHR's FHIR server for absent keys.

CDS Hooks 2.0 (§Prefetch Template, §Providing FHIR Resources): an absent prefetch key was not
satisfied and the service fetches it from ``fhirServer`` with ``fhirAuthorization`` (Bearer); a
``null`` value means there is no such data; an OperationOutcome means the prefetch failed (the
mapping reports it as missing). Searches follow ``next`` links, and every request runs within a total
time budget so the response stays well inside the ~500 ms the spec asks for. The access token is
sent only to the ``fhirServer`` origin, never to a ``next`` link elsewhere, and never logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin

import requests

from fhir_mapping.inputs import reference_id
from fhir_mapping.references import origin
from plugin.jsonbody import JsonBodyError, parse_json

LOG = logging.getLogger("epidose.fhir")
MAX_PAGES = 10  # per prefetch key; each page is one request inside the budget
MAX_REDIRECTS = 3  # followed only within the FHIR server's origin
MAX_FETCH_THREADS = 16  # per worker process, shared by all calls (greenlets under gevent)
DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024  # per prefetch key, all pages together (after decompression)
READ_PIECE_BYTES = 64 * 1024
_TOKEN = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


@dataclass
class Gathered:
    """Prefetch values by key (as received or fetched) and the keys that could not be obtained."""

    values: dict[str, Any] = field(default_factory=dict)
    unobtainable: dict[str, str] = field(default_factory=dict)  # key -> reason (no identifiers)
    fetched: tuple[str, ...] = ()
    problems: list[tuple[str, str]] = field(default_factory=list)  # (item, detail) of data read but not usable


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill ``{{context.x}}`` tokens; None when a token has no value in the context."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        key = name[len("context."):] if name.startswith("context.") else name
        value = context.get(key)
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
            missing = True
            return ""
        return quote(str(value), safe="")

    rendered = _TOKEN.sub(substitute, template)
    return None if missing else rendered


class FhirFetcher:
    """Fetches absent prefetch keys from the FHIR server within a time budget and a size cap.

    Fetches run on a pool of at most ``max_threads`` threads owned by the fetcher, so a slow server
    cannot make threads pile up across calls; each fetch reads its answer in small pieces and stops
    at the call's deadline (or when the call gives up), so none outlives its call by more than one
    socket read timeout.
    """

    def __init__(self, timeout_seconds: float, budget_seconds: float, session: requests.Session | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, max_threads: int = MAX_FETCH_THREADS) -> None:
        self.timeout = timeout_seconds
        self.budget = budget_seconds
        self.max_response_bytes = max_response_bytes
        self.session = session or requests.Session()
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fhir-fetch")

    def gather(self, templates: Mapping[str, str], prefetch: Mapping[str, Any] | None, context: Mapping[str, Any],
               fhir_server: str | None, authorization: Mapping[str, Any] | None) -> Gathered:
        result = Gathered()
        absent: dict[str, str] = {}
        prefetch = prefetch or {}
        for key, template in templates.items():
            if key in prefetch:
                result.values[key] = prefetch[key]
                continue
            query = render_template(template, context)
            if query is None:
                result.unobtainable[key] = "the prefetch template needs a context value that was not sent"
            elif not fhir_server:
                result.unobtainable[key] = "not prefetched and no fhirServer given"
            else:
                absent[key] = query
        if not absent or not fhir_server:
            return result
        headers = {"Accept": "application/fhir+json"}
        token = (authorization or {}).get("access_token")
        if isinstance(token, str) and token:
            headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + self.budget
        base = fhir_server.rstrip("/") + "/"
        call = _Call(deadline)
        futures = {key: self._pool.submit(self._fetch_safely, base, query, headers, call) for key, query in absent.items()}
        try:
            for key, future in futures.items():
                try:
                    value, reason = future.result(timeout=max(0.0, deadline - time.monotonic()) + 0.02)
                except FutureTimeout:
                    value, reason = None, "the FHIR server did not answer within the time budget"
                if reason is None:
                    result.values[key] = _own_patient_only(key, value, context.get("patientId"))
                else:
                    result.unobtainable[key] = reason
        finally:
            call.cancelled.set()  # fetches still running stop at their next read
            for future in futures.values():
                future.cancel()
        result.fetched = tuple(k for k in absent if k in result.values)
        return result

    def _fetch_safely(self, base: str, query: str, headers: dict[str, str], call: _Call) -> tuple[Any, str | None]:
        """A fetch whose every failure is a reason: a malformed answer is unobtainable data, not an error."""
        try:
            return self._fetch(base, query, headers, call)
        except _Unobtainable as error:
            return None, str(error)
        except (ValueError, TypeError, KeyError, AttributeError, requests.RequestException) as error:
            return None, f"the FHIR server's answer could not be used ({type(error).__name__})"

    def _fetch(self, base: str, query: str, headers: dict[str, str], call: _Call) -> tuple[Any, str | None]:
        url: str | None = urljoin(base, query)
        origin = _origin(base)
        document: Any = None
        entries: list[Any] = []
        received = 0
        for _ in range(MAX_PAGES):
            if url is None:
                break
            if _origin(url) != origin:
                break  # never send the access token (or trust paging) to another origin
            page, size = self._get(url, origin, headers, call, self.max_response_bytes - received)
            received += size
            if page is None:
                if document is None:
                    raise _Unobtainable("the FHIR server has no such resource (404)")
                raise _Unobtainable("a page of the FHIR server's answer is missing (404)")
            if not isinstance(page, dict):
                raise _Unobtainable("the FHIR server answered with something that is not a resource")
            if page.get("resourceType") != "Bundle":
                if document is not None:
                    raise _Unobtainable("the FHIR server's next page is not a Bundle")
                return page, None
            page_entries = page.get("entry")
            if page_entries is not None and not isinstance(page_entries, list):
                raise _Unobtainable("the FHIR server answered a Bundle whose entry is not a list")
            if document is None:
                document = {k: v for k, v in page.items() if k not in ("entry", "link")}
            entries.extend(e for e in page_entries or [] if isinstance(e, dict))
            url = _next_link(page, base)
        if document is None:
            raise _Unobtainable("the FHIR server answered nothing usable")
        document["entry"] = entries
        return document, None

    def _get(self, url: str, origin: tuple[str, str], headers: dict[str, str], call: _Call,
             allowance: int) -> tuple[Any, int]:
        """One resource or page as parsed JSON (None for 404) and its size, following same-origin redirects."""
        for _ in range(MAX_REDIRECTS + 1):
            remaining = call.remaining()
            if remaining <= 0.005:
                raise _Unobtainable("the FHIR server did not answer within the time budget")
            try:
                response = self.session.get(url, headers=headers, timeout=min(self.timeout, remaining), stream=True,
                                            allow_redirects=False)
            except requests.Timeout:
                raise _Unobtainable("the FHIR server did not answer in time") from None
            except requests.RequestException as error:
                raise _Unobtainable(f"the FHIR server could not be reached ({type(error).__name__})") from None
            with response:
                if response.is_redirect:
                    target = urljoin(url, response.headers.get("Location", ""))
                    if _origin(target) != origin:
                        raise _Unobtainable("the FHIR server redirected to another origin (not followed)")
                    url = target
                    continue
                if response.status_code == 404:
                    return None, 0
                if response.status_code >= 400:
                    raise _Unobtainable(f"the FHIR server answered {response.status_code}")
                body = self._read(response, call, allowance)
            try:
                return parse_json(body), len(body)
            except JsonBodyError:
                raise _Unobtainable("the FHIR server answered with JSON this service does not accept") from None
        raise _Unobtainable("the FHIR server redirected too many times")

    def _read(self, response: requests.Response, call: _Call, allowance: int) -> bytes:
        """The body, read piece by piece so that the size cap and the deadline hold while it arrives."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > allowance:
            raise _Unobtainable(f"the FHIR server's answer is larger than {self.max_response_bytes} bytes")
        body = bytearray()
        while True:
            if call.cancelled.is_set() or call.remaining() <= 0:
                raise _Unobtainable("the FHIR server did not answer within the time budget")
            piece = response.raw.read1(READ_PIECE_BYTES, decode_content=True)
            if not piece:
                return bytes(body)
            body += piece
            if len(body) > allowance:  # counted after decompression: a small gzip cannot expand past it
                raise _Unobtainable(f"the FHIR server's answer is larger than {self.max_response_bytes} bytes")


class _Unobtainable(Exception):
    """A reason the data could not be obtained (no identifiers, no tokens)."""


class _Call:
    """The deadline of one hook call's fetches and the flag that stops them once the call gives up."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cancelled = threading.Event()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def _own_patient_only(key: str, value: Any, patient_id: Any) -> Any:
    """A fetched search Bundle without the entries about another patient than the one in context.

    The service asked for this patient's data only; a server that ignores a search parameter it does
    not support (the FHIR search rules allow that: the self link then omits it) answers with every
    patient's resources. Those are dropped, as the mapping ignores other patients' prefetched
    resources, and logged for the integrator (the key and the count, no identifiers).
    """
    if not isinstance(value, dict) or value.get("resourceType") != "Bundle" or not isinstance(patient_id, str):
        return value
    kept, others = [], 0
    for entry in value.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        owner = _owner(resource)
        if owner is not None and owner != patient_id:
            others += 1
        else:
            kept.append(entry)
    if not others:
        return value
    LOG.warning("FHIR search for prefetch key %r answered %d resource(s) of other patients (the server may not "
                "support its patient search parameter); they were dropped", key, others)
    return {**value, "entry": kept}


def _owner(resource: Any) -> str | None:
    """The patient a resource is about (its subject or patient reference), None when it names none."""
    if not isinstance(resource, dict):
        return None
    if resource.get("resourceType") == "Patient":
        return resource.get("id") if isinstance(resource.get("id"), str) else None
    for field_name in ("subject", "patient"):
        owner = reference_id(resource.get(field_name), "Patient")
        if owner is not None:
            return owner
    return None


def _origin(url: str) -> tuple[str, str]:
    try:
        return origin(url)
    except ValueError:
        raise _Unobtainable("the FHIR server gave a URL that cannot be parsed") from None


def _next_link(bundle: Mapping[str, Any], base: str) -> str | None:
    links = bundle.get("link")
    if links is None:
        return None
    if not isinstance(links, list):
        raise _Unobtainable("the FHIR server answered a Bundle whose link is not a list")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            target = link.get("url")
            if not isinstance(target, str):
                raise _Unobtainable("the FHIR server's next link has no URL")
            try:
                return urljoin(base, target)
            except ValueError:
                raise _Unobtainable("the FHIR server's next link cannot be parsed") from None
    return None
