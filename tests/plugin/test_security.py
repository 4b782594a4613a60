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


def _raw(signer: Signer, claims: dict[str, Any] | None = None, **header: Any) -> str:
    """A token signed with the trusted key, with claims and header fields set (``None`` removes a field)."""
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": DISCOVERY, "exp": now + 60, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(claims or {})
    payload = {k: v for k, v in payload.items() if v is not None}
    fields = {"kid": "test-key-1", "typ": "JWT", **header}
    token = jwt.encode(payload, signer.key, algorithm="ES384", headers={k: v for k, v in fields.items() if v is not None})
    if "typ" in header and header["typ"] is None:  # PyJWT adds typ by default: rebuild the header without it
        token = _with_header(token, {k: v for k, v in {"alg": "ES384", **fields}.items() if v is not None}, signer)
    return token


def _with_header(token: str, header: dict[str, Any], signer: Signer) -> str:
    """The token's payload signed again under exactly ``header`` (any JSON value, types unchecked)."""
    from jwt.utils import base64url_encode

    payload_part = token.split(".")[1]
    header_part = base64url_encode(json.dumps(header, separators=(",", ":")).encode()).decode()
    signing_input = f"{header_part}.{payload_part}".encode()
    signature = jwt.algorithms.get_default_algorithms()["ES384"].sign(signing_input, signer.key)
    return f"{header_part}.{payload_part}.{base64url_encode(signature).decode()}"


def _header_token(signer: Signer, **header: Any) -> str:
    return _with_header(_raw(signer), {"alg": "ES384", "typ": "JWT", "kid": "test-key-1", **header}, signer)


TEN_YEARS = 10 * 365 * 86400
# case -> (token builder, the reason the service must log and count)
NEGATIVES: dict[str, tuple[Callable[[Signer], str | None], str]] = {
    "no token": (lambda s: None, "no_bearer"),
    "Basic scheme": (lambda s: "Basic " + s.token(DISCOVERY), "no_bearer"),
    "garbage": (lambda s: "not.a.jwt", "malformed"),
    "header not an object": (lambda s: _with_header(_raw(s), [1], s), "malformed"),  # type: ignore[arg-type]
    "not ASCII": (lambda s: s.token(DISCOVERY) + "é", "malformed"),
    "oversized": (lambda s: "a" * 20_000, "malformed"),
    "jku not a string": (lambda s: _header_token(s, jku=5), "malformed"),
    "jku an object": (lambda s: _header_token(s, jku={"url": "https://ehr.example.org/jwks.json"}), "malformed"),
    "alg none": (lambda s: jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(time.time()) + 60,
                                       "iat": int(time.time()), "jti": str(uuid.uuid4())}, None, algorithm="none",
                                      headers={"kid": "test-key-1"}), "algorithm"),
    "alg a list": (lambda s: _header_token(s, alg=["ES384"]), "algorithm"),
    "HS256": (lambda s: s.token(DISCOVERY, key="a-shared-secret-that-is-long-enough-for-hs256-0123456789",
                                algorithm="HS256"), "algorithm"),
    "no typ": (lambda s: _raw(s, typ=None), "bad_typ"),
    "typ JWS": (lambda s: _raw(s, typ="JWS"), "bad_typ"),
    "typ a number": (lambda s: _header_token(s, typ=1), "bad_typ"),
    "no kid": (lambda s: _raw(s, kid=None), "no_kid"),
    "kid a number": (lambda s: _header_token(s, kid=7), "malformed"),
    "unknown issuer": (lambda s: s.token(DISCOVERY, iss="https://evil.example.org"), "unknown_issuer"),
    "no iss": (lambda s: _raw(s, {"iss": None}), "unknown_issuer"),
    "unknown kid": (lambda s: s.token(DISCOVERY, kid="nope"), "unknown_kid"),
    "bad signature": (_other_key_token, "bad_signature"),
    "expired": (lambda s: s.token(DISCOVERY, exp_in=-600), "expired"),
    "future iat": (lambda s: s.token(DISCOVERY, iat_shift=600, exp_in=700), "not_yet_valid"),
    "not yet valid": (lambda s: s.token(DISCOVERY, nbf=int(time.time()) + 600), "not_yet_valid"),
    "exp 10 years ahead": (lambda s: s.token(DISCOVERY, exp_in=TEN_YEARS), "lifetime_too_long"),
    "lifetime 301 s": (lambda s: s.token(DISCOVERY, exp_in=301), "lifetime_too_long"),
    "exp a string": (lambda s: _raw(s, {"exp": "tomorrow"}), "missing_claim"),
    "no jti": (lambda s: _raw(s, {"jti": None}), "missing_claim"),
    "empty jti": (lambda s: _raw(s, {"jti": ""}), "missing_claim"),
    "no iat": (lambda s: _raw(s, {"iat": None}), "missing_claim"),
    "wrong aud": (lambda s: s.token(BASE + "/cds-services/epidose-order-sign"), "aud_mismatch"),
    "aud without public base": (lambda s: s.token("http://localhost/cds-services"), "aud_mismatch"),
}


@pytest.mark.parametrize("case", sorted(NEGATIVES))
def test_bad_tokens_get_a_bare_401_with_a_logged_reason(secured: FlaskClient, signer: Signer, case: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Every invalid token: 401 with an empty body, one log line with its reason, the reason's metric counted."""
    build, reason = NEGATIVES[case]
    token = build(signer)
    caplog.set_level(logging.INFO)
    if token is not None and " " in token:
        response = secured.get("/cds-services", headers={"Authorization": token})
    else:
        response = _get(secured, token)
    assert response.status_code == 401
    assert response.get_data() == b""
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("JWT refused")]
    assert refusals == [_logged(reason, refusals)]
    if token:
        assert token.split(" ")[-1] not in refusals[0]
    metrics = secured.get("/metrics").get_data(as_text=True)
    assert f'epidose_auth_refusals_total{{reason="{reason}"' in metrics


def _logged(reason: str, lines: list[str]) -> str:
    from plugin.security import REFUSAL_REASONS

    wanted = f"JWT refused: {REFUSAL_REASONS[reason]} ("
    return next((line for line in lines if line.startswith(wanted)), f"<no line starting {wanted!r}>")


def test_aud_mismatch_logs_expected_and_received(secured: FlaskClient, signer: Signer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The refusal names the issuer, the audience expected and the one received, so an integrator can fix it."""
    caplog.set_level(logging.INFO)
    assert _get(secured, signer.token("http://localhost:8080/cds-services")).status_code == 401
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("JWT refused"))
    assert ISSUER in line and DISCOVERY in line and "http://localhost:8080/cds-services" in line


def test_bearer_scheme_is_case_insensitive(secured: FlaskClient, signer: Signer) -> None:
    """RFC 6750: "bearer" and "BEARER" name the same scheme."""
    for scheme in ("bearer", "BEARER", "Bearer"):
        assert secured.get("/cds-services", headers={"Authorization": f"{scheme} {signer.token(DISCOVERY)}"}).status_code == 200


def test_lifetime_limit_is_configurable(make_app: Callable[..., Flask], signer: Signer) -> None:
    """A 900 s token (Epic's) is refused by default and accepted once the limit is raised to 900 s."""
    default = make_app(auth=True, public_base_url=BASE).test_client()
    assert _get(default, signer.token(DISCOVERY, exp_in=900)).status_code == 401
    epic = make_app(auth=True, public_base_url=BASE, max_token_lifetime_seconds=900).test_client()
    assert _get(epic, signer.token(DISCOVERY, exp_in=900)).status_code == 200
    assert _get(epic, signer.token(DISCOVERY, exp_in=901)).status_code == 401


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


def _jku_client(tmp_path: Path, signer: Signer, jwks: dict[str, str | None], allowlist: tuple[str, ...] = (),
                fetched: list[str] | None = None) -> FlaskClient:
    """A secured app whose JWKS URL fetches are answered with ``signer``'s key set and recorded."""
    from plugin import create_app
    from plugin.settings import Settings
    from tests.plugin.fixtures import fake_loader

    document = json.loads(signer.jwks_path.read_text())

    def fetch(url: str) -> dict[str, Any]:
        if fetched is not None:
            fetched.append(url)
        return document

    settings = Settings.from_env({}, auth=True, public_base_url=BASE, data_dir=tmp_path / "d",
                                 model_dir=tmp_path / "models", hash_key="k", jwks=jwks, jku_allowlist=allowlist)
    return create_app(settings, loader=fake_loader, jwks_fetch=fetch).test_client()


def _with_jku(signer: Signer, url: str, key: Any = None) -> str:
    now = time.time()
    return jwt.encode({"iss": ISSUER, "aud": DISCOVERY, "exp": int(now + 60), "iat": int(now),
                       "jti": str(uuid.uuid4())}, key or signer.key, algorithm="ES384",
                      headers={"kid": "test-key-1", "typ": "JWT", "jku": url})


def test_pinned_key_file_wins_over_any_jku(secured: FlaskClient, signer: Signer) -> None:
    """With the issuer's keys pinned in a file, a jku elsewhere is ignored: verified with the file, nothing fetched."""
    assert _get(secured, _with_jku(signer, "https://sandbox.cds-hooks.org/.well-known/jwks.json")).status_code == 200
    assert _get(secured, _with_jku(signer, "https://attacker.example.org/jwks.json")).status_code == 200
    other = ec.generate_private_key(ec.SECP384R1())
    assert _get(secured, _with_jku(signer, "https://attacker.example.org/jwks.json", key=other)).status_code == 401


def test_pinned_key_url_wins_over_an_allowlisted_jku(signer: Signer, tmp_path: Path) -> None:
    """A pinned JWKS URL is the only one fetched, even when the token's jku is allowlisted."""
    fetched: list[str] = []
    client = _jku_client(tmp_path, signer, {ISSUER: "https://ehr.example.org/jwks.json"},
                         ("https://ehr.example.org/keys/rotated.json",), fetched)
    assert _get(client, _with_jku(signer, "https://ehr.example.org/keys/rotated.json")).status_code == 200
    assert _get(client, _with_jku(signer, "https://attacker.example.org/jwks.json")).status_code == 200
    assert fetched == ["https://ehr.example.org/jwks.json"]


def test_pinned_key_url_keeps_serving_when_its_host_goes_down(signer: Signer, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Once fetched, a pinned key set keeps verifying after its cache expires if the host stops answering."""
    import requests

    from plugin import security

    calls: list[str] = []
    document = json.loads(signer.jwks_path.read_text())

    def fetch(url: str) -> dict[str, Any]:
        calls.append(url)
        if len(calls) > 1:
            raise requests.ConnectionError("down")
        return document

    cache = security.JwksCache(fetch)
    assert cache.keys("https://ehr.example.org/jwks.json") == document
    monkeypatch.setattr(security, "JWKS_CACHE_SECONDS", 0.0)
    assert cache.keys("https://ehr.example.org/jwks.json") == document
    assert len(calls) == 2


def test_jku_is_followed_only_for_an_issuer_without_pinned_keys(signer: Signer, tmp_path: Path) -> None:
    """Issuer mapped to null: its allowlisted jku is fetched (once, cached); any other jku, or none, is refused."""
    fetched: list[str] = []
    client = _jku_client(tmp_path, signer, {ISSUER: None}, ("https://ehr.example.org/jwks.json",), fetched)
    assert _get(client, _with_jku(signer, "https://attacker.example.org/jwks.json")).status_code == 401
    assert _get(client, signer.token(DISCOVERY)).status_code == 401  # no jku at all
    assert fetched == []
    assert _get(client, _with_jku(signer, "https://ehr.example.org/jwks.json")).status_code == 200
    assert _get(client, _with_jku(signer, "https://ehr.example.org/jwks.json")).status_code == 200
    assert fetched == ["https://ehr.example.org/jwks.json"]
    assert 'reason="jku_not_allowed"' in client.get("/metrics").get_data(as_text=True)


def test_unreachable_jku_is_a_logged_401(signer: Signer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An allowlisted jku whose host does not answer: bare 401 and a line saying the key set was unavailable."""
    import requests

    from plugin import create_app
    from plugin.settings import Settings
    from tests.plugin.fixtures import fake_loader

    def fetch(url: str) -> dict[str, Any]:
        raise requests.ConnectionError("no route")

    settings = Settings.from_env({}, auth=True, public_base_url=BASE, data_dir=tmp_path / "d",
                                 model_dir=tmp_path / "models", hash_key="k", jwks={ISSUER: None},
                                 jku_allowlist=("https://ehr.example.org/jwks.json",))
    client = create_app(settings, loader=fake_loader, jwks_fetch=fetch).test_client()
    caplog.set_level(logging.INFO)
    response = _get(client, _with_jku(signer, "https://ehr.example.org/jwks.json"))
    assert response.status_code == 401 and response.get_data() == b""
    assert any(r.getMessage().startswith("JWT refused: key set unavailable") for r in caplog.records)


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


def test_jku_of_another_trusted_issuer_cannot_sign_for_this_one(signer: Signer, tmp_path: Path) -> None:
    """An allowlisted JWKS URL on another issuer's origin is refused for tokens claiming this issuer."""
    allowlist = ("https://other-ehr.example.net/keys/rotated.json", "https://ehr.example.org/keys/rotated.json")
    client = _jku_client(tmp_path, signer, {ISSUER: None, "https://other-ehr.example.net": None}, allowlist)
    assert _get(client, _with_jku(signer, "https://other-ehr.example.net/keys/rotated.json")).status_code == 401
    assert _get(client, _with_jku(signer, "https://ehr.example.org/keys/rotated.json")).status_code == 200


def test_start_up_names_the_trusted_issuers(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    """At start the service logs each issuer it trusts and where its keys come from."""
    caplog.set_level(logging.INFO)
    make_app(auth=True, public_base_url=BASE, jwks={ISSUER: "/etc/epidose/ehr.json", "https://b.example.org": None},
             jku_allowlist=("https://b.example.org/jwks.json",))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trusting issuer")]
    assert len(lines) == 2
    assert ISSUER in lines[0] and "/etc/epidose/ehr.json" in lines[0]
    assert "https://b.example.org/jwks.json" in lines[1]


def test_auth_on_with_no_trusted_issuer_says_which_setting(make_app: Callable[..., Flask],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Authentication on and nobody trusted: a start-up warning names EPIDOSE_JWKS."""
    caplog.set_level(logging.INFO)
    make_app(auth=True, public_base_url=BASE, jwks={})
    assert any("EPIDOSE_JWKS" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_jku_is_fetched_over_http_and_redirects_are_not_followed(make_app: Callable[..., Flask], signer: Signer,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A real JWKS server on loopback: its allowlisted URL serves the keys; a URL that redirects is refused."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    document = signer.jwks_path.read_bytes()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/jwks.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(document)
            else:
                self.send_response(302)
                self.send_header("Location", "/jwks.json")
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        client = make_app(auth=True, public_base_url=BASE, jwks={origin: None},
                          jku_allowlist=(f"{origin}/jwks.json", f"{origin}/moved.json")).test_client()

        def token(jku: str) -> str:
            now = int(time.time())
            return jwt.encode({"iss": origin, "aud": DISCOVERY, "exp": now + 60, "iat": now, "jti": str(uuid.uuid4())},
                              signer.key, algorithm="ES384", headers={"kid": "test-key-1", "typ": "JWT", "jku": jku})

        caplog.set_level(logging.INFO)
        assert _get(client, token(f"{origin}/jwks.json")).status_code == 200
        assert _get(client, token(f"{origin}/moved.json")).status_code == 401
        assert any(r.getMessage().startswith("JWT refused: key set unavailable") for r in caplog.records)
    finally:
        server.shutdown()
        server.server_close()
