"""The service's configuration: one frozen, typed object read from ``EPIDOSE_*`` environment variables.

This module (with the command line, which hands it the environment) is the only reader of
``os.environ`` in the service. Defaults are the secure ones: authentication on, CORS closed, bound to
127.0.0.1, data kept under the user's data folder. Every field's docstring is its entry in the
configuration reference (:mod:`plugin.confdoc`). A variable epidose does not know (a typo such as
``EPIDOSE_RETRAIN_OPE_ESTIMATR``) stops the start, naming the closest one.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from training.retrain.settings import RetrainSettings
from training.settings_base import EnvSettings, SettingsError, default_data_dir, refuse_unknown

__all__ = ["Settings", "SettingsError", "is_loopback_host", "read_retrain_settings"]

RECOMMENDED_ALGORITHMS: Final = ("ES384", "RS384")  # CDS Hooks 2.0 "Trusting CDS Clients"
OPTIONAL_ALGORITHMS: Final = ("ES256", "RS256")  # accepted only when configured explicitly
WorkerClass = Literal["gevent", "gthread", "sync"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# Read by the test suite and the benchmarks, never by the service: allowed beside the settings.
TOOLING_VARIABLES: Final = ("EPIDOSE_CLINICAL_MODEL", "EPIDOSE_FUZZ_EXAMPLES", "EPIDOSE_SHARED_DIR",
                            "EPIDOSE_UPDATE_GOLDEN")


class Settings(EnvSettings):
    """Service settings. Each field maps to ``EPIDOSE_<FIELD NAME IN CAPITALS>``."""

    section: ClassVar[str] = "Service (`epidose serve`)"

    auth: bool = True
    """Verify the CDS client's JWT on every call (``off`` disables it, loudly)."""
    jwks: Annotated[dict[str, str | None], NoDecode] = Field(default_factory=dict)
    """JSON object mapping each trusted ``iss`` to its pinned key set (a JWKS file path or https URL, used whatever a token's ``jku`` says), or to ``null`` to take keys from an allowlisted ``jku``."""
    jku_allowlist: Annotated[tuple[str, ...], NoDecode] = ()
    """Comma-separated JWKS URLs a token's ``jku`` may name, for issuers mapped to ``null`` (on the issuer's own origin)."""
    jwt_algorithms: Annotated[tuple[str, ...], NoDecode] = RECOMMENDED_ALGORITHMS
    """Accepted signature algorithms (ES384, RS384; ES256/RS256 if listed)."""
    clock_skew_seconds: int = Field(60, ge=0)
    """Tolerance on exp/iat/nbf."""
    max_token_lifetime_seconds: int = Field(300, gt=0)
    """Longest accepted client JWT lifetime (exp − iat); Epic's tokens need 900."""
    public_base_url: str = ""
    """The service's base URL as clients see it (the JWT ``aud``); empty = from the request."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Comma-separated browser origins allowed to call the service (empty = none)."""
    host: str = "127.0.0.1"
    """Interface ``epidose serve`` binds to."""
    port: int = Field(8080, gt=0, le=65535)
    """Port ``epidose serve`` listens on."""
    workers: int = Field(0, ge=0)
    """Gunicorn worker processes (0 = one per CPU core)."""
    worker_class: WorkerClass = "gevent"
    """Gunicorn worker type: ``gevent`` (default; a slow client costs a greenlet, not a worker), ``gthread`` or ``sync``."""
    data_dir: Path = Field(default_factory=lambda: default_data_dir(os.environ))
    """Folder for models, the SQLite store and the hashing key."""
    model_dir: Path | None = None
    """Model registry root (default ``<data dir>/models``)."""
    database: Path | None = None
    """SQLite file for feedback and audit (default ``<data dir>/epidose.sqlite3``)."""
    database_url: str = Field("", repr=False)
    """``postgresql://user:password@host:port/db`` to share audit, feedback, the JWT replay cache, the model pointer and retraining runs across hosts (empty = the SQLite file; never logged)."""
    hash_key: str = Field("", repr=False)
    """Secret for keyed patient-id hashes (default: generated into ``<data dir>/hash.key``)."""
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0)
    """Larger request bodies are refused with 413."""
    fhir_timeout_seconds: float = Field(0.15, gt=0)
    """Timeout of one FHIR server request."""
    fhir_budget_seconds: float = Field(0.3, gt=0)
    """Total time for FHIR server requests per hook call (CDS Hooks: ~500 ms end to end)."""
    fhir_max_response_bytes: int = Field(5 * 1024 * 1024, gt=0)
    """Largest FHIR server answer read per prefetch key (all pages); larger is unobtainable."""
    model_check_seconds: float = Field(2.0, ge=0)
    """How often a worker checks the registry for a newly promoted model (0: at every call)."""
    build_default_model: bool = True
    """Build the embedded default model at first start when none is registered."""
    response_cache_size: int = Field(256, ge=0)
    """Responses kept per worker for repeated identical calls (0 disables)."""
    response_cache_seconds: float = Field(300.0, ge=0)
    """How long a cached response may be reused."""
    keep_override_comments: bool = False
    """Store the free text of feedback override comments (off: dropped and counted, since clinicians type names in them)."""
    bench_constant_card: bool = False
    """Expose ``/cds-services/bench-constant`` (benchmarks only)."""
    log_level: LogLevel = "INFO"
    """Python logging level."""

    @property
    def models_root(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "epidose.sqlite3"

    @property
    def hash_key_file(self) -> Path:
        return self.data_dir / "hash.key"

    @field_validator("jwks", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"not JSON ({error.msg})") from None
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
        return value

    @field_validator("jku_allowlist", "jwt_algorithms", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(part.strip() for part in value.split(",") if part.strip()) if isinstance(value, str) else value

    @field_validator("data_dir", "model_dir", "database", mode="before")
    @classmethod
    def _home(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str) else value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        level = value.upper()
        return "WARNING" if level == "WARN" else level  # logging's own alias, accepted as before

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``EPIDOSE_*`` variables (``os.environ`` by default); ``overrides`` win (for tests).

        Every ``EPIDOSE_*`` name must be a setting of the service or of retraining (or one of
        :data:`TOOLING_VARIABLES`), so a misspelt variable stops the start instead of being ignored.
        """
        env = os.environ if env is None else env
        refuse_unknown(env, known_variables())
        settings: Settings = cls.read(env, defaults={"data_dir": default_data_dir(env)}, overrides=overrides)
        settings.check()
        RetrainSettings.from_env(env)  # the same environment drives retraining: refuse its bad values now too
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
        self._check_exposure()
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


def known_variables() -> set[str]:
    """Every ``EPIDOSE_*`` name epidose reads: the service's, the retraining job's, the test tools'."""
    return set(Settings.variables()) | set(RetrainSettings.variables()) | set(TOOLING_VARIABLES)


def read_retrain_settings(env: Mapping[str, str] | None = None) -> RetrainSettings:
    """The retraining settings from the environment, after the same checks as the service's start."""
    env = os.environ if env is None else env
    Settings.from_env(env)  # unknown names, the service's values, and the retraining values
    return RetrainSettings.from_env(env)
