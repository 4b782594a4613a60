"""Bounded JSON parsing for everything that arrives from outside: request bodies and FHIR server answers.

A plain JSON parser accepts documents the rest of the service cannot survive: nesting deep enough to exhaust
the interpreter's recursion limit in any recursive reader, numbers that become ``inf`` (``1e309``) or
integers too large to convert to a float, lone UTF-16 surrogates (``"\\ud800"``) that cannot be encoded
again, and single strings large enough to make every regular expression over them slow. Each is refused
here with :class:`JsonBodyError`, whose message describes the rule broken and never echoes the input.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np
import orjson

from fhir_mapping.errors import EpidoseError

MAX_DEPTH: Final = 64  # FHIR resources nest about 10 deep; a Bundle of them about 15
MAX_ABS_NUMBER: Final = 1e15  # far beyond any clinical value, and exactly representable as a float
MAX_STRING_CHARS: Final = 100_000  # one string; notes are paragraphs, and attachments are not read

# A JSON string literal (unrolled-loop form: linear time, no backtracking).
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


class JsonBodyError(EpidoseError, ValueError):
    """The document is not JSON this service accepts; the message is safe to show (no input echoed)."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings not counted)."""
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def parse_json(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document within the bounds above; :class:`JsonBodyError` when it breaks one.

    orjson refuses by itself invalid UTF-8 (encoded surrogates included), lone surrogate escapes,
    NaN/Infinity and numbers that overflow a double (``1e309``); the depth, the number range and the
    string size are checked in one iterative walk over the parsed value.
    """
    if isinstance(data, str):
        if _has_surrogate(data):
            raise JsonBodyError("the document holds a lone UTF-16 surrogate (invalid Unicode)")
        data = data.encode("utf-8")
    data = data.removeprefix(_BOM)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise JsonBodyError(_decode_error_message(str(error))) from None
    _check_value(value, max_depth, check_strings=len(data) > MAX_STRING_CHARS)
    return value


_BOM: Final = "\ufeff".encode()


def _decode_error_message(detail: str) -> str:
    """Our message for an orjson refusal (its own text quotes positions, never the input)."""
    if "UTF-8" in detail:  # encoded surrogates (ED A0 80) included
        return "the document is not valid UTF-8"
    if "surrogate" in detail:
        return "the document holds a lone UTF-16 surrogate (invalid Unicode)"
    if "infinity" in detail:
        return f"a number is outside ±{MAX_ABS_NUMBER:.0e}"
    if "recursion" in detail:
        return f"the document nests deeper than {MAX_DEPTH} levels"
    return "the document is not valid JSON"


def _number_in_range(value: int | float) -> bool:
    return -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER  # NaN compares False: refused too


def _check_value(value: Any, max_depth: int, *, check_strings: bool) -> None:
    """Depth, number range and (when the text is long enough to hold one too long) string size."""
    kind = type(value)
    if kind is dict or kind is list:
        _check_container(value, 1, max_depth, check_strings)
    elif (kind is int or kind is float) and not _number_in_range(value):
        raise JsonBodyError(f"a number is outside ±{MAX_ABS_NUMBER:.0e}")
    elif kind is str and check_strings and len(value) > MAX_STRING_CHARS:
        raise JsonBodyError(f"a string is longer than {MAX_STRING_CHARS} characters")


def _check_container(container: dict[str, Any] | list[Any], depth: int, max_depth: int, check_strings: bool) -> None:
    # Recursive: the depth is refused before a level deeper is entered, so the recursion stays within
    # max_depth frames whatever orjson parsed. Strings are passed over first (most of a FHIR body).
    if depth > max_depth:
        raise JsonBodyError(f"the document nests deeper than {max_depth} levels")
    if type(container) is dict:
        if check_strings and any(len(key) > MAX_STRING_CHARS for key in container):
            raise JsonBodyError(f"a string is longer than {MAX_STRING_CHARS} characters")
        items: Any = container.values()
    else:
        items = container
    for item in items:
        kind = type(item)
        if kind is str:
            if check_strings and len(item) > MAX_STRING_CHARS:
                raise JsonBodyError(f"a string is longer than {MAX_STRING_CHARS} characters")
        elif kind is dict or kind is list:
            _check_container(item, depth + 1, max_depth, check_strings)
        elif (kind is int or kind is float) and not -MAX_ABS_NUMBER <= item <= MAX_ABS_NUMBER:
            raise JsonBodyError(f"a number is outside ±{MAX_ABS_NUMBER:.0e}")  # NaN compares False: refused too


def _has_surrogate(text: str) -> bool:
    """A str handed in directly may already hold surrogates (a bytes document cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as the Python numbers and lists the standard JSON encoder would write."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (the service's responses): orjson, numpy scalars and non-string keys allowed."""
    return orjson.dumps(value, default=_plain, option=orjson.OPT_NON_STR_KEYS)
