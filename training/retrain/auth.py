"""Credentials for the FHIR client: a static bearer token, or SMART Backend Services.

SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): client
credentials with a signed JWT assertion, RS384 or ES384; the token endpoint discovered from
``.well-known/smart-configuration``; the access token cached until shortly before it expires.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import requests

from training.retrain.errors import FhirAuthError, FhirConnectionError, FhirMalformedResponse

# A token is renewed this many seconds before it expires, so no request carries a dying token.
TOKEN_EXPIRY_MARGIN_S = 30.0
# SMART Backend Services: the client assertion must expire within five minutes.
ASSERTION_LIFETIME_S = 300


class Auth:
    """Adds credentials to requests; ``invalidate`` drops a cached token after a 401."""

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """Forget any cached credential (no-op when there is none)."""


class BearerAuth(Auth):
    """A static bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}


class SmartBackendAuth(Auth):
    """SMART Backend Services: a private-key JWT assertion exchanged for a cached access token."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        private_key: str,
        algorithm: str = "RS384",
        scope: str = "system/*.rs",
        key_id: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in {"RS384", "ES384"}:
            raise ValueError("SMART Backend Services requires RS384 or ES384")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._private_key = private_key
        self.algorithm = algorithm
        self.scope = scope
        self.key_id = key_id
        self._session = session or requests.Session()
        self._timeout = timeout
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_endpoint: str | None = None
        self._lock = threading.Lock()
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r})"

    def token_endpoint(self) -> str:
        """The token endpoint from ``.well-known/smart-configuration`` (looked up once)."""
        if self._token_endpoint is None:
            url = f"{self.base_url}/.well-known/smart-configuration"
            try:
                response = self._session.get(url, headers={"Accept": "application/json"}, timeout=self._timeout)
            except requests.RequestException as error:
                raise FhirConnectionError(f"SMART configuration unreachable: {type(error).__name__}") from error
            if not response.ok:
                raise FhirAuthError(response.status_code, "SMART configuration not available")
            try:
                endpoint = response.json()["token_endpoint"]
            except (ValueError, KeyError, TypeError) as error:
                raise FhirMalformedResponse("SMART configuration has no token_endpoint") from error
            self._token_endpoint = str(endpoint)
        return self._token_endpoint

    def client_assertion(self) -> str:
        """A signed, single-use JWT identifying this client to the token endpoint."""
        import jwt  # PyJWT; imported here so the static-token path needs no crypto backend

        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_endpoint(),
            "exp": now + ASSERTION_LIFETIME_S,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        headers = {"typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        return jwt.encode(claims, self._private_key, algorithm=self.algorithm, headers=headers)

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.client_assertion(),
        }
        self.token_requests += 1
        try:
            response = self._session.post(self.token_endpoint(), data=form, timeout=self._timeout)
        except requests.RequestException as error:
            raise FhirConnectionError(f"token endpoint unreachable: {type(error).__name__}") from error
        if not response.ok:
            # The body may echo the assertion; report only the status.
            raise FhirAuthError(response.status_code, "token request refused")
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as error:
            raise FhirMalformedResponse("token response without access_token") from error
        self._token = token
        self._expires_at = self._clock() + max(0.0, lifetime - TOKEN_EXPIRY_MARGIN_S)
