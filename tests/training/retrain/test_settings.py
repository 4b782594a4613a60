"""Retraining settings come from a mapping of EPIDOSE_* variables, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from training.retrain.settings import RetrainSettings
from training.settings_base import SettingsError


def test_defaults_from_empty_environment() -> None:
    """An empty mapping gives the documented defaults (local source, nightly cron)."""
    settings = RetrainSettings.from_env({})
    assert settings.fhir_server_url is None
    assert settings.schedule == "0 2 * * *"
    assert settings.interval_seconds() is None
    assert settings.store_format == "ndjson"


def test_values_are_parsed() -> None:
    """Every variable reaches its field with the right type."""
    settings = RetrainSettings.from_env(
        {
            "EPIDOSE_FHIR_SERVER_URL": "http://127.0.0.1:8090/fhir/",
            "EPIDOSE_FHIR_AUTH": "bearer",
            "EPIDOSE_FHIR_BEARER_TOKEN": "secret-token",
            "EPIDOSE_FHIR_BULK_EXPORT": "yes",
            "EPIDOSE_RETRAIN_SCHEDULE": "6h",
            "EPIDOSE_RETRAIN_AGREEMENT_MARGIN": "0.05",
            "EPIDOSE_REGISTRY_KEEP": "3",
            "EPIDOSE_RETRAIN_DIR": "/tmp/x",
            "EPIDOSE_RETRAIN_STORE_FORMAT": "Parquet",
            "HOME": "/home/u",
        }
    )
    assert settings.fhir_server_url == "http://127.0.0.1:8090/fhir"
    assert settings.bulk_export is True
    assert settings.interval_seconds() == 6 * 3600
    assert settings.agreement_margin == 0.05
    assert settings.keep == 3
    assert settings.store_dir == Path("/tmp/x/store")
    assert settings.store_format == "parquet"
    assert settings.registry_dir == Path("/home/u/.local/share/epidose/models")
    assert "secret-token" not in repr(settings)
    with pytest.raises(ValidationError, match="frozen"):
        settings.keep = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    "env",
    [
        {"EPIDOSE_FHIR_AUTH": "basic"},
        {"EPIDOSE_FHIR_AUTH": "bearer"},
        {"EPIDOSE_FHIR_AUTH": "smart", "EPIDOSE_SMART_CLIENT_ID": "c"},
        {"EPIDOSE_SMART_ALGORITHM": "HS256"},
        {"EPIDOSE_RETRAIN_SCHEDULE": "sometimes"},
        {"EPIDOSE_RETRAIN_FHIR_TIMEOUT": "fast"},
        {"EPIDOSE_REGISTRY_KEEP": "1"},
        {"EPIDOSE_FHIR_SERVER_URL": "ftp://x"},
        {"EPIDOSE_RETRAIN_HOLDOUT": "1.5"},
        {"EPIDOSE_RETRAIN_STORE_FORMAT": "csv"},
        {"EPIDOSE_RETRAIN_SCHEDULE": "99 * * * *"},  # five fields, but minute 99: refused at start, not by the scheduler
        {"EPIDOSE_RETRAIN_OPE_ESTIMATOR": "fqe"},  # not computed on the held-out split: every run would be refused
        {"EPIDOSE_RETRAIN_INITIAL_CONFIG": "conservative_heavy"},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    """A value that cannot be used raises SettingsError naming the variable."""
    with pytest.raises(SettingsError, match=next(iter(env))):
        RetrainSettings.from_env(env)


def test_registry_follows_the_service_data_dir() -> None:
    """Without EPIDOSE_MODEL_DIR the registry is the service's ``<EPIDOSE_DATA_DIR>/models``."""
    settings = RetrainSettings.from_env({"EPIDOSE_DATA_DIR": "/srv/epidose"})
    assert settings.registry_dir == Path("/srv/epidose/models")
    assert settings.data_dir == Path("/srv/epidose/retrain")
    assert RetrainSettings.from_env({"EPIDOSE_MODEL_DIR": "/m"}).registry_dir == Path("/m")
