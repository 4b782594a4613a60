"""Typed requests at the boundary: CDS Hooks 2.0 service calls and feedback, as pydantic models.

Strict where the specification is (``hook``, ``hookInstance``, ``context.patientId``, the feedback
``outcome``: strings are strings, never coerced from numbers), lenient where real clients deviate and
the service does not depend on the difference: a ``draftOrders`` Bundle without ``type`` (the CDS Hooks
sandbox), unknown fields anywhere (the specification allows extensions), a missing ``userId``. The
resources inside ``prefetch`` and ``draftOrders`` are validated by the FHIR mapping, which reads them
leniently and reports what it could not use; here only their outer shape is checked.

A validation failure becomes a 400 OperationOutcome naming the field and the rule broken, never the
value sent (:func:`describe`), since the value may be a patient identifier.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

MAX_IDENTIFIER_CHARS = 200  # ids and uuids; a FHIR id is at most 64 characters
MAX_TOKEN_CHARS = 16_384  # an access token is sent back as an HTTP header value
MAX_COMMENT_CHARS = 4_000
MAX_FEEDBACK_ITEMS = 100
MAX_DESCRIBED_ERRORS = 5

Identifier = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
ShortText = Annotated[str, StringConstraints(strict=True, max_length=MAX_IDENTIFIER_CHARS)]
# RFC 6750 b64token is narrower; visible ASCII is what an HTTP header can carry unchanged.
_TOKEN_CHARACTERS = re.compile(r"^[\x21-\x7e]+$")


class _Open(BaseModel):
    """Unknown fields are kept (CDS Hooks allows extensions); known ones are checked."""

    model_config = ConfigDict(extra="allow", strict=True)


class DraftOrders(_Open):
    """A FHIR Bundle of proposed orders; ``type`` may be absent (the reference sandbox omits it)."""

    resourceType: Literal["Bundle"]
    type: ShortText | None = None
    entry: list[dict[str, Any]] | None = None


class HookContext(_Open):
    patientId: Identifier
    userId: ShortText | None = None
    encounterId: ShortText | None = None
    selections: list[ShortText] | None = Field(default=None, max_length=MAX_FEEDBACK_ITEMS)
    draftOrders: DraftOrders | None = None


class FhirAuthorization(_Open):
    access_token: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_TOKEN_CHARS)]
    token_type: Annotated[str, StringConstraints(strict=True, max_length=20)] = "Bearer"  # noqa: S105 - a scheme
    expires_in: Any = None  # unused here; some EHRs send it as a string
    scope: str | None = None
    subject: str | None = None

    @field_validator("access_token")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        if not _TOKEN_CHARACTERS.match(value):
            raise ValueError("must be visible ASCII characters without spaces")
        return value

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError("must be Bearer")
        return value


class HookRequest(_Open):
    """A CDS Hooks service call (CDS Hooks 2.0 §Calling a CDS Service)."""

    hook: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]
    hookInstance: Identifier
    context: HookContext
    fhirServer: Annotated[str, StringConstraints(strict=True, max_length=2_000)] | None = None
    fhirAuthorization: FhirAuthorization | None = None
    prefetch: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError:
            raise ValueError("must be an absolute http(s) URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return value


class Coding(_Open):
    system: ShortText | None = None
    code: ShortText | None = None
    display: Annotated[str, StringConstraints(strict=True, max_length=1_000)] | None = None


class OverrideReason(_Open):
    reason: Coding | None = None
    userComment: Annotated[str, StringConstraints(strict=True, max_length=MAX_COMMENT_CHARS)] | None = None


class AcceptedSuggestion(_Open):
    id: Identifier


class FeedbackItem(_Open):
    card: Identifier
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=MAX_FEEDBACK_ITEMS)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: ShortText | None = None


class FeedbackRequest(_Open):
    """A feedback call (CDS Hooks 2.0 §Feedback)."""

    feedback: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)


def describe(error: ValidationError) -> str:
    """The fields and rules a body broke, without any value from it (values may identify a patient)."""
    parts = []
    for issue in error.errors(include_url=False, include_input=False, include_context=False)[:MAX_DESCRIBED_ERRORS]:
        where = ".".join(str(step) if isinstance(step, int) else _field_name(step) for step in issue["loc"])
        parts.append(f"{where or 'body'}: {_rule(issue)}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "invalid request: " + "; ".join(parts)


_KNOWN_FIELDS = frozenset(
    name for model in (DraftOrders, HookContext, FhirAuthorization, HookRequest, Coding, OverrideReason,
                       AcceptedSuggestion, FeedbackItem, FeedbackRequest) for name in model.model_fields
)


def _field_name(step: Any) -> str:
    """Field names come from the schema; anything else (a key the client chose) is not repeated."""
    return step if step in _KNOWN_FIELDS else "[key]"


def _rule(issue: Any) -> str:
    """pydantic's message names the rule (the input is excluded above); custom rules drop their prefix."""
    return str(issue.get("msg", issue.get("type", "invalid"))).removeprefix("Value error, ")
