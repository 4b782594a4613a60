"""The text of notes kept as a Binary on the FHIR server, fetched within the call's time budget.

A DocumentReference may hold its text by ``attachment.url`` (``Binary/<id>`` on the EHR's FHIR
server) instead of inline ``data``. The mapping does no I/O (:func:`fhir_mapping.notes.attachment_text`
reads a Binary only when it is given with the data), so on the service path the Binaries that the
notes name are read here, after the prefetch, with what is left of the same budget, and handed to
the mapping as Binary resources. Only URLs on the ``fhirServer`` origin and under its base are
fetched (the access token goes nowhere else); a note in a type that is not text is not fetched
(the mapping says why it is not read). Each answer is capped at :data:`MAX_BINARY_BYTES`. A note that
cannot be fetched is a named, non-blocking problem; the call goes on without its text.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import requests

from fhir_mapping.inputs import collect_resources
from fhir_mapping.notes import MAX_NOTE_CHARS, TEXT_CONTENT_TYPES
from plugin.gather import FhirFetcher, Gathered
from plugin.jsonbody import JsonBodyError, parse_json

# Where the fetched Binaries go among the gathered values (not a prefetch key of any service).
BINARIES_KEY: Final = "note-binaries"
# A note is read up to notes.MAX_NOTE_CHARS characters; 4 bytes per character of UTF-8 at most, and
# room for the JSON and base64 of a Binary resource (4/3) around it.
MAX_BINARY_BYTES: Final = MAX_NOTE_CHARS * 4 * 2
MAX_BINARIES: Final = 20  # per call: the newest notes first (the prefetch sorts by date)
ITEM: Final = "a note's text"


@dataclass(frozen=True)
class _Wanted:
    document: str  # "DocumentReference/<id>"
    url: str  # absolute, on the FHIR server
    binary_id: str


def wanted_binaries(values: Mapping[str, Any], fhir_server: str) -> tuple[list[_Wanted], list[tuple[str, str]]]:
    """The Binaries the gathered notes name by url and lack, and (item, detail) of those not fetched."""
    resources, _ = collect_resources(dict(values))
    have = {f"Binary/{r.get('id')}" for r in resources if r.get("resourceType") == "Binary"}
    base = fhir_server.rstrip("/") + "/"
    wanted: list[_Wanted] = []
    skipped: list[tuple[str, str]] = []
    for resource in resources:
        if resource.get("resourceType") != "DocumentReference" or resource.get("status") == "entered-in-error":
            continue
        label = f"DocumentReference/{resource.get('id')}"
        for entry in resource.get("content") or []:
            attachment = entry.get("attachment") if isinstance(entry, dict) else None
            if not isinstance(attachment, dict) or isinstance(attachment.get("data"), str):
                continue
            url = attachment.get("url")
            if not isinstance(url, str) or not url.strip() or url.startswith("#"):
                continue
            content_type = str(attachment.get("contentType") or "").split(";")[0].strip().lower()
            if content_type and content_type not in TEXT_CONTENT_TYPES:
                continue  # not text: the mapping names it as not read
            absolute = urljoin(base, url.strip())
            path = urlsplit(absolute).path.rstrip("/").split("/")
            if "_history" in path:
                path = path[: path.index("_history")]
            if _origin(absolute) != _origin(base) or not absolute.startswith(base) or len(path) < 2 or path[-2] != "Binary":
                skipped.append((ITEM, f"{label}: its text is at a url outside the EHR's FHIR server (or not a Binary), "
                                      "so it is not fetched; the seizure history it may hold is not read"))
                continue
            if f"Binary/{path[-1]}" in have or any(w.binary_id == path[-1] for w in wanted):
                continue
            if len(wanted) >= MAX_BINARIES:
                skipped.append((ITEM, f"{label}: more than {MAX_BINARIES} notes are kept as Binaries; the older ones "
                                      "are not fetched"))
                continue
            wanted.append(_Wanted(label, absolute, path[-1]))
    return wanted, skipped


def fetch_note_binaries(fetcher: FhirFetcher, gathered: Gathered, fhir_server: str | None,
                        authorization: Mapping[str, Any] | None, deadline: float) -> None:
    """Add the Binaries the gathered notes name to ``gathered`` (see the module docstring)."""
    if not fhir_server:
        return
    wanted, skipped = wanted_binaries(gathered.values, fhir_server)
    gathered.problems.extend(skipped)
    if not wanted:
        return
    headers = {"Accept": "application/fhir+json"}
    token = (authorization or {}).get("access_token")
    if isinstance(token, str) and token:
        headers["Authorization"] = f"Bearer {token}"
    fetched: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(max_workers=min(4, len(wanted)))
    try:
        futures = [(item, pool.submit(_fetch_one, fetcher, item, headers, deadline)) for item in wanted]
        for item, future in futures:
            try:
                binary, reason = future.result(timeout=max(0.0, deadline - time.monotonic()) + 0.02)
            except FutureTimeout:
                binary, reason = None, "the FHIR server did not answer within the time budget"
            except Exception as error:  # a fault of one fetch is that note's problem, never a failed call
                binary, reason = None, f"the fetch failed ({type(error).__name__})"
            if binary is not None:
                fetched.append(binary)
            else:
                gathered.problems.append((ITEM, f"{item.document}: its text (a Binary on the EHR's FHIR server) "
                                                f"could not be fetched: {reason}; the seizure history it may hold is not read"))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    # Data read from the server this call: the answer is not reused from the response cache.
    gathered.fetched = (*gathered.fetched, BINARIES_KEY)
    if fetched:
        gathered.values[BINARIES_KEY] = {"resourceType": "Bundle", "type": "collection",
                                         "entry": [{"resource": b} for b in fetched]}


def _fetch_one(fetcher: FhirFetcher, item: _Wanted, headers: dict[str, str], deadline: float) -> tuple[dict[str, Any] | None, str]:
    remaining = deadline - time.monotonic()
    if remaining <= 0.005:
        return None, "the FHIR server did not answer within the time budget"
    try:
        with fetcher.session.get(item.url, headers=headers, timeout=min(fetcher.timeout, remaining), stream=True,
                                 allow_redirects=False) as response:
            if response.status_code >= 400:
                return None, f"the FHIR server answered {response.status_code}"
            if response.status_code != 200:
                return None, f"the FHIR server answered {response.status_code} (redirects are not followed)"
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_BINARY_BYTES:
                return None, f"it is larger than {MAX_BINARY_BYTES // 1024} KiB, too large to be a note"
            body = bytearray()
            for chunk in response.iter_content(chunk_size=16384):
                body.extend(chunk)
                if len(body) > MAX_BINARY_BYTES:
                    return None, f"it is larger than {MAX_BINARY_BYTES // 1024} KiB, too large to be a note"
                if time.monotonic() > deadline:
                    return None, "the FHIR server did not answer within the time budget"
            content_type = response.headers.get("Content-Type", "")
    except requests.Timeout:
        return None, "the FHIR server did not answer in time"
    except requests.RequestException as error:
        return None, f"the FHIR server could not be reached ({type(error).__name__})"
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/fhir+json", "application/json"):
        # FHIR read of a Binary with Accept: application/fhir+json answers the resource (R4 Binary).
        try:
            resource = parse_json(bytes(body))
        except JsonBodyError as error:
            return None, f"the FHIR server's answer is not readable JSON ({error})"
        except ValueError:
            return None, "the FHIR server answered with something that is not JSON"
        if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
            return None, "the FHIR server answered with something that is not a Binary"
        return {"resourceType": "Binary", "id": item.binary_id, "contentType": resource.get("contentType"),
                "data": resource.get("data")}, ""
    # A server may answer the raw content in its own type instead (FHIR R4 Binary, "Serving Binary
    # Resources using the RESTful API").
    return {"resourceType": "Binary", "id": item.binary_id, "contentType": content_type or None,
            "data": base64.b64encode(bytes(body)).decode("ascii")}, ""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
