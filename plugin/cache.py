"""A per-worker cache of recent responses, keyed by the request's content (not its hookInstance).

EHRs call again with the same data: a chart opened twice, order-select then order-sign with the same
draft. Rebuilding the timeline for identical input is the costliest step of a call, so a worker keeps
the last responses for a short time as JSON templates whose uuids are replaced by fresh ones on each
hit (every card served stays unique and gets its own audit record). The key covers the request body
without ``hookInstance`` and the access token, the day and the registry version of the model, so a
new model or a new day never reuses an old answer. Calls that needed the FHIR server are not cached
(the server's data may change).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from plugin.audit import DecisionRecord


@dataclass(frozen=True)
class CachedResponse:
    """A response body with uuid placeholders, and the audit fields of each card."""

    template: str
    placeholders: tuple[str, ...]
    audits: tuple[DecisionRecord, ...]
    indicators: tuple[str, ...]
    card_placeholders: tuple[str, ...]


class ResponseCache:
    """Bounded LRU with a time to live; thread-safe."""

    def __init__(self, size: int, ttl_seconds: float) -> None:
        self.size = size
        self.ttl = ttl_seconds
        self._items: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.size > 0

    @staticmethod
    def key(raw_body: bytes, volatile: list[str], *parts: str) -> str | None:
        """Content key: the raw body with volatile values (hookInstance, token) masked, plus ``parts``.

        Each volatile value must occur exactly once in the body; it is replaced by a control byte,
        which JSON text cannot contain unescaped, so two bodies share a key only when they are equal
        apart from those values. None (do not cache) otherwise.
        """
        for marker, value in enumerate(volatile):
            if not value:
                continue
            encoded = value.encode("utf-8")
            if len(encoded) < 8 or raw_body.count(encoded) != 1:
                return None
            raw_body = raw_body.replace(encoded, bytes([marker + 1]))
        digest = hashlib.sha256(raw_body)
        for part in parts:
            digest.update(b"\x00" + part.encode("utf-8"))
        return digest.hexdigest()

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl:
                if item is not None:
                    del self._items[key]
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: str, value: CachedResponse) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def make_template(body: str, uuids: list[str], audits: list[DecisionRecord], indicators: list[str],
                  card_uuids: list[str]) -> CachedResponse:
    """Replace each generated uuid in ``body`` (and audits) by a placeholder."""
    placeholders = []
    by_uuid = {}
    for index, value in enumerate(uuids):
        placeholder = f"@@epidose-uuid-{index}@@"
        body = body.replace(value, placeholder)
        placeholders.append(placeholder)
        by_uuid[value] = placeholder
    audit_templates = tuple(a.with_card(by_uuid[a.card_uuid]) for a in audits)
    return CachedResponse(body, tuple(placeholders), audit_templates, tuple(indicators),
                          tuple(by_uuid[c] for c in card_uuids))


def fill(cached: CachedResponse) -> tuple[str, list[DecisionRecord]]:
    """A fresh response body and audit records: every placeholder gets a new uuid."""
    body = cached.template
    fresh = {}
    for placeholder in cached.placeholders:
        value = str(uuid.uuid4())
        fresh[placeholder] = value
        body = body.replace(placeholder, value)
    audits = [a.with_card(fresh[a.card_uuid]) for a in cached.audits]
    return body, audits
