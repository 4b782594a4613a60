"""Lenient reading of FHIR R4 input: Bundles, CDS Hooks prefetch objects, lists, JSON/NDJSON files.

Everything is reduced to a flat list of resource dicts. Nothing here validates a resource beyond
"a JSON object with a ``resourceType``": what matters is checked where it is used. What cannot be
read becomes a :class:`~fhir_mapping.problems.Problem`, never an exception.

Rules:
- a Bundle of any ``type`` (or none: the CDS Hooks sandbox sends ``draftOrders`` without one) is
  unwrapped recursively, ``searchset`` and ``transaction`` alike; entries without a ``resource``
  (e.g. a transaction's DELETE) are skipped; OperationOutcome entries of a searchset (``search.mode``
  ``outcome``) are warnings, not data;
- a CDS Hooks prefetch object is a dict without ``resourceType`` whose values are resources,
  Bundles or ``null``; ``null`` means "no such data" (no problem), an OperationOutcome means the
  prefetch failed (a ``missing`` problem naming the key); a whole CDS Hooks request (``hook`` and
  ``prefetch``) gives its prefetch (its ``context.draftOrders`` are read only by :func:`draft_orders`);
- resources with the same (type, id) are kept once (the first seen): prefetch templates overlap;
- a Bundle entry whose resource has no ``id`` gets one from its ``fullUrl`` (``urn:uuid:…`` or a URL),
  on a copy, so references by fullUrl resolve;
- files: ``.json`` (one resource or a Bundle), ``.ndjson`` (one resource per line), and folders in
  Bulk Data layout (``DIR/ndjson/*.ndjson`` or ``DIR/*.ndjson``, plus ``DIR/*.json``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any, Final

import orjson

from fhir_mapping.problems import Problem, ProblemKind

Resource = dict[str, Any]


def resource_label(resource: object) -> str:
    """``Type/id`` (or ``Type``) of a resource dict, for problems."""
    if not isinstance(resource, dict):
        return ""
    kind = resource.get("resourceType")
    kind = kind if isinstance(kind, str) else "?"
    ident = resource.get("id")
    return f"{kind}/{ident}" if isinstance(ident, str) and ident else kind


_UNWRAPPED_KINDS: Final = frozenset({"Bundle", "OperationOutcome"})  # read by _Collector.value, not kept as they are


class _Collector:
    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.problems: list[Problem] = []
        self._seen: dict[str, set[str]] = {}  # resourceType -> ids seen (first seen is kept)
        self.under_key: list[Resource] | None = None  # when set, every resource found (repeats too)

    def add(self, resource: Resource) -> None:
        if self.under_key is not None:
            self.under_key.append(resource)
        ident = resource.get("id")
        if isinstance(ident, str) and ident:
            seen = self._seen.get(resource["resourceType"])
            if seen is None:
                seen = self._seen[resource["resourceType"]] = set()
            elif ident in seen:
                return
            seen.add(ident)
        self.keep(resource)

    def keep(self, resource: Resource) -> None:
        """A resource seen for the first time (by type and id)."""
        self.resources.append(resource)

    def value(self, value: object, where: str, *, prefetch_key: str | None = None) -> None:
        """Read one JSON value: a resource, a Bundle, a prefetch object, a list, or null."""
        if value is None:
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.value(item, f"{where}[{index}]")
            return
        if not isinstance(value, dict):
            self.problems.append(Problem(ProblemKind.MALFORMED, f"expected a FHIR resource (a JSON object), got {type(value).__name__}", where, ""))
            return
        kind = value.get("resourceType")
        if kind is None:
            self._prefetch(value, where)
            return
        if not isinstance(kind, str) or not kind:
            self.problems.append(Problem(ProblemKind.MALFORMED, "resourceType is not a string", where, "resourceType"))
            return
        if kind == "Bundle":
            self._bundle(value, where)
        elif kind == "OperationOutcome":
            self._outcome(value, where, prefetch_key)
        else:
            self.add(value)

    def _prefetch(self, value: dict[str, Any], where: str) -> None:
        if isinstance(value.get("hook"), str) and "prefetch" in value:
            # A whole CDS Hooks request: its prefetch is the data. Its draftOrders are proposals, read
            # separately with draft_orders(), never mixed with what the child takes.
            self.value(value["prefetch"], where)
            return
        # A CDS Hooks prefetch object: {key: resource | Bundle | null}. Anything else is not FHIR.
        if not value or not all(item is None or isinstance(item, (dict, list)) for item in value.values()):
            self.problems.append(Problem(ProblemKind.MALFORMED, "a JSON object without resourceType that is not a prefetch object", where, "resourceType"))
            return
        for key, item in value.items():
            self.value(item, f"{where} prefetch.{key}" if where else f"prefetch.{key}", prefetch_key=str(key))

    def _bundle(self, bundle: dict[str, Any], where: str) -> None:
        entries = bundle.get("entry")
        if entries is None:
            return
        label = resource_label(bundle) or where
        if not isinstance(entries, list):
            self.problems.append(Problem(ProblemKind.MALFORMED, "Bundle.entry is not a list", label, "entry"))
            return
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.problems.append(Problem(ProblemKind.MALFORMED, "Bundle entry is not an object", label, f"entry[{index}]"))
                continue
            resource = entry.get("resource")
            if resource is None:
                continue
            if isinstance(resource, dict) and not resource.get("id") and isinstance(entry.get("fullUrl"), str):
                # Transaction entries often carry their identity only in fullUrl (urn:uuid:… or a URL),
                # and other entries reference them by it: give a copy that id (the input is not changed).
                ident = reference_id({"reference": entry["fullUrl"]})
                if ident:
                    resource = {**resource, "id": ident}
            search = entry.get("search")
            if isinstance(search, dict) and search.get("mode") == "outcome":
                self._outcome(resource, f"{label} entry[{index}]", None, warning=True)
                continue
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            if isinstance(kind, str) and kind and kind not in _UNWRAPPED_KINDS:
                self.add(resource)  # a plain resource (most entries): what value() does with it, without naming the place
                continue
            self.value(resource, f"{label} entry[{index}]")

    def _outcome(self, outcome: object, where: str, prefetch_key: str | None, *, warning: bool = False) -> None:
        details = []
        issues = outcome.get("issue") if isinstance(outcome, dict) else None
        if warning and not any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in (issues if isinstance(issues, list) else [])):
            return  # informational search outcomes ("2 matches") are not problems
        for issue in issues if isinstance(issues, list) else []:
            if isinstance(issue, dict):
                text = issue.get("diagnostics")
                if not isinstance(text, str):
                    detail = issue.get("details")
                    text = detail.get("text") if isinstance(detail, dict) else None
                if isinstance(text, str):
                    details.append(text)
        what = f"prefetch '{prefetch_key}' failed" if prefetch_key else ("the server reported" if warning else "an OperationOutcome instead of data")
        message = what + (": " + "; ".join(details) if details else "")
        self.problems.append(Problem(ProblemKind.MISSING, message, resource_label(outcome) or "OperationOutcome", f"prefetch.{prefetch_key}" if prefetch_key else ""))


def collect_resources(*sources: object) -> tuple[list[Resource], list[Problem]]:
    """Flatten FHIR input (dicts, lists, Bundles, prefetch objects, file or folder paths) to resources.

    >>> resources, problems = collect_resources({"patient": {"resourceType": "Patient", "id": "p"}, "meds": None})
    >>> [r["id"] for r in resources], problems
    (['p'], [])
    """
    collector = _Collector()
    for source in sources:
        if isinstance(source, (str, Path)):
            _read_path(Path(source), collector)
        else:
            collector.value(source, "")
    return collector.resources, collector.problems


def collect_prefetch(prefetch: object) -> tuple[list[Resource], list[Problem], dict[str, list[Resource]] | None]:
    """:func:`collect_resources` of a prefetch object, and for each key every resource found under it.

    The per-key lists hold repeats that the flat list keeps once (a resource under two keys is in
    both). They are None when ``prefetch`` is not a readable prefetch object (then read each key alone).
    """
    if not (isinstance(prefetch, dict) and prefetch and "resourceType" not in prefetch and "hook" not in prefetch
            and all(item is None or isinstance(item, (dict, list)) for item in prefetch.values())):
        resources, problems = collect_resources(prefetch)
        return resources, problems, None
    collector = _Collector()
    by_key: dict[str, list[Resource]] = {}
    for key, item in prefetch.items():
        collector.under_key = by_key.setdefault(str(key), [])
        collector.value(item, f"prefetch.{key}", prefetch_key=str(key))
    collector.under_key = None
    return collector.resources, collector.problems, by_key


def draft_orders(context: object) -> tuple[list[Resource], list[Problem]]:
    """The resources of a CDS Hooks ``context.draftOrders`` (a Bundle, often without ``type``).

    Accepts the whole ``context`` object or the Bundle itself; an absent draftOrders gives nothing.
    """
    bundle = context.get("draftOrders") if isinstance(context, dict) and "resourceType" not in context else context
    if bundle is None:
        return [], []
    return collect_resources(bundle)


def _read_path(path: Path, collector: _Collector, read_file: Callable[[Path, Any], None] | None = None) -> None:
    read = read_file or _read_file
    if path.is_dir():
        files = sorted(path.glob("ndjson/*.ndjson")) + sorted(path.glob("*.ndjson")) + sorted(path.glob("*.json"))
        if not files:
            collector.problems.append(Problem(ProblemKind.MISSING, "folder holds no .json or .ndjson files", str(path), ""))
        for file in files:
            read(file, collector)
    else:
        read(path, collector)


def _read_file(path: Path, collector: _Collector) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        collector.problems.append(Problem(ProblemKind.MALFORMED, f"cannot read file: {error.__class__.__name__}: {error}", str(path), ""))
        return
    if path.suffix.lower() == ".ndjson":
        for number, line in _numbered_lines(text):
            try:
                value = _loads(line)
            except json.JSONDecodeError as error:
                collector.problems.append(Problem(ProblemKind.MALFORMED, f"not JSON: {error.msg}", f"{path}:{number}", ""))
                continue
            collector.value(value, f"{path}:{number}")
        return
    try:
        value = _loads(text)
    except json.JSONDecodeError as error:
        collector.problems.append(Problem(ProblemKind.MALFORMED, f"not JSON: {error.msg} at line {error.lineno}", str(path), ""))
        return
    collector.value(value, str(path))


def _loads(text: str) -> Any:
    """orjson for speed; what it refuses and the standard parser accepts (NaN, integers beyond 64
    bits written with an exponent-free literal that overflow a double, lone surrogates) is read by the
    standard parser. orjson reads integers beyond 64 bits as floats: every number read here is bounded
    far below that, so the mapping is the same."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        return json.loads(text)


def _numbered_lines(text: str) -> Iterable[tuple[int, str]]:
    # NDJSON lines end at "\n" ("\r\n" too: the "\r" is JSON whitespace). Not str.splitlines: it also
    # breaks at U+2028, U+0085, form feeds..., which a JSON string may hold, and would cut a resource in two.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def parse_date(value: object) -> date | None:
    """The calendar date of a FHIR date, dateTime or instant; partial dates take their first day.

    The date is the local date as written (a time zone offset does not move it to another day).

    >>> parse_date("2021-03-04T23:30:00-05:00"), parse_date("2019-07"), parse_date("soon")
    (datetime.date(2021, 3, 4), datetime.date(2019, 7, 1), None)
    """
    if not isinstance(value, str) or len(value) < 4:
        return None
    if len(value) > _MEMO_MAX_CHARS:
        return _parse_date_text.__wrapped__(value)
    return _parse_date_text(value)


# A chart repeats the same stamps and references many times (every Observation names its Patient, a
# visit's results share a date): each text is parsed once. Bounded; the results are immutable.
_MEMO_SIZE: Final = 4096
_MEMO_MAX_CHARS: Final = 200  # longer texts (odd input) are parsed each time, never kept


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _parse_date_text(value: str) -> date | None:
    try:
        year = int(value[0:4])
        month = int(value[5:7]) if len(value) >= 7 else 1
        day = int(value[8:10]) if len(value) >= 10 else 1
        return date(year, month, day)
    except ValueError:
        return None


def reference_id(reference: object, kind: str | None = None) -> str | None:
    """The logical id a Reference dict points at (``Patient/1``, an absolute URL, ``urn:uuid:…``).

    With ``kind``, a relative or absolute reference to another resource type gives None.

    >>> reference_id({"reference": "https://ehr.example/fhir/Patient/42/_history/3"}, "Patient")
    '42'
    """
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    if len(text) > _MEMO_MAX_CHARS:
        return _reference_target.__wrapped__(text, kind)
    return _reference_target(text, kind)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _reference_target(text: str, kind: str | None) -> str | None:
    if not text.strip():
        return None
    text = text.strip()
    if text.startswith("urn:uuid:") or text.startswith("urn:oid:"):
        return text.rsplit(":", 1)[1]
    parts = text.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2:
        if kind is not None and parts[-2] != kind:
            return None
        return parts[-1] or None
    return None if kind is not None else parts[-1]


def clear_parse_memos() -> None:
    """Forget the parsed stamps and references (benchmarks measure a first sight of each text)."""
    _parse_date_text.cache_clear()
    _reference_target.cache_clear()
