"""JWT authentication of CDS clients, CORS and the public endpoints (CDS Hooks 2.0 §Trusting CDS Clients)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from tests.plugin.fixtures import ISSUER, Signer, hook_request, patient_resources

BASE = "https://cds.example.org/epidose"
DISCOVERY = BASE + "/cds-services"
PV_PATH = "/cds-services/epidose-patient-view"


@pytest.fixture
def secured(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app(auth=True, public_base_url=BASE, cors_origins=("https://ehr.example.org",)).test_client()


def _get(client: FlaskClient, token: str | None, path: str = "/cds-services") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get(path, headers=headers)


def test_valid_token_opens_discovery_and_hooks(secured: FlaskClient, signer: Signer) -> None:
    """An ES384 token from the allowlisted issuer with aud = the called URL is accepted on discovery and hooks."""
    assert _get(secured, signer.token(DISCOVERY)).status_code == 200
    response = secured.post(PV_PATH, json=hook_request("patient-view", patient_resources()),
                            headers={"Authorization": "Bearer " + signer.token(BASE + PV_PATH)})
    assert response.status_code == 200 and response.get_json()["cards"]


def test_audience_may_be_an_array(secured: FlaskClient, signer: Signer) -> None:
    """An aud array containing the endpoint URL is accepted."""
    assert _get(secured, signer.token([DISCOVERY, "https://other.example.org"])).status_code == 200  # type: ignore[arg-type]


def _other_key_token(signer: Signer) -> str:
    other = ec.generate_private_key(ec.SECP384R1())
    return signer.token(DISCOVERY, key=other)


NEGATIVES: dict[str, Callable[[Signer], str | None]] = {
    "no token": lambda s: None,
    "wrong aud": lambda s: s.token(BASE + "/cds-services/epidose-order-sign"),
    "aud without public base": lambda s: s.token("http://localhost/cds-services"),
    "expired": lambda s: s.token(DISCOVERY, exp_in=-600),
    "future iat": lambda s: s.token(DISCOVERY, iat_shift=600),
    "unknown issuer": lambda s: s.token(DISCOVERY, iss="https://evil.example.org"),
    "unknown kid": lambda s: s.token(DISCOVERY, kid="nope"),
    "alg none": lambda s: jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60,
                                      "iat": int(time.time()), "jti": str(uuid.uuid4())}, None, algorithm="none"),
    "HS256": lambda s: s.token(DISCOVERY, key="a-shared-secret-that-is-long-enough-for-hs256-0123456789",
                               algorithm="HS256"),
    "bad signature": _other_key_token,
    "no jti": lambda s: jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60,
                                    "iat": int(time.time())}, s.key, algorithm="ES384", headers={"kid": "test-key-1"}),
    "garbage": lambda s: "not.a.jwt",
    "not yet valid": lambda s: s.token(DISCOVERY, nbf=int(time.time()) + 600),
}


@pytest.mark.parametrize("case", sorted(NEGATIVES))
def test_bad_tokens_get_a_bare_401(secured: FlaskClient, signer: Signer, case: str) -> None:
    """Every invalid token is refused with 401 and an empty body."""
    response = _get(secured, NEGATIVES[case](signer))
    assert response.status_code == 401
    assert response.get_data() == b""


def test_replayed_jti_is_refused(secured: FlaskClient, signer: Signer) -> None:
    """The same token (same jti) is accepted once only."""
    token = signer.token(DISCOVERY)
    assert _get(secured, token).status_code == 200
    assert _get(secured, token).status_code == 401


def test_replay_is_caught_across_workers(make_app: Callable[..., Flask], signer: Signer) -> None:
    """Two apps sharing one store (two workers) refuse a jti the other has seen."""
    first = make_app(auth=True, public_base_url=BASE).test_client()
    second = make_app(auth=True, public_base_url=BASE).test_client()
    token = signer.token(DISCOVERY)
    assert _get(first, token).status_code == 200
    assert _get(second, token).status_code == 401


def test_es256_only_when_configured(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """ES256 is refused by default and accepted once listed in EPIDOSE_JWT_ALGORITHMS."""
    folder = tmp_path / "es256"
    folder.mkdir()
    signer = Signer(folder, "ES256")
    default = make_app(auth=True, public_base_url=BASE, jwks={ISSUER: str(signer.jwks_path)}).test_client()
    assert _get(default, signer.token(DISCOVERY)).status_code == 401
    allowing = make_app(auth=True, public_base_url=BASE, jwks={ISSUER: str(signer.jwks_path)},
                        jwt_algorithms=("ES384", "ES256")).test_client()
    assert _get(allowing, signer.token(DISCOVERY)).status_code == 200


def test_rs384_is_accepted(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """RS384 (Epic's choice) is accepted by default."""
    folder = tmp_path / "rs"
    folder.mkdir()
    signer = Signer(folder, "RS384")
    client = make_app(auth=True, public_base_url=BASE, jwks={ISSUER: str(signer.jwks_path)}).test_client()
    assert _get(client, signer.token(DISCOVERY)).status_code == 200


def test_jku_must_be_allowlisted(make_app: Callable[..., Flask], signer: Signer, tmp_path: Path) -> None:
    """A jku header is followed only to an allowlisted URL (fetched once and cached)."""
    fetched: list[str] = []
    jwks = json.loads(signer.jwks_path.read_text())

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return jwks

    from plugin import create_app
    from plugin.settings import Settings
    from tests.plugin.fixtures import fake_loader

    settings = Settings.from_env({}, auth=True, public_base_url=BASE, data_dir=tmp_path / "d",
                                 model_dir=tmp_path / "models", hash_key="k",
                                 jwks={ISSUER: "https://ehr.example.org/jwks.json"})
    client = create_app(settings, loader=fake_loader, jwks_fetch=fetch).test_client()

    def with_jku(url: str) -> str:
        now = time.time()
        return jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(now + 60), "iat": int(now),
                           "jti": str(uuid.uuid4())}, signer.key, algorithm="ES384",
                          headers={"kid": "test-key-1", "jku": url})

    assert _get(client, with_jku("https://attacker.example.org/jwks.json")).status_code == 401
    assert fetched == []
    assert _get(client, with_jku("https://ehr.example.org/jwks.json")).status_code == 200
    assert _get(client, with_jku("https://ehr.example.org/jwks.json")).status_code == 200
    assert fetched == ["https://ehr.example.org/jwks.json"]


def test_health_and_model_page_need_no_token(secured: FlaskClient) -> None:
    """Health, metrics and the model page are public (no patient data); CDS endpoints are not."""
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/metrics").status_code == 200
    assert secured.get("/models/current").status_code == 200
    assert secured.get("/cds-services").status_code == 401
    assert secured.post(PV_PATH + "/feedback", json={}).status_code == 401


def test_cors_preflight_allows_only_listed_origins(secured: FlaskClient) -> None:
    """A preflight from an allowlisted origin gets the CORS headers; others get none."""
    allowed = secured.options(PV_PATH, headers={"Origin": "https://ehr.example.org",
                                                "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    refused = secured.options(PV_PATH, headers={"Origin": "https://evil.example.org",
                                                "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.status_code == 403


def test_auth_off_warns_on_every_start(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    """Turning authentication off logs a loud warning each time an app starts."""
    caplog.set_level(logging.WARNING)
    make_app(auth=False)
    make_app(auth=False)
    assert sum("AUTHENTICATION IS DISABLED" in r.getMessage() for r in caplog.records) == 2


def test_tokens_are_never_logged(secured: FlaskClient, signer: Signer, caplog: pytest.LogCaptureFixture) -> None:
    """Neither JWTs nor the patient id appear in the logs of accepted or refused calls."""
    caplog.set_level(logging.DEBUG)
    token = signer.token(DISCOVERY)
    _get(secured, token)
    _get(secured, token)
    body = hook_request("patient-view", patient_resources(patient="secret-patient-42"), patient="secret-patient-42")
    secured.post(PV_PATH, json=body, headers={"Authorization": "Bearer " + signer.token(BASE + PV_PATH)})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and "secret-patient-42" not in text


def test_jku_of_another_trusted_issuer_cannot_sign_for_this_one(make_app: Callable[..., Flask], signer: Signer,
                                                                tmp_path: Path) -> None:
    """An allowlisted JWKS URL on another issuer's host is refused for tokens claiming this issuer."""
    jwks = json.loads(signer.jwks_path.read_text())
    from plugin import create_app
    from plugin.settings import Settings
    from tests.plugin.fixtures import fake_loader

    settings = Settings.from_env({}, auth=True, public_base_url=BASE, data_dir=tmp_path / "d",
                                 model_dir=tmp_path / "models", hash_key="k",
                                 jwks={ISSUER: "https://ehr.example.org/jwks.json",
                                       "https://other-ehr.example.net": "https://other-ehr.example.net/jwks.json"},
                                 jku_allowlist=("https://other-ehr.example.net/keys/rotated.json",
                                                "https://ehr.example.org/keys/rotated.json"))
    client = create_app(settings, loader=fake_loader, jwks_fetch=lambda url: jwks).test_client()

    def with_jku(url: str) -> str:
        now = time.time()
        return jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(now + 60), "iat": int(now),
                           "jti": str(uuid.uuid4())}, signer.key, algorithm="ES384",
                          headers={"kid": "test-key-1", "jku": url})

    assert _get(client, with_jku("https://other-ehr.example.net/keys/rotated.json")).status_code == 401
    assert _get(client, with_jku("https://ehr.example.org/keys/rotated.json")).status_code == 200
