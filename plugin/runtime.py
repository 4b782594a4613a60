"""The shared resources of one app: settings, service registry, model holder, FHIR fetcher, store, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from plugin.cache import ResponseCache
from plugin.gather import FhirFetcher
from plugin.metrics import Metrics
from plugin.model import ModelHolder
from plugin.settings import Settings
from plugin.store import Store

DISCOVERY_FIELDS = ("hook", "title", "description", "id", "prefetch", "usageRequirements")


@dataclass
class Runtime:
    settings: Settings
    services: dict[str, dict[str, Any]]
    models: ModelHolder
    fetcher: FhirFetcher
    store: Store
    metrics: Metrics
    cache: ResponseCache

    @property
    def services_public(self) -> list[dict[str, Any]]:
        """Service definitions as discovery shows them (only the spec's fields)."""
        return [{k: d[k] for k in DISCOVERY_FIELDS if k in d} for d in self.services.values()]

    def base_url(self) -> str:
        return self.settings.public_base_url or request.url_root.rstrip("/")

    def report_url(self) -> str:
        """Where the card's link points: the page of the model in service."""
        return self.base_url() + "/models/current"


def runtime() -> Runtime:
    result: Runtime = current_app.extensions["epidose"]
    return result
