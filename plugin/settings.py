"""The service's configuration: one frozen, typed object read from ``EPIDOSE_*`` environment variables.

This module is the only reader of ``os.environ`` in the service. Defaults are the secure ones:
authentication on, CORS closed, bound to 127.0.0.1, data kept under the user's data folder.
Every field's docstring is the configuration reference (:mod:`plugin.confdoc` reads them).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

PREFIX: Final = "EPIDOSE_"
RECOMMENDED_ALGORITHMS: Final = ("ES384", "RS384")  # CDS Hooks 2.0 "Trusting CDS Clients"
OPTIONAL_ALGORITHMS: Final = ("ES256", "RS256")  # accepted only when configured explicitly
WORKER_CLASSES: Final = ("gevent", "gthread", "sync")


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base) / "epidose"


@dataclass(frozen=True)
class Settings:
    """Service settings. Each field maps to ``EPIDOSE_<FIELD NAME IN CAPITALS>``."""

    auth: bool = True
    """EPIDOSE_AUTH: verify the CDS client's JWT on every call (``off`` disables it, loudly)."""
    jwks: Mapping[str, str | None] = field(default_factory=dict)
    """EPIDOSE_JWKS: JSON object mapping each trusted ``iss`` to its pinned key set (a JWKS file path or https URL, used whatever a token's ``jku`` says), or to ``null`` to take keys from an allowlisted ``jku``."""
    jku_allowlist: tuple[str, ...] = ()
    """EPIDOSE_JKU_ALLOWLIST: comma-separated JWKS URLs a token's ``jku`` may name, for issuers mapped to ``null`` (on the issuer's own origin)."""
    jwt_algorithms: tuple[str, ...] = RECOMMENDED_ALGORITHMS
    """EPIDOSE_JWT_ALGORITHMS: accepted signature algorithms (ES384, RS384; ES256/RS256 if listed)."""
    clock_skew_seconds: int = 60
    """EPIDOSE_CLOCK_SKEW_SECONDS: tolerance on exp/iat/nbf."""
    max_token_lifetime_seconds: int = 300
    """EPIDOSE_MAX_TOKEN_LIFETIME_SECONDS: longest accepted client JWT lifetime (exp − iat); Epic's tokens need 900."""
    public_base_url: str = ""
    """EPIDOSE_PUBLIC_BASE_URL: the service's base URL as clients see it (the JWT ``aud``); empty = from the request."""
    cors_origins: tuple[str, ...] = ()
    """EPIDOSE_CORS_ORIGINS: comma-separated browser origins allowed to call the service (empty = none)."""
    host: str = "127.0.0.1"
    """EPIDOSE_HOST: interface ``epidose serve`` binds to."""
    port: int = 8080
    """EPIDOSE_PORT: port ``epidose serve`` listens on."""
    workers: int = 0
    """EPIDOSE_WORKERS: gunicorn worker processes (0 = one per CPU core)."""
    worker_class: str = "gevent"
    """EPIDOSE_WORKER_CLASS: gunicorn worker type: ``gevent`` (default; a slow client costs a greenlet, not a worker), ``gthread`` or ``sync``."""
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    """EPIDOSE_DATA_DIR: folder for models, the SQLite store and the hashing key."""
    model_dir: Path | None = None
    """EPIDOSE_MODEL_DIR: model registry root (default ``<data dir>/models``)."""
    database: Path | None = None
    """EPIDOSE_DATABASE: SQLite file for feedback and audit (default ``<data dir>/epidose.sqlite3``)."""
    database_url: str = field(default="", repr=False)
    """EPIDOSE_DATABASE_URL: ``postgresql://user:password@host:port/db`` to share audit, feedback, the JWT replay cache, the model pointer and retraining runs across hosts (empty = the SQLite file; never logged)."""
    hash_key: str = ""
    """EPIDOSE_HASH_KEY: secret for keyed patient-id hashes (default: generated into ``<data dir>/hash.key``)."""
    max_body_bytes: int = 2 * 1024 * 1024
    """EPIDOSE_MAX_BODY_BYTES: larger request bodies are refused with 413."""
    fhir_timeout_seconds: float = 0.15
    """EPIDOSE_FHIR_TIMEOUT_SECONDS: timeout of one FHIR server request."""
    fhir_budget_seconds: float = 0.3
    """EPIDOSE_FHIR_BUDGET_SECONDS: total time for FHIR server requests per hook call (CDS Hooks: ~500 ms end to end)."""
    fhir_max_response_bytes: int = 5 * 1024 * 1024
    """EPIDOSE_FHIR_MAX_RESPONSE_BYTES: largest FHIR server answer read per prefetch key (all pages); larger is unobtainable."""
    model_check_seconds: float = 2.0
    """EPIDOSE_MODEL_CHECK_SECONDS: how often a worker checks the registry for a newly promoted model."""
    build_default_model: bool = True
    """EPIDOSE_BUILD_DEFAULT_MODEL: build the embedded default model at first start when none is registered."""
    response_cache_size: int = 256
    """EPIDOSE_RESPONSE_CACHE_SIZE: responses kept per worker for repeated identical calls (0 disables)."""
    response_cache_seconds: float = 300.0
    """EPIDOSE_RESPONSE_CACHE_SECONDS: how long a cached response may be reused."""
    keep_override_comments: bool = False
    """EPIDOSE_KEEP_OVERRIDE_COMMENTS: store the free text of feedback override comments (off: dropped and counted, since clinicians type names in them)."""
    bench_constant_card: bool = False
    """EPIDOSE_BENCH_CONSTANT_CARD: expose ``/cds-services/bench-constant`` (benchmarks only)."""
    log_level: str = "INFO"
    """EPIDOSE_LOG_LEVEL: Python logging level."""
    retrain: Any = None
    """Retraining settings (``training.retrain.settings.RetrainSettings``), read from the same environment."""

    @property
    def models_root(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "epidose.sqlite3"

    @property
    def hash_key_file(self) -> Path:
        return self.data_dir / "hash.key"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``EPIDOSE_*`` variables (``os.environ`` by default); ``overrides`` win (for tests)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "retrain":
                continue
            name = PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _parse(f.name, env[name], name)
        if "data_dir" not in values:
            values["data_dir"] = _default_data_dir(env)
        values["retrain"] = _retrain_settings(env)
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse unsafe or inconsistent values at start-up."""
        allowed = set(RECOMMENDED_ALGORITHMS) | set(OPTIONAL_ALGORITHMS)
        bad = [a for a in self.jwt_algorithms if a not in allowed]
        if bad or not self.jwt_algorithms:
            raise SettingsError(f"EPIDOSE_JWT_ALGORITHMS: only {sorted(allowed)} are accepted (never none or HMAC), got {bad}")
        for iss, source in self.jwks.items():
            if not isinstance(iss, str) or not iss or not (source is None or (isinstance(source, str) and source)):
                raise SettingsError("EPIDOSE_JWKS: must map each issuer to a JWKS file path or URL, or to null")
            if source is not None and source.startswith("http://") and not _is_loopback_url(source):
                raise SettingsError(f"EPIDOSE_JWKS: JWKS URL for {iss!r} must use https")
        for url in self.jku_allowlist:
            if not url.startswith("https://") and not _is_loopback_url(url):
                raise SettingsError(f"EPIDOSE_JKU_ALLOWLIST: {url!r} must be an https URL")
        if self.max_token_lifetime_seconds <= 0:
            raise SettingsError("EPIDOSE_MAX_TOKEN_LIFETIME_SECONDS must be positive")
        self._check_exposure()
        if self.max_body_bytes <= 0 or self.port <= 0 or self.workers < 0 or self.response_cache_size < 0:
            raise SettingsError("EPIDOSE_MAX_BODY_BYTES, EPIDOSE_PORT and EPIDOSE_WORKERS must be positive")
        if self.fhir_max_response_bytes <= 0:
            raise SettingsError("EPIDOSE_FHIR_MAX_RESPONSE_BYTES must be positive")
        if self.fhir_timeout_seconds <= 0 or self.fhir_budget_seconds <= 0:
            raise SettingsError("EPIDOSE_FHIR_TIMEOUT_SECONDS and EPIDOSE_FHIR_BUDGET_SECONDS must be positive")
        if self.worker_class not in WORKER_CLASSES:
            raise SettingsError(f"EPIDOSE_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}")
        if self.public_base_url and not self.public_base_url.startswith(("https://", "http://")):
            raise SettingsError("EPIDOSE_PUBLIC_BASE_URL must be an absolute http(s) URL")
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError("EPIDOSE_DATABASE_URL must be a postgresql:// URL (unset for the SQLite file)")

    def _check_exposure(self) -> None:
        """Beyond loopback, authentication must be on and the JWT audience must not come from the Host header."""
        if is_loopback_host(self.host):
            return
        if not self.auth:
            raise SettingsError(f"EPIDOSE_AUTH=off is refused on a non-loopback bind ({self.host}): "
                                "bind to 127.0.0.1 (EPIDOSE_HOST) or turn authentication on")
        if not self.public_base_url:
            raise SettingsError(f"EPIDOSE_PUBLIC_BASE_URL must be set when binding to {self.host}: it is the JWT "
                                "audience, which a forged Host header must not decide")


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (a bind address or host name)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback_url(url: str) -> bool:
    return url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))


_FALSE = {"0", "off", "false", "no"}
_TRUE = {"1", "on", "true", "yes"}


def _parse(name: str, raw: str, variable: str) -> Any:
    raw = raw.strip()
    try:
        if name in {"auth", "build_default_model", "bench_constant_card", "keep_override_comments"}:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError("expected on/off")
        if name == "jwks":
            value = json.loads(raw) if raw else {}
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return dict(value)
        if name in {"jku_allowlist", "jwt_algorithms", "cors_origins"}:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if name in {"port", "workers", "max_body_bytes", "clock_skew_seconds", "response_cache_size",
                    "fhir_max_response_bytes", "max_token_lifetime_seconds"}:
            return int(raw)
        if name in {"fhir_timeout_seconds", "fhir_budget_seconds", "model_check_seconds", "response_cache_seconds"}:
            return float(raw)
        if name in {"data_dir", "model_dir", "database"}:
            return Path(raw).expanduser()
        if name == "public_base_url":
            return raw.rstrip("/")
        return raw
    except (ValueError, json.JSONDecodeError) as error:
        raise SettingsError(f"{variable}: {error}") from None


def _retrain_settings(env: Mapping[str, str]) -> Any:
    """The retraining fields, parsed by the training package from the same environment (None if absent)."""
    try:
        from training.retrain.settings import RetrainSettings
    except ImportError:
        return None
    return RetrainSettings.from_env(env)
