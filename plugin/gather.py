"""Data gathering for a hook call: prefetch first, then the EHR's FHIR server for absent keys.

CDS Hooks 2.0 (§Prefetch Template, §Providing FHIR Resources): an absent prefetch key was not
satisfied and the service fetches it from ``fhirServer`` with ``fhirAuthorization`` (Bearer); a
``null`` value means there is no such data; an OperationOutcome means the prefetch failed (the
mapping reports it as missing). Searches follow ``next`` links, and every request runs within a total
time budget so the response stays well inside the ~500 ms the spec asks for. The access token is
sent only to the ``fhirServer`` origin, never to a ``next`` link elsewhere, and never logged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

MAX_PAGES = 10  # per prefetch key; each page is one request inside the budget
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
    """Fetches absent prefetch keys from the FHIR server within a time budget."""

    def __init__(self, timeout_seconds: float, budget_seconds: float, session: requests.Session | None = None) -> None:
        self.timeout = timeout_seconds
        self.budget = budget_seconds
        self.session = session or requests.Session()

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
        pool = ThreadPoolExecutor(max_workers=min(4, len(absent)))
        try:
            futures = {key: pool.submit(self._fetch, base, query, headers, deadline) for key, query in absent.items()}
            for key, future in futures.items():
                try:
                    # Socket timeouts bound each read, not a slowly dripping answer: the budget does.
                    value, reason = future.result(timeout=max(0.0, deadline - time.monotonic()) + 0.02)
                except FutureTimeout:
                    value, reason = None, "the FHIR server did not answer within the time budget"
                if reason is None:
                    result.values[key] = value
                else:
                    result.unobtainable[key] = reason
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        result.fetched = tuple(k for k in absent if k in result.values)
        return result

    def _fetch(self, base: str, query: str, headers: dict[str, str], deadline: float) -> tuple[Any, str | None]:
        url: str | None = urljoin(base, query)
        origin = _origin(base)
        document: Any = None
        entries: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0.005:
                return None, "the FHIR server did not answer within the time budget"
            if _origin(url) != origin:
                break  # never send the access token to another origin
            try:
                response = self.session.get(url, headers=headers, timeout=min(self.timeout, remaining))
            except requests.Timeout:
                return None, "the FHIR server did not answer in time"
            except requests.RequestException as error:
                return None, f"the FHIR server could not be reached ({type(error).__name__})"
            if response.status_code == 404 and document is None:
                return None, "the FHIR server has no such resource (404)"
            if response.status_code >= 400:
                return None, f"the FHIR server answered {response.status_code}"
            try:
                page = response.json()
            except ValueError:
                return None, "the FHIR server answered with something that is not JSON"
            if not isinstance(page, dict):
                return None, "the FHIR server answered with something that is not a resource"
            if page.get("resourceType") != "Bundle":
                return page, None
            if document is None:
                document = {k: v for k, v in page.items() if k not in ("entry", "link")}
            entries.extend(e for e in page.get("entry") or [] if isinstance(e, dict))
            url = _next_link(page, base)
        if document is None:
            return None, "the FHIR server answered nothing usable"
        document["entry"] = entries
        return document, None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _next_link(bundle: Mapping[str, Any], base: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(base, link["url"])
    return None
