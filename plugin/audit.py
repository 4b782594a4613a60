"""What each step of a decision decided, for one card: the record the audit log keeps.

:func:`plugin.decide.decide` returns one :class:`DecisionRecord` per dose card; the service writes it
with the call's own fields (when, which service, the patient as a keyed hash) as one audit row
(:class:`plugin.store.AuditRecord`). The row's first columns are the ones every version of the
service wrote (model version, input fingerprint, recommended and compared dose, the model's raw
choice, what the rails changed); the whole record also goes, as JSON, into the ``decision`` column.

No identifiers: problems are kept as kind and item ("missing", "body weight"), never their detail,
which can name resources.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProblemSeen:
    """A data problem the decision named: its kind, the item, and whether it stopped the decision."""

    kind: str  # missing | unreadable | other-patient | implausible
    item: str
    blocking: bool


@dataclass(frozen=True)
class ModelSeen:
    """What the model said: its rail-constrained and unconstrained choices and a summary of its scores."""

    version: str
    score_kind: str  # "q" (expected discounted reward) or "log_prob"
    chosen_mg_per_day: float  # the best-scoring dose the rails allow
    raw_mg_per_day: float | None  # its best dose with no rail (None: out of the 12 classes)
    best_score: float | None  # the chosen dose's score (None: not finite)
    margin: float | None  # its lead over the next allowed dose (None: a single allowed dose)
    coverage: float | None  # share of training children as far from the centre (None: unknown)


@dataclass(frozen=True)
class DecisionRecord:
    """One card's decision, step by step (see :mod:`plugin.decide`)."""

    card_uuid: str
    indicator: str
    hook: str
    scope: str  # fhir_mapping.scope.Scope.reason: "in-scope", "age-not-labelled", "not-epilepsy"
    problems: tuple[ProblemSeen, ...]
    fired_rules: tuple[str, ...]  # the clinical rails that removed doses (ids)
    guidance_rule: str | None  # the label/practice guidance for the situation (id)
    model: ModelSeen | None  # None: the decision stopped before the model (a data problem)
    confidence: str  # clear | narrow | abstain
    confidence_reasons: tuple[str, ...]
    rules_shown: tuple[str, ...]  # the rule ids the card names, after the rails and the maximum
    action: str  # start | raise | keep | lower | taper | none | no-recommendation
    source: str  # model | guidance | none
    recommended_mg_per_day: float | None
    compared_mg_per_day: float | None  # the draft's dose on order hooks, else the dose taken
    safety_adjustments: tuple[str, ...]  # label notes, the rails that fired, a replaced model choice
    input_fingerprint: str  # SHA-256 of the state the model saw (or of the problems that stopped it)

    @property
    def model_version(self) -> str:
        return self.model.version if self.model is not None else "none"

    @property
    def raw_model_mg_per_day(self) -> float | None:
        return self.model.raw_mg_per_day if self.model is not None else None

    def columns(self) -> dict[str, Any]:
        """The audit columns every version of the service wrote (training/database.py, migration 1)."""
        return {"card_uuid": self.card_uuid, "indicator": self.indicator, "model_version": self.model_version,
                "input_fingerprint": self.input_fingerprint, "recommended_mg_per_day": self.recommended_mg_per_day,
                "compared_mg_per_day": self.compared_mg_per_day, "raw_model_mg_per_day": self.raw_model_mg_per_day,
                "safety_adjustments": self.safety_adjustments}

    def to_json(self) -> dict[str, Any]:
        """The whole record as JSON values (tuples as lists), for the audit row's ``decision`` column."""
        return _plain(self)

    def with_card(self, card_uuid: str) -> DecisionRecord:
        """The same decision for another card (a cached response served with fresh uuids)."""
        return dataclasses.replace(self, card_uuid=card_uuid)


def _plain(value: Any) -> Any:
    """Dataclasses as dicts in field order, tuples as lists (``dataclasses.asdict`` deep-copies every
    value first: three times the CPU on the request path, for values that are all immutable here)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
