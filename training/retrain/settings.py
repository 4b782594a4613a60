"""Settings of the retraining job, read from ``EPIDOSE_*`` variables handed in by the caller.

``plugin.settings.Settings`` is the only reader of ``os.environ``; it (and the CLI) pass a mapping to
:meth:`RetrainSettings.from_env`, so tests build settings from plain dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

AuthMode = Literal["none", "bearer", "smart"]
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RetrainSettingsError(ValueError):
    """An EPIDOSE_* variable of the retraining job has a value that cannot be used."""


@dataclass(frozen=True)
class RetrainSettings:
    """Everything the retraining job, its FHIR client and its scheduler need."""

    data_dir: Path = Path("retrain")
    """EPIDOSE_RETRAIN_DIR: raw resource store, watermark, run records and the scheduler lock
    (default ``<EPIDOSE_DATA_DIR>/retrain``, the service's data folder)."""
    registry_dir: Path = Path("models")
    """EPIDOSE_MODEL_DIR: the model registry the service follows, shared with the service's setting of
    the same name (default ``<EPIDOSE_DATA_DIR>/models``)."""
    database_url: str = field(default="", repr=False)
    """EPIDOSE_DATABASE_URL: the service's PostgreSQL database (shared with it); when set, run records,
    the registry's pointer and the one-run lock live there, so hosts retrain and promote together."""
    fhir_server_url: str | None = None
    """EPIDOSE_FHIR_SERVER_URL: FHIR R4 base URL to pull from; unset means the local source folder."""
    source_dir: Path | None = None
    """EPIDOSE_RETRAIN_SOURCE: folder of FHIR NDJSON (cohort layout) used when no server is set."""
    simulator_dir: Path | None = None
    """EPIDOSE_RETRAIN_SIMULATOR_DIR: simulated cohort folder (``epidose cohort``) whose truth files give
    the physicians' probabilities and the true values the gate also compares (simulated data only)."""
    auth: AuthMode = "none"
    """EPIDOSE_FHIR_AUTH: none, bearer (static token) or smart (SMART Backend Services)."""
    bearer_token: str | None = field(default=None, repr=False)
    """EPIDOSE_FHIR_BEARER_TOKEN: the static token for auth=bearer (never logged)."""
    smart_client_id: str | None = None
    """EPIDOSE_SMART_CLIENT_ID: client id registered with the authorization server."""
    smart_private_key: Path | None = None
    """EPIDOSE_SMART_PRIVATE_KEY: PEM file of the private key that signs the client assertion."""
    smart_key_id: str | None = None
    """EPIDOSE_SMART_KEY_ID: ``kid`` of that key in the client's published JWKS."""
    smart_algorithm: Literal["RS384", "ES384"] = "RS384"
    """EPIDOSE_SMART_ALGORITHM: RS384 or ES384, the two algorithms SMART Backend Services requires."""
    smart_scope: str = "system/Patient.rs system/Encounter.rs system/Observation.rs system/Condition.rs system/MedicationRequest.rs"
    """EPIDOSE_SMART_SCOPE: scopes requested with the token (read access to what we pull)."""
    bulk_export: bool = False
    """EPIDOSE_FHIR_BULK_EXPORT: pull with Bulk Data $export instead of paged searches."""
    request_timeout: float = 30.0
    """EPIDOSE_RETRAIN_FHIR_TIMEOUT: seconds per HTTP request of a pull (connect and read)."""
    retries: int = 4
    """EPIDOSE_FHIR_RETRIES: retries after the first attempt on 429, 5xx, timeouts, lost connections."""
    backoff_base: float = 0.5
    """EPIDOSE_FHIR_BACKOFF: first backoff in seconds; doubles each retry, with full jitter."""
    backoff_max: float = 30.0
    """EPIDOSE_FHIR_BACKOFF_MAX: longest wait between retries, also the cap on Retry-After."""
    page_size: int = 200
    """EPIDOSE_FHIR_PAGE_SIZE: ``_count`` per search page."""
    bulk_poll_limit: float = 3600.0
    """EPIDOSE_FHIR_BULK_TIMEOUT: seconds to wait for a $export to complete before failing."""
    schedule: str = "0 2 * * *"
    """EPIDOSE_RETRAIN_SCHEDULE: five-field cron (server local time) or an interval such as 6h, 30m, 1d."""
    agreement_margin: float = 0.02
    """EPIDOSE_RETRAIN_AGREEMENT_MARGIN: largest drop in top-1 agreement the gate tolerates (0.02 = 2 points)."""
    ope_estimator: str | None = None
    """EPIDOSE_RETRAIN_OPE_ESTIMATOR: off-policy estimator whose lower bound is gated; unset = all in common."""
    holdout_fraction: float = 0.2
    """EPIDOSE_RETRAIN_HOLDOUT: share of patients held out for the champion/candidate comparison."""
    split_seed: int = 0
    """EPIDOSE_RETRAIN_SPLIT_SEED: seed of the patient-level split (same split for both models)."""
    behaviour_steps: int = 300
    """EPIDOSE_RETRAIN_BEHAVIOUR_STEPS: behaviour-cloning steps estimating the physicians' policy for OPE
    (used when the data carries no true behaviour probabilities)."""
    bootstrap_samples: int = 500
    """EPIDOSE_RETRAIN_BOOTSTRAP: bootstrap resamples (over patients) behind each off-policy interval."""
    initial_config: str = "conservative_light"
    """EPIDOSE_RETRAIN_INITIAL_CONFIG: training configuration of the first model when none is in service
    (later runs reuse the champion's); conservative_light, like the service's embedded default model."""
    initial_steps: int | None = None
    """EPIDOSE_RETRAIN_INITIAL_STEPS: gradient steps of the first model; unset = the configuration's own."""
    keep: int = 5
    """EPIDOSE_REGISTRY_KEEP: model versions kept in the registry (the current and previous always are)."""
    nice: int = 10
    """EPIDOSE_SCHEDULER_NICE: niceness added to the scheduler process so the service keeps priority."""
    store_format: Literal["parquet", "ndjson"] = "ndjson"
    """EPIDOSE_RETRAIN_STORE_FORMAT: format of a new raw resource store: ndjson (one file per resource type,
    the default) or parquet (columnar: half the CPU of a first pull, a quarter of an incremental one, a
    twentieth of the disk, ~10% more peak memory; bench/RESULTS.md); a folder already holding a store
    keeps the format it has."""

    @property
    def store_dir(self) -> Path:
        """The raw resource store (Parquet parts, or NDJSON by resource type)."""
        return self.data_dir / "store"

    @property
    def runs_file(self) -> Path:
        """The run records, one JSON object per line."""
        return self.data_dir / "runs.jsonl"

    @property
    def lock_file(self) -> Path:
        """The lock a running scheduler holds so a second one refuses to start."""
        return self.data_dir / "scheduler.lock"

    def interval_seconds(self) -> int | None:
        """The schedule as seconds when it is an interval, None when it is a cron expression."""
        return _interval_seconds(self.schedule)

    def with_overrides(self, **changes: Any) -> RetrainSettings:
        """A copy with some fields changed (the CLI's --fhir-server / --source)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainSettings:
        """Settings from ``EPIDOSE_*`` variables; unset ones keep their defaults; bad values raise."""
        default = cls()

        def text(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        def parsed(name: str, current: Any, kind: type, what: str, minimum: float) -> Any:
            value = text(name)
            if value is None:
                return current
            try:
                result = kind(value)
            except ValueError as error:
                raise RetrainSettingsError(f"{name} must be {what}") from error
            if result < minimum:
                raise RetrainSettingsError(f"{name} must be at least {minimum}")
            return result

        def number(name: str, current: float, *, minimum: float = 0.0) -> float:
            return float(parsed(name, current, float, "a number", minimum))

        def integer(name: str, current: int, *, minimum: int = 0) -> int:
            return int(parsed(name, current, int, "an integer", minimum))

        def flag(name: str, current: bool) -> bool:
            value = text(name)
            if value is None:
                return current
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise RetrainSettingsError(f"{name} must be true or false")

        def path(name: str) -> Path | None:
            value = text(name)
            return Path(value) if value else None

        auth = (text("EPIDOSE_FHIR_AUTH") or default.auth).lower()
        if auth not in {"none", "bearer", "smart"}:
            raise RetrainSettingsError("EPIDOSE_FHIR_AUTH must be none, bearer or smart")
        algorithm = (text("EPIDOSE_SMART_ALGORITHM") or default.smart_algorithm).upper()
        if algorithm not in {"RS384", "ES384"}:
            raise RetrainSettingsError("EPIDOSE_SMART_ALGORITHM must be RS384 or ES384")
        url = text("EPIDOSE_FHIR_SERVER_URL")
        if url is not None and not url.startswith(("http://", "https://")):
            raise RetrainSettingsError("EPIDOSE_FHIR_SERVER_URL must be an http(s) URL")
        schedule = text("EPIDOSE_RETRAIN_SCHEDULE") or default.schedule
        if _interval_seconds(schedule) is None and len(schedule.split()) != 5:
            raise RetrainSettingsError("EPIDOSE_RETRAIN_SCHEDULE must be a 5-field cron or an interval like 6h")
        store_format = (text("EPIDOSE_RETRAIN_STORE_FORMAT") or default.store_format).lower()
        if store_format not in {"parquet", "ndjson"}:
            raise RetrainSettingsError("EPIDOSE_RETRAIN_STORE_FORMAT must be parquet or ndjson")
        holdout = number("EPIDOSE_RETRAIN_HOLDOUT", default.holdout_fraction)
        if not 0.0 < holdout < 1.0:
            raise RetrainSettingsError("EPIDOSE_RETRAIN_HOLDOUT must be between 0 and 1")

        settings = cls(
            data_dir=path("EPIDOSE_RETRAIN_DIR") or service_data_dir(env) / "retrain",
            registry_dir=path("EPIDOSE_MODEL_DIR") or service_data_dir(env) / "models",
            database_url=text("EPIDOSE_DATABASE_URL") or "",
            fhir_server_url=url.rstrip("/") if url else None,
            source_dir=path("EPIDOSE_RETRAIN_SOURCE"),
            simulator_dir=path("EPIDOSE_RETRAIN_SIMULATOR_DIR"),
            auth=auth,  # type: ignore[arg-type]
            bearer_token=text("EPIDOSE_FHIR_BEARER_TOKEN"),
            smart_client_id=text("EPIDOSE_SMART_CLIENT_ID"),
            smart_private_key=path("EPIDOSE_SMART_PRIVATE_KEY"),
            smart_key_id=text("EPIDOSE_SMART_KEY_ID"),
            smart_algorithm=algorithm,  # type: ignore[arg-type]
            smart_scope=text("EPIDOSE_SMART_SCOPE") or default.smart_scope,
            bulk_export=flag("EPIDOSE_FHIR_BULK_EXPORT", default.bulk_export),
            request_timeout=number("EPIDOSE_RETRAIN_FHIR_TIMEOUT", default.request_timeout, minimum=0.001),
            retries=integer("EPIDOSE_FHIR_RETRIES", default.retries),
            backoff_base=number("EPIDOSE_FHIR_BACKOFF", default.backoff_base),
            backoff_max=number("EPIDOSE_FHIR_BACKOFF_MAX", default.backoff_max),
            page_size=integer("EPIDOSE_FHIR_PAGE_SIZE", default.page_size, minimum=1),
            bulk_poll_limit=number("EPIDOSE_FHIR_BULK_TIMEOUT", default.bulk_poll_limit, minimum=1.0),
            schedule=schedule,
            agreement_margin=number("EPIDOSE_RETRAIN_AGREEMENT_MARGIN", default.agreement_margin),
            ope_estimator=text("EPIDOSE_RETRAIN_OPE_ESTIMATOR"),
            holdout_fraction=holdout,
            split_seed=integer("EPIDOSE_RETRAIN_SPLIT_SEED", default.split_seed),
            behaviour_steps=integer("EPIDOSE_RETRAIN_BEHAVIOUR_STEPS", default.behaviour_steps, minimum=1),
            bootstrap_samples=integer("EPIDOSE_RETRAIN_BOOTSTRAP", default.bootstrap_samples, minimum=20),
            initial_config=text("EPIDOSE_RETRAIN_INITIAL_CONFIG") or default.initial_config,
            initial_steps=integer("EPIDOSE_RETRAIN_INITIAL_STEPS", 0, minimum=1) if text("EPIDOSE_RETRAIN_INITIAL_STEPS") else None,
            keep=integer("EPIDOSE_REGISTRY_KEEP", default.keep, minimum=2),
            nice=integer("EPIDOSE_SCHEDULER_NICE", default.nice),
            store_format=store_format,  # type: ignore[arg-type]
        )
        settings.check_auth()
        return settings

    def check_auth(self) -> None:
        """Refuse an auth mode whose credentials are missing (checked at start-up, not mid-pull)."""
        if self.auth == "bearer" and not self.bearer_token:
            raise RetrainSettingsError("EPIDOSE_FHIR_AUTH=bearer needs EPIDOSE_FHIR_BEARER_TOKEN")
        if self.auth == "smart" and not (self.smart_client_id and self.smart_private_key):
            raise RetrainSettingsError(
                "EPIDOSE_FHIR_AUTH=smart needs EPIDOSE_SMART_CLIENT_ID and EPIDOSE_SMART_PRIVATE_KEY"
            )


def service_data_dir(env: Mapping[str, str]) -> Path:
    """The service's data folder, resolved exactly as ``plugin.settings`` does (EPIDOSE_DATA_DIR, else XDG)."""
    explicit = (env.get("EPIDOSE_DATA_DIR") or "").strip()
    if explicit:
        return Path(explicit)
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base) / "epidose"


def _interval_seconds(schedule: str) -> int | None:
    match = _INTERVAL.match(schedule)
    if not match:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds > 0 else None
