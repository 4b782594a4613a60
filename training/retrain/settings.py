"""Settings of the retraining job: typed ``EPIDOSE_*`` variables (pydantic-settings), read from a mapping.

The CLI hands in the environment (:meth:`RetrainSettings.from_env`), so tests build settings from
plain dicts; constructing the class directly reads nothing. A value that cannot be used, or a choice
that is none of the valid ones (``EPIDOSE_RETRAIN_OPE_ESTIMATOR=fqe``), stops the start with one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from training.settings_base import EnvSettings, SettingsError, default_data_dir

AuthMode = Literal["none", "bearer", "smart"]
SmartAlgorithm = Literal["RS384", "ES384"]  # the two SMART Backend Services requires
OpeEstimator = Literal["wis", "wdr"]  # what the held-out comparison computes (training.retrain.gate)
StoreFormat = Literal["parquet", "ndjson"]
ConfigName = Literal["paper", "double", "conservative", "conservative_light", "conservative_ae", "bc", "forest",
                     "light_bounded", "lighter_bounded", "light_nstep", "light_mc", "light_ensemble", "light_bcq",
                     "light_bcq_nstep", "light_combined", "light_smdp", "iql", "iql_sharp"]  # training.policies.config.CONFIGS
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SMART_SCOPE = "system/Patient.rs system/Encounter.rs system/Observation.rs system/Condition.rs system/MedicationRequest.rs"


class RetrainSettings(EnvSettings):
    """Everything the retraining job, its FHIR client and its scheduler need."""

    section: ClassVar[str] = "Retraining (`epidose retrain`, `epidose scheduler`)"

    data_dir: Path = Field(Path("retrain"), validation_alias="EPIDOSE_RETRAIN_DIR")
    """Raw resource store, watermark, run records and the scheduler lock
    (default ``<EPIDOSE_DATA_DIR>/retrain``, the service's data folder)."""
    registry_dir: Path = Field(Path("models"), validation_alias="EPIDOSE_MODEL_DIR")
    """The model registry the service follows, shared with the service's setting of
    the same name (default ``<EPIDOSE_DATA_DIR>/models``)."""
    database_url: str = Field("", validation_alias="EPIDOSE_DATABASE_URL", repr=False)
    """The service's PostgreSQL database (shared with it); when set, run records,
    the registry's pointer and the one-run lock live there, so hosts retrain and promote together."""
    fhir_server_url: str | None = Field(None, validation_alias="EPIDOSE_FHIR_SERVER_URL")
    """FHIR R4 base URL to pull from; unset means the local source folder."""
    source_dir: Path | None = Field(None, validation_alias="EPIDOSE_RETRAIN_SOURCE")
    """Folder of FHIR NDJSON (cohort layout) used when no server is set."""
    simulator_dir: Path | None = Field(None, validation_alias="EPIDOSE_RETRAIN_SIMULATOR_DIR")
    """Simulated cohort folder (``epidose cohort``) whose truth files give
    the physicians' probabilities and the true values the gate also compares (simulated data only)."""
    auth: AuthMode = Field("none", validation_alias="EPIDOSE_FHIR_AUTH")
    """none, bearer (static token) or smart (SMART Backend Services)."""
    bearer_token: str | None = Field(None, validation_alias="EPIDOSE_FHIR_BEARER_TOKEN", repr=False)
    """The static token for auth=bearer (never logged)."""
    smart_client_id: str | None = Field(None, validation_alias="EPIDOSE_SMART_CLIENT_ID")
    """Client id registered with the authorization server."""
    smart_private_key: Path | None = Field(None, validation_alias="EPIDOSE_SMART_PRIVATE_KEY")
    """PEM file of the private key that signs the client assertion."""
    smart_key_id: str | None = Field(None, validation_alias="EPIDOSE_SMART_KEY_ID")
    """``kid`` of that key in the client's published JWKS."""
    smart_algorithm: SmartAlgorithm = Field("RS384", validation_alias="EPIDOSE_SMART_ALGORITHM")
    """RS384 or ES384, the two algorithms SMART Backend Services requires."""
    smart_scope: str = Field(SMART_SCOPE, validation_alias="EPIDOSE_SMART_SCOPE")
    """Scopes requested with the token (read access to what we pull)."""
    bulk_export: bool = Field(False, validation_alias="EPIDOSE_FHIR_BULK_EXPORT")
    """Pull with Bulk Data $export instead of paged searches."""
    request_timeout: float = Field(30.0, validation_alias="EPIDOSE_RETRAIN_FHIR_TIMEOUT", ge=0.001)
    """Seconds per HTTP request of a pull (connect and read)."""
    retries: int = Field(4, validation_alias="EPIDOSE_FHIR_RETRIES", ge=0)
    """Retries after the first attempt on 429, 5xx, timeouts, lost connections."""
    backoff_base: float = Field(0.5, validation_alias="EPIDOSE_FHIR_BACKOFF", ge=0)
    """First backoff in seconds; doubles each retry, with full jitter."""
    backoff_max: float = Field(30.0, validation_alias="EPIDOSE_FHIR_BACKOFF_MAX", ge=0)
    """Longest wait between retries, also the cap on Retry-After."""
    page_size: int = Field(200, validation_alias="EPIDOSE_FHIR_PAGE_SIZE", ge=1)
    """``_count`` per search page."""
    bulk_poll_limit: float = Field(3600.0, validation_alias="EPIDOSE_FHIR_BULK_TIMEOUT", ge=1)
    """Seconds to wait for a $export to complete before failing."""
    schedule: str = Field("0 2 * * *", validation_alias="EPIDOSE_RETRAIN_SCHEDULE")
    """Five-field cron (server local time) or an interval such as 6h, 30m, 1d."""
    agreement_margin: float = Field(0.02, validation_alias="EPIDOSE_RETRAIN_AGREEMENT_MARGIN", ge=0)
    """Largest drop in top-1 agreement the gate tolerates (0.02 = 2 points)."""
    ope_estimator: OpeEstimator | None = Field(None, validation_alias="EPIDOSE_RETRAIN_OPE_ESTIMATOR")
    """Off-policy estimator whose lower bound is gated; unset = all in common."""
    holdout_fraction: float = Field(0.2, validation_alias="EPIDOSE_RETRAIN_HOLDOUT", gt=0, lt=1)
    """Share of patients held out for the champion/candidate comparison."""
    split_seed: int = Field(0, validation_alias="EPIDOSE_RETRAIN_SPLIT_SEED", ge=0)
    """Seed of the patient-level split (same split for both models)."""
    behaviour_steps: int = Field(2000, validation_alias="EPIDOSE_RETRAIN_BEHAVIOUR_STEPS", ge=1)
    """Behaviour-cloning steps estimating the physicians' policy for OPE when the data carries no true
    behaviour probabilities; the default is the evaluation report's (training.evaluation.score), so the gate
    and the report judge against the same estimate."""
    bootstrap_samples: int = Field(500, validation_alias="EPIDOSE_RETRAIN_BOOTSTRAP", ge=20)
    """Bootstrap resamples (over patients) behind each off-policy interval."""
    initial_config: ConfigName = Field("conservative_light", validation_alias="EPIDOSE_RETRAIN_INITIAL_CONFIG")
    """Training configuration of the first model when none is in service
    (later runs reuse the champion's); conservative_light, like the service's embedded default model."""
    initial_steps: int | None = Field(None, validation_alias="EPIDOSE_RETRAIN_INITIAL_STEPS", ge=1)
    """Gradient steps of the first model; unset = the configuration's own."""
    keep: int = Field(5, validation_alias="EPIDOSE_REGISTRY_KEEP", ge=2)
    """Model versions kept in the registry (the current and previous always are)."""
    nice: int = Field(10, validation_alias="EPIDOSE_SCHEDULER_NICE", ge=0)
    """Niceness added to the scheduler process so the service keeps priority."""
    store_format: StoreFormat = Field("ndjson", validation_alias="EPIDOSE_RETRAIN_STORE_FORMAT")
    """Format of a new raw resource store: ndjson (one file per resource type, the default) or parquet
    (columnar: half the CPU of a first pull, a quarter of an incremental one, a twentieth of the disk,
    ~10% more peak memory; bench/RESULTS.md); a folder already holding a store keeps the format it has."""

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
        return self.model_copy(update=changes)

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_in_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("store_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("smart_algorithm", mode="before")
    @classmethod
    def _algorithm_in_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("fhir_server_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("schedule")
    @classmethod
    def _cron_or_interval(cls, value: str) -> str:
        if _interval_seconds(value) is not None:
            return value
        if len(value.split()) != 5:
            raise ValueError("must be a 5-field cron or an interval like 6h")
        try:  # the scheduler's own parser, where it is installed (the train extra), so a bad field stops the start
            from apscheduler.triggers.cron import CronTrigger
        except ImportError:
            return value
        try:
            CronTrigger.from_crontab(value)
        except ValueError as error:
            raise ValueError(f"is not a valid cron expression ({error})") from None
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetrainSettings:
        """Settings from ``EPIDOSE_*`` variables; unset ones keep their defaults; bad values raise SettingsError."""
        data_dir = default_data_dir(env)
        settings: RetrainSettings = cls.read(env, defaults={"data_dir": data_dir / "retrain",
                                                           "registry_dir": data_dir / "models"})
        settings.check_auth()
        return settings

    def check_auth(self) -> None:
        """Refuse an auth mode whose credentials are missing (checked at start-up, not mid-pull)."""
        if self.auth == "bearer" and not self.bearer_token:
            raise SettingsError("EPIDOSE_FHIR_AUTH=bearer needs EPIDOSE_FHIR_BEARER_TOKEN")
        if self.auth == "smart" and not (self.smart_client_id and self.smart_private_key):
            raise SettingsError("EPIDOSE_FHIR_AUTH=smart needs EPIDOSE_SMART_CLIENT_ID and EPIDOSE_SMART_PRIVATE_KEY")


def _interval_seconds(schedule: str) -> int | None:
    match = _INTERVAL.match(schedule)
    if not match:
        return None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds > 0 else None
