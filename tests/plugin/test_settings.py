"""Settings: read once from EPIDOSE_* variables with secure defaults and refusal of unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.confdoc import service_rows
from plugin.settings import Settings, SettingsError

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (the bind these tests refuse or allow)


def test_defaults_are_secure() -> None:
    """With no variables set: auth on, CORS closed, loopback bind, ES384/RS384 only."""
    settings = Settings.from_env({"HOME": "/home/someone"})
    assert settings.auth is True and settings.cors_origins == () and settings.host == "127.0.0.1"
    assert settings.jwt_algorithms == ("ES384", "RS384")
    assert settings.data_dir == Path("/home/someone/.local/share/epidose")
    assert settings.bench_constant_card is False


def test_variables_are_parsed(tmp_path: Path) -> None:
    """Each EPIDOSE_* variable reaches its typed field."""
    env = {"EPIDOSE_AUTH": "off", "EPIDOSE_JWKS": '{"https://iss": "/keys/jwks.json"}', "EPIDOSE_PORT": "9000",
           "EPIDOSE_CORS_ORIGINS": "https://a.org, https://b.org", "EPIDOSE_DATA_DIR": str(tmp_path),
           "EPIDOSE_PUBLIC_BASE_URL": "https://cds.example.org/x/", "EPIDOSE_FHIR_BUDGET_SECONDS": "0.25"}
    settings = Settings.from_env(env)
    assert settings.auth is False and settings.port == 9000
    assert settings.jwks == {"https://iss": "/keys/jwks.json"}
    assert settings.cors_origins == ("https://a.org", "https://b.org")
    assert settings.public_base_url == "https://cds.example.org/x"
    assert settings.database_path == tmp_path / "epidose.sqlite3"
    assert settings.fhir_budget_seconds == 0.25


@pytest.mark.parametrize("env", [
    {"EPIDOSE_JWT_ALGORITHMS": "HS256"},
    {"EPIDOSE_JWT_ALGORITHMS": "none"},
    {"EPIDOSE_AUTH": "maybe"},
    {"EPIDOSE_JWKS": "[1]"},
    {"EPIDOSE_JWKS": '{"https://iss": "http://keys.example.org/jwks"}'},
    {"EPIDOSE_PORT": "eighty"},
    {"EPIDOSE_PUBLIC_BASE_URL": "cds.example.org"},
    {"EPIDOSE_JKU_ALLOWLIST": "http://ehr.example.org/jwks.json"},
    {"EPIDOSE_JWKS": '{"https://iss": ""}'},
    {"EPIDOSE_MAX_TOKEN_LIFETIME_SECONDS": "0"},
    {"EPIDOSE_AUTH": "off", "EPIDOSE_HOST": ALL_INTERFACES},
    {"EPIDOSE_AUTH": "off", "EPIDOSE_HOST": "10.1.2.3", "EPIDOSE_PUBLIC_BASE_URL": "https://cds.example.org"},
    {"EPIDOSE_HOST": ALL_INTERFACES},
    {"EPIDOSE_HOST": "::"},
])
def test_unsafe_or_invalid_values_are_refused(env: dict[str, str]) -> None:
    """HMAC or none algorithms, plain-http remote JWKS and unparsable values stop start-up."""
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_reference_documents_every_variable() -> None:
    """The generated configuration reference has a description for every variable."""
    rows = service_rows()
    assert {name for name, _, _ in rows} >= {"EPIDOSE_AUTH", "EPIDOSE_JWKS", "EPIDOSE_CORS_ORIGINS", "EPIDOSE_DATA_DIR"}
    assert all(description for _, _, description in rows)


def test_settings_command_prints_the_reference() -> None:
    """`epidose settings` prints one Markdown row per variable, secure defaults included."""
    from click.testing import CliRunner

    from plugin.cli import main
    from training.retrain.settings import RetrainSettings

    result = CliRunner().invoke(main, ["settings"])
    assert result.exit_code == 0
    assert "| `EPIDOSE_AUTH` | `on` |" in result.output
    assert result.output.count("\n| `EPIDOSE_") >= len(service_rows()) + len(RetrainSettings.model_fields) - 2


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_binds_may_omit_the_public_base_url_or_turn_auth_off(host: str) -> None:
    """On loopback the audience may come from the request and authentication may be off (development)."""
    assert Settings.from_env({"EPIDOSE_HOST": host}).public_base_url == ""
    assert Settings.from_env({"EPIDOSE_HOST": host, "EPIDOSE_AUTH": "off"}).auth is False


def test_exposed_bind_needs_auth_and_the_public_base_url() -> None:
    """Beyond loopback, auth on with EPIDOSE_PUBLIC_BASE_URL starts; the error names the missing setting."""
    settings = Settings.from_env({"EPIDOSE_HOST": ALL_INTERFACES, "EPIDOSE_PUBLIC_BASE_URL": "https://cds.example.org"})
    assert settings.host == ALL_INTERFACES
    with pytest.raises(SettingsError, match="EPIDOSE_PUBLIC_BASE_URL"):
        Settings.from_env({"EPIDOSE_HOST": ALL_INTERFACES})
    with pytest.raises(SettingsError, match="EPIDOSE_AUTH=off"):
        Settings.from_env({"EPIDOSE_HOST": ALL_INTERFACES, "EPIDOSE_AUTH": "off"})


def test_key_trust_settings_are_parsed() -> None:
    """An issuer may map to null (keys from an allowlisted jku); the token lifetime limit is read as seconds."""
    settings = Settings.from_env({"EPIDOSE_JWKS": '{"https://sandbox.cds-hooks.org": null}',
                                  "EPIDOSE_JKU_ALLOWLIST": "https://sandbox.cds-hooks.org/.well-known/jwks.json",
                                  "EPIDOSE_MAX_TOKEN_LIFETIME_SECONDS": "900"})
    assert settings.jwks == {"https://sandbox.cds-hooks.org": None}
    assert settings.max_token_lifetime_seconds == 900
    assert Settings.from_env({}).max_token_lifetime_seconds == 300


@pytest.mark.parametrize(("env", "named"), [({"EPIDOSE_AUTH": "off"}, "EPIDOSE_AUTH=off"),
                                            ({}, "EPIDOSE_PUBLIC_BASE_URL")])
def test_serve_refuses_an_exposed_bind_with_a_clear_error(env: dict[str, str], named: str, tmp_path: Path) -> None:
    """`epidose serve --host 0.0.0.0` stops before binding, with a message naming the setting, not a traceback."""
    from click.testing import CliRunner

    from plugin.cli import main

    result = CliRunner().invoke(main, ["serve", "--host", ALL_INTERFACES, "--port", "1"],
                                env={"EPIDOSE_DATA_DIR": str(tmp_path), **env})
    assert result.exit_code == 1
    assert named in result.output and "Traceback" not in result.output
