"""The epidose CDS Hooks service (Flask): ``create_app(settings)`` is the only way it comes to life."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Flask and the settings models are imported when an app is built, so `epidose --help` starts fast
    from flask import Flask

    from plugin.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from plugin.settings import Settings

        return Settings
    raise AttributeError(f"module 'plugin' has no attribute {name!r}")


def create_app(settings: Settings | None = None, *, registry: Any = None,
               loader: Callable[[Path], Any] | None = None, jwks_fetch: Callable[[str], dict[str, Any]] | None = None,
               fetcher: Any = None, announce: bool = True) -> Flask:
    """Build the service. ``registry``, ``loader``, ``jwks_fetch`` and ``fetcher`` replace the defaults in tests.

    ``announce=False``: the caller logs the start-up notices (plugin.trust.startup_notices) itself, once.
    """
    from flask import Flask

    from hooks import service_definitions
    from plugin import api, errors, ops, report, security
    from plugin.cache import ResponseCache
    from plugin.gather import FhirFetcher
    from plugin.metrics import Metrics
    from plugin.model import ModelHolder, default_loader, default_registry
    from plugin.runtime import Runtime
    from plugin.settings import Settings
    from plugin.store import open_store

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["EPIDOSE_SETTINGS"] = settings
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.logger.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    store = open_store(settings)
    holder = ModelHolder(registry if registry is not None else default_registry(settings, store.database),
                         loader or default_loader, settings.model_check_seconds)
    holder.refresh()  # load at worker start
    services = {d["id"]: d for d in service_definitions()}
    runtime = Runtime(settings, services, holder,
                      fetcher or FhirFetcher(settings.fhir_timeout_seconds, settings.fhir_budget_seconds,
                                             max_response_bytes=settings.fhir_max_response_bytes),
                      store, Metrics(), ResponseCache(settings.response_cache_size, settings.response_cache_seconds))
    app.extensions["epidose"] = runtime
    errors.init_app(app)
    authenticator = None
    if settings.auth:
        authenticator = security.Authenticator(settings, security.JwksCache(jwks_fetch), store.first_jti_use)
    security.init_app(app, authenticator, runtime.metrics, announce=announce)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(report.bp)
    return app
