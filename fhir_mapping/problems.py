"""Typed problems: what the mapping could not read, and where.

Mapping never guesses and never raises a bare exception on bad input. Each thing it cannot use
becomes a :class:`Problem` naming the resource and the FHIRPath-like location, so integrators can
fix their data and clinicians are told exactly what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fhir_mapping.errors import EpidoseError


class ProblemKind(StrEnum):
    """Why a piece of input could not be used."""

    MALFORMED = "malformed"  # not JSON, not an object, no resourceType
    UNSUPPORTED_RESOURCE = "unsupported-resource"  # a resourceType the mapping does not read
    MISSING = "missing"  # a required element is absent (birthDate, weight, ...)
    UNKNOWN_UNIT = "unknown-unit"  # a quantity in a unit the UCUM table cannot convert
    UNKNOWN_CODE = "unknown-code"  # a coding that matches no entry of the code tables
    UNREADABLE_DOSE = "unreadable-dose"  # a dose whose amount or frequency cannot be read
    AMBIGUOUS = "ambiguous"  # several incompatible readings; none chosen
    INVALID_VALUE = "invalid-value"  # a value outside what is physically possible
    CONFLICT = "conflict"  # sources disagree on an item; the stronger one is used (named in the message)
    UNREADABLE_TEXT = "unreadable-text"  # note text not read: language, encoding, binary or size


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing the mapping could not use.

    ``resource`` is ``"Type/id"`` (or ``"Type"`` when the resource has no id) and ``path`` a
    FHIRPath-like location inside it, e.g. ``dosageInstruction[0].doseAndRate[0].doseQuantity.unit``.
    """

    kind: ProblemKind
    message: str
    resource: str = ""
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.resource} {self.path}".strip()
        return f"{self.kind.value}: {self.message}" + (f" ({where})" if where else "")

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "message": self.message, "resource": self.resource, "path": self.path}


class MappingError(EpidoseError):
    """Raised when input is unusable as a whole (e.g. a file that is not FHIR at all).

    Carries the problems found so callers can report all of them at once.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems) or "unusable FHIR input")
