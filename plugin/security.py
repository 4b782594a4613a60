"""CDS client authentication (CDS Hooks 2.0 "Trusting CDS Clients") and CORS.

Every call, discovery included, carries ``Authorization: Bearer <JWT>``. We accept a token only when
its issuer is allowlisted (``EPIDOSE_JWKS``), its key comes from that issuer's configured JWKS (a file,
or an https URL; a ``jku`` header must name an allowlisted URL), its algorithm is asymmetric and
configured (ES384/RS384 by default; never ``none`` or HMAC), ``aud`` is the URL the client called,
exp/iat/nbf hold within a small skew and its ``jti`` has not been seen before. Any failure is a bare
401. Tokens are never logged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from flask import Flask, Response, current_app, g, request

from plugin.errors import Unauthorized
from plugin.settings import Settings

log = logging.getLogger(__name__)

JWKS_CACHE_SECONDS = 300.0
JWKS_FETCH_TIMEOUT_SECONDS = 2.0
JWKS_MIN_REFRESH_SECONDS = 30.0  # unknown kids must not make us hammer the issuer's JWKS endpoint
# Paths that must stay reachable without a JWT: health for orchestrators, metrics (aggregate counts
# only), the model page (opened by clinicians in a browser from the card's link; aggregate facts), the
# follow-up Questionnaire (a form definition, no patient data).
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/models/", "/fhir/Questionnaire/")


class JwksCache:
    """JWKS per source (file path or URL), cached; a URL is refetched when a kid is unknown."""

    def __init__(self, fetch: Callable[[str], dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._fetch = fetch or _fetch_url

    def keys(self, source: str, *, refresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(source)
            if cached and not refresh and now - cached[0] < JWKS_CACHE_SECONDS:
                return cached[1]
            if cached and refresh and now - cached[0] < JWKS_MIN_REFRESH_SECONDS:
                return cached[1]
        if source.startswith(("https://", "http://")):
            document = self._fetch(source)
        else:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise Unauthorized("JWKS without keys")
        with self._lock:
            self._cache[source] = (now, document)
        return document


def _fetch_url(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=JWKS_FETCH_TIMEOUT_SECONDS, headers={"Accept": "application/json"})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


class ReplayCache:
    """``jti`` values seen within their token's lifetime (per process; the store adds a shared one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def first_use(self, key: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: e for k, e in self._seen.items() if e > now}
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires_at
            return True


class Authenticator:
    """Verifies CDS client JWTs against the configured issuers."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None,
                 shared_replay: Callable[[str, float], bool] | None = None) -> None:
        self.settings = settings
        self.jwks = jwks or JwksCache()
        self.replay = ReplayCache()
        self.shared_replay = shared_replay

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """The token's claims, or :class:`Unauthorized`."""
        try:
            return self._verify(authorization, audience)
        except Unauthorized:
            raise
        except (jwt.PyJWTError, ValueError, KeyError, TypeError, OSError, requests.RequestException) as error:
            log.info("JWT rejected: %s", type(error).__name__)
            raise Unauthorized("invalid token") from None

    def _verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization[len("Bearer "):].strip()
        header = jwt.get_unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in self.settings.jwt_algorithms:  # excludes none and HS*: never configurable
            raise Unauthorized("algorithm not accepted")
        unverified = jwt.decode(token, options={"verify_signature": False})
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.settings.jwks:
            raise Unauthorized("unknown issuer")
        source = self.settings.jwks[issuer]
        jku = header.get("jku")
        if jku is not None:
            # Allowlisted for *this* issuer only: another trusted issuer's JWKS must never sign for it.
            own = _origin(jku) in (_origin(source), _origin(issuer))
            if jku != source and not (jku in self.settings.jku_allowlist and own):
                raise Unauthorized("jku not allowlisted for this issuer")
            source = jku
        key = self._key(source, header.get("kid"), algorithm)
        claims: dict[str, Any] = jwt.decode(
            token, key=key, algorithms=[algorithm], audience=audience, issuer=issuer,
            leeway=self.settings.clock_skew_seconds,
            options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True},
        )
        iat = float(claims["iat"])
        if iat > time.time() + self.settings.clock_skew_seconds:
            raise Unauthorized("issued in the future")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("bad jti")
        replay_key = f"{issuer}\x00{jti}"
        expires = float(claims["exp"]) + self.settings.clock_skew_seconds
        if not self.replay.first_use(replay_key, expires):
            raise Unauthorized("replayed jti")
        if self.shared_replay is not None and not self.shared_replay(replay_key, expires):
            raise Unauthorized("replayed jti")
        return claims

    def _key(self, source: str, kid: Any, algorithm: str) -> Any:
        for refresh in (False, True):
            document = self.jwks.keys(source, refresh=refresh)
            candidates = [k for k in document["keys"] if isinstance(k, dict)]
            if kid is not None:
                candidates = [k for k in candidates if k.get("kid") == kid]
            elif len(candidates) != 1:
                candidates = []
            if candidates:
                jwk = candidates[0]
                if jwk.get("kty") not in ("EC", "RSA"):
                    raise Unauthorized("symmetric or unknown key type")
                return jwt.PyJWK.from_dict(jwk, algorithm=algorithm).key
            if not source.startswith(("https://", "http://")):
                break
        raise Unauthorized("unknown key")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def expected_audience(settings: Settings) -> str:
    """The endpoint URL as the client sees it: public base URL + path, or the request's own URL."""
    if settings.public_base_url:
        return settings.public_base_url + request.path
    return request.base_url


def init_app(app: Flask, authenticator: Authenticator | None) -> None:
    """Install JWT checking (unless disabled), CORS and the body cap."""
    settings: Settings = app.config["EPIDOSE_SETTINGS"]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if settings.auth and not settings.public_base_url:
        app.logger.warning(
            "EPIDOSE_PUBLIC_BASE_URL is not set: the JWT audience is checked against the URL built from the "
            "request's Host header. Set it to the URL clients call so a token minted for another service "
            "cannot be replayed here with a forged Host header.")
    if not settings.auth:
        app.logger.warning(
            "!!! EPIDOSE_AUTH=off: JWT AUTHENTICATION IS DISABLED. Any caller can request cards. "
            "Use this only for local development and benchmarks. !!!")

    @app.before_request
    def _authenticate() -> Response | None:
        if request.method == "OPTIONS":
            return _preflight(settings)
        if authenticator is None or request.path.startswith(PUBLIC_PREFIXES):
            return None
        g.jwt_claims = authenticator.verify(request.headers.get("Authorization"), expected_audience(settings))
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and origin in settings.cors_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def _preflight(settings: Settings) -> Response:
    origin = request.headers.get("Origin")
    response = current_app.response_class(status=204)
    if origin and origin in settings.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        response.headers["Vary"] = "Origin"
        return response
    response.status_code = 403
    return response
