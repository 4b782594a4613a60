"""Bounded JSON parsing for everything that arrives from outside: request bodies and FHIR server answers.

``json.loads`` accepts documents the rest of the service cannot survive: nesting deep enough to exhaust
the interpreter's recursion limit in any recursive reader, numbers that become ``inf`` (``1e309``) or
integers too large to convert to a float, lone UTF-16 surrogates (``"\\ud800"``) that cannot be encoded
again, and single strings large enough to make every regular expression over them slow. Each is refused
here with :class:`JsonBodyError`, whose message describes the rule broken and never echoes the input.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

import numpy as np

MAX_DEPTH: Final = 64  # FHIR resources nest about 10 deep; a Bundle of them about 15
MAX_ABS_NUMBER: Final = 1e15  # far beyond any clinical value, and exactly representable as a float
MAX_STRING_CHARS: Final = 100_000  # one string; notes are paragraphs, and attachments are not read
_MAX_INT_DIGITS: Final = 16  # a 16-digit integer is already above MAX_ABS_NUMBER

# A JSON string literal (unrolled-loop form: linear time, no backtracking).
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JsonBodyError(ValueError):
    """The document is not JSON this service accepts; the message is safe to show (no input echoed)."""


def _reject_constant(name: str) -> Any:
    raise JsonBodyError("NaN and Infinity are not JSON numbers")


def _bounded_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
        raise JsonBodyError(f"a number is outside ±{MAX_ABS_NUMBER:.0e}")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise JsonBodyError(f"a number is outside ±{MAX_ABS_NUMBER:.0e}")
    value = int(text)
    if abs(value) > MAX_ABS_NUMBER:
        raise JsonBodyError(f"a number is outside ±{MAX_ABS_NUMBER:.0e}")
    return value


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets inside strings not counted)."""
    brackets = _NOT_BRACKET.sub("", _STRING_LITERAL.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _check_strings(value: Any) -> None:
    """Every string (keys included) is encodable and within the size bound; iterative, any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_STRING_CHARS:
                raise JsonBodyError(f"a string is longer than {MAX_STRING_CHARS} characters")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonBodyError("the document holds a lone UTF-16 surrogate (invalid Unicode)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document within the bounds above; :class:`JsonBodyError` when it breaks one."""
    if isinstance(data, bytes):
        try:
            # Strict UTF-8 refuses encoded surrogates (ED A0 80) and any other invalid byte sequence.
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonBodyError("the document is not valid UTF-8") from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    if nesting_depth(text) > max_depth:
        raise JsonBodyError(f"the document nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_float=_bounded_float, parse_int=_bounded_int,
                           parse_constant=_reject_constant)
    except JsonBodyError:
        raise
    except RecursionError:
        raise JsonBodyError(f"the document nests deeper than {max_depth} levels") from None
    except ValueError:
        raise JsonBodyError("the document is not valid JSON") from None
    # Only texts that could break a rule pay for the walk: one long enough to hold an over-long
    # string, or one with a surrogate escape (valid pairs pass; lone ones are refused).
    if (len(text) > MAX_STRING_CHARS or _SURROGATE_ESCAPE.search(text) is not None
            or (isinstance(data, str) and _has_surrogate(text))):
        _check_strings(value)
    return value


def _has_surrogate(text: str) -> bool:
    """A str handed in directly may already hold surrogates (a bytes document cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
