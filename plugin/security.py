"""CDS client authentication (CDS Hooks 2.0 "Trusting CDS Clients") and CORS.

Every call, discovery included, carries ``Authorization: Bearer <JWT>`` (the scheme matched
case-insensitively, RFC 6750 §2.1). A token is accepted only when:

- its header names ``typ: JWT``, a ``kid`` and a configured asymmetric ``alg`` (ES384/RS384 by
  default; never ``none`` or HMAC), each field of the right type;
- its issuer is trusted (``EPIDOSE_JWKS``) and its key comes from that issuer's key set. Keys pinned
  out of band (a file, or a configured URL) are used whatever the token's ``jku`` says, and the ``jku``
  is never fetched. Only for an issuer trusted without pinned keys (``null``) is the ``jku`` followed,
  and only when it is listed in ``EPIDOSE_JKU_ALLOWLIST`` and lies on that issuer's own origin;
- ``aud`` is the URL the client called, exp/iat/nbf hold within a small skew, the token lives no longer
  than ``EPIDOSE_MAX_TOKEN_LIFETIME_SECONDS`` (exp − iat) and its ``jti`` has not been seen before.

Any failure is a bare 401 to the caller and one log line for the operator naming the reason and the
issuer (never the token), counted per reason in ``epidose_auth_refusals_total``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import jwt
import requests
from flask import Flask, Response, current_app, g, request

from plugin.errors import Unauthorized
from plugin.settings import Settings
from plugin.trust import allowed_jkus, startup_notices

log = logging.getLogger(__name__)

JWKS_CACHE_SECONDS = 300.0
JWKS_FETCH_TIMEOUT_SECONDS = 2.0
JWKS_MIN_REFRESH_SECONDS = 30.0  # unknown kids must not make us hammer the issuer's JWKS endpoint
MAX_TOKEN_CHARS: Final = 16_384  # far above any client JWT; bounds the work done on garbage
MAX_LOGGED_CHARS: Final = 120  # issuer, aud and kid come from an unverified token: logged shortened
# Paths that must stay reachable without a JWT: health for orchestrators, metrics (aggregate counts
# only), the model page (opened by clinicians in a browser from the card's link; aggregate facts), the
# follow-up Questionnaire (a form definition, no patient data).
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/models/", "/fhir/Questionnaire/")

# Why a token was refused: the metric's label values and the log line's first words.
REFUSAL_REASONS: Final = {
    "no_bearer": "no Bearer token",
    "malformed": "malformed token",
    "bad_typ": "typ is not JWT",
    "no_kid": "no kid in the header",
    "algorithm": "algorithm not accepted",
    "unknown_issuer": "unknown issuer",
    "jku_not_allowed": "jku not allowed",
    "keys_unavailable": "key set unavailable",
    "unknown_kid": "kid not in the issuer's key set",
    "bad_signature": "bad signature",
    "expired": "expired",
    "not_yet_valid": "not yet valid (nbf or iat in the future)",
    "lifetime_too_long": "token lifetime too long",
    "missing_claim": "required claim missing or invalid",
    "aud_mismatch": "aud mismatch",
    "replayed_jti": "replayed jti",
}


class Refused(Unauthorized):
    """A token was refused for ``reason`` (a key of :data:`REFUSAL_REASONS`); ``detail`` is safe to log."""

    def __init__(self, reason: str, issuer: Any = None, detail: str = "") -> None:
        super().__init__(REFUSAL_REASONS[reason])
        self.reason = reason
        self.issuer = issuer
        self.detail = detail

    def log_line(self) -> str:
        """One line for the operator: the reason, the claimed issuer and the detail; never the token."""
        line = f"JWT refused: {REFUSAL_REASONS[self.reason]} (issuer {_shown(self.issuer)})"
        return f"{line}: {self.detail}" if self.detail else line


def _shown(value: Any) -> str:
    """An unverified value as it may be logged: quoted, escaped, shortened."""
    if value is None:
        return "none"
    text = repr(value)
    return text if len(text) <= MAX_LOGGED_CHARS else text[:MAX_LOGGED_CHARS] + "…"


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
        if _is_url(source):
            try:
                document = self._fetch(source)
            except (OSError, ValueError, requests.RequestException):
                if cached:  # the issuer's host is down: keep verifying with the keys it last served
                    return cached[1]
                raise
        else:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS without keys")
        with self._lock:
            self._cache[source] = (now, document)
        return document


def _fetch_url(url: str) -> dict[str, Any]:
    response = requests.get(url, timeout=JWKS_FETCH_TIMEOUT_SECONDS, headers={"Accept": "application/json"},
                            allow_redirects=False)  # a redirect could lead to keys the allowlist never named
    if response.status_code != 200:
        raise requests.HTTPError(f"JWKS answered {response.status_code}")
    result: dict[str, Any] = response.json()
    return result


def _is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


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
        """The token's claims, or :class:`Refused` saying why."""
        token = _bearer_token(authorization)
        header, unverified = _unverified_parts(token)
        issuer = unverified.get("iss")  # unverified until the signature is checked: used to pick keys and to log
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.settings.jwt_algorithms:
            raise Refused("algorithm", issuer, f"alg {_shown(algorithm)}")  # none/HS* never configurable
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":  # JOSE media types are case-insensitive
            raise Refused("bad_typ", issuer, f"typ {_shown(typ)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("no_kid", issuer)
        jku = header.get("jku")
        if jku is not None and not isinstance(jku, str):
            raise Refused("malformed", issuer, "jku is not a string")
        if not isinstance(issuer, str) or issuer not in self.settings.jwks:
            raise Refused("unknown_issuer", issuer)
        key = self._key(issuer, self._source(issuer, jku), kid, algorithm)
        claims = self._claims(token, key, algorithm, audience, issuer, unverified)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise Refused("missing_claim", issuer, "jti must be a non-empty string")
        replay_key = f"{issuer}\x00{jti}"
        expires = float(claims["exp"]) + self.settings.clock_skew_seconds
        if not self.replay.first_use(replay_key, expires):
            raise Refused("replayed_jti", issuer)
        if self.shared_replay is not None and not self.shared_replay(replay_key, expires):
            raise Refused("replayed_jti", issuer)
        return claims

    def _source(self, issuer: str, jku: str | None) -> str:
        """Where this issuer's keys come from: the pinned source, else an allowlisted ``jku``."""
        pinned = self.settings.jwks[issuer]
        if pinned:
            return pinned  # out-of-band trust wins: a jku is neither followed nor required to match
        if jku is None:
            raise Refused("jku_not_allowed", issuer, "no keys are pinned for this issuer and the token has no jku")
        if jku not in allowed_jkus(self.settings, issuer):
            raise Refused("jku_not_allowed", issuer, f"jku {_shown(jku)} is not in EPIDOSE_JKU_ALLOWLIST "
                                                     "on the issuer's origin")
        return jku

    def _key(self, issuer: str, source: str, kid: str, algorithm: str) -> Any:
        for refresh in (False, True):
            try:
                document = self.jwks.keys(source, refresh=refresh)
            except (OSError, ValueError, requests.RequestException) as error:
                raise Refused("keys_unavailable", issuer, f"{source}: {type(error).__name__}") from None
            candidates = [k for k in document["keys"] if isinstance(k, dict) and k.get("kid") == kid]
            if candidates:
                jwk = candidates[0]
                if jwk.get("kty") not in ("EC", "RSA"):
                    raise Refused("unknown_kid", issuer, f"kid {_shown(kid)} is not an EC or RSA key")
                try:
                    return jwt.PyJWK.from_dict(jwk, algorithm=algorithm).key
                except (jwt.PyJWTError, ValueError, TypeError, KeyError) as error:
                    raise Refused("unknown_kid", issuer, f"kid {_shown(kid)} unusable with {algorithm}: "
                                                         f"{type(error).__name__}") from None
            if not _is_url(source):
                break
        raise Refused("unknown_kid", issuer, f"kid {_shown(kid)} not in {source}")

    def _claims(self, token: str, key: Any, algorithm: str, audience: str, issuer: str,
                unverified: Mapping[str, Any]) -> dict[str, Any]:
        skew = self.settings.clock_skew_seconds
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=[algorithm], audience=audience, issuer=issuer, leeway=skew,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True},
            )
        except jwt.InvalidSignatureError:
            raise Refused("bad_signature", issuer) from None
        except jwt.ExpiredSignatureError:
            raise Refused("expired", issuer, f"exp {_shown(unverified.get('exp'))}") from None
        except jwt.ImmatureSignatureError:
            raise Refused("not_yet_valid", issuer) from None
        except jwt.InvalidAudienceError:
            raise Refused("aud_mismatch", issuer, f"expected {audience!r}, received "
                                                  f"{_shown(unverified.get('aud'))}") from None
        except jwt.MissingRequiredClaimError as error:
            raise Refused("missing_claim", issuer, f"no {error.claim}") from None
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise Refused("missing_claim", issuer, type(error).__name__) from None
        iat, exp = claims["iat"], claims["exp"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (iat, exp)):
            raise Refused("missing_claim", issuer, "exp and iat must be numbers")
        if iat > time.time() + skew:
            raise Refused("not_yet_valid", issuer, "iat in the future")
        lifetime = exp - iat
        if lifetime > self.settings.max_token_lifetime_seconds:
            raise Refused("lifetime_too_long", issuer, f"exp - iat = {lifetime:.0f} s, at most "
                                                       f"{self.settings.max_token_lifetime_seconds} s accepted")
        return claims


def _bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header (scheme case-insensitive, RFC 6750)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused("no_bearer")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise Refused("malformed", None, "not a compact JWS")
    return token


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before any check (only to find the issuer and key), or ``malformed``."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Refused("malformed", None, "not a decodable JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Refused("malformed", None, "header or claims not a JSON object")
    return header, claims


def expected_audience(settings: Settings) -> str:
    """The endpoint URL as the client sees it: public base URL + path, or the request's own URL."""
    if settings.public_base_url:
        return settings.public_base_url + request.path
    return request.base_url


def init_app(app: Flask, authenticator: Authenticator | None, metrics: Any = None, *, announce: bool = True) -> None:
    """Install JWT checking (unless disabled), CORS and the body cap; say at start whom the service trusts.

    ``announce=False`` leaves the start-up notices to the caller (``epidose serve`` says them once, not
    once per worker).
    """
    settings: Settings = app.config["EPIDOSE_SETTINGS"]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if announce:
        for level, line in startup_notices(settings):
            app.logger.log(level, "%s", line)

    @app.before_request
    def _authenticate() -> Response | None:
        if request.method == "OPTIONS":
            return _preflight(settings)
        if authenticator is None or request.path.startswith(PUBLIC_PREFIXES):
            return None
        try:
            g.jwt_claims = authenticator.verify(request.headers.get("Authorization"), expected_audience(settings))
        except Refused as refusal:
            app.logger.warning("%s", refusal.log_line())
            if metrics is not None:
                metrics.observe_auth_refusal(refusal.reason)
            raise
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
