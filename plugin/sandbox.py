"""``epidose sandbox``: act as a CDS client against a FHIR server, for integrators.

It does what an EHR does: reads our discovery document, evaluates the service's prefetch templates
against the FHIR server (following ``next`` links), builds the hook request (for order hooks a
``draftOrders`` Bundle from a file or a levetiracetam order made from flags), signs it with a local
test key when the service requires a JWT, calls the service (in-process by default, or at a URL),
and prints the cards for a person to read (``--json`` for the raw response).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_mapping.errors import EpidoseError

if TYPE_CHECKING:  # imported where used, so that the rest of the CLI starts fast
    from cryptography.hazmat.primitives.asymmetric import ec

SANDBOX_ISSUER = "urn:epidose:sandbox"
SANDBOX_KID = "epidose-sandbox-1"
HOOKS = ("patient-view", "order-select", "order-sign")
FHIR_TIMEOUT_SECONDS = 10.0  # a person is waiting at a terminal, not an EHR: be patient with test servers
FHIR_BUDGET_SECONDS = 60.0


class SandboxError(EpidoseError):
    """A sandbox step failed; the message says which and why."""


@dataclass
class Reply:
    status: int
    body: Any


# --- the local test key ---------------------------------------------------------------------
def sandbox_key(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    """The sandbox's ES384 key (made once under ``folder``) and the JWKS file that trusts it."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key_file, jwks_file = folder / "sandbox-key.pem", folder / "sandbox-jwks.json"
    if key_file.exists():
        loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise SandboxError(f"{key_file} is not an EC private key")
        private = loaded
    else:
        private = ec.generate_private_key(ec.SECP384R1())
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": SANDBOX_KID, "alg": "ES384", "use": "sig"})
    jwks_file.write_text(json.dumps({"keys": [public]}), encoding="utf-8")
    return private, jwks_file


def client_jwt(private: ec.EllipticCurvePrivateKey, audience: str) -> str:
    """A CDS Hooks client JWT for one call (CDS Hooks 2.0, Trusting CDS Clients)."""
    import jwt

    now = int(time.time())
    claims = {"iss": SANDBOX_ISSUER, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, private, algorithm="ES384", headers={"kid": SANDBOX_KID, "typ": "JWT"})


# --- transports: the service in-process, or at a URL ----------------------------------------
class Transport:
    """Sends JSON to the service; ``base`` is the URL the service sees (the JWT audience)."""

    base: str

    def call(self, method: str, path: str, body: Any, token: str | None) -> Reply:
        raise NotImplementedError


class HttpTransport(Transport):
    def __init__(self, base: str, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any, token: str | None) -> Reply:
        import requests

        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = requests.request(method, self.base + path, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            raise SandboxError(f"the service at {self.base} could not be reached ({type(error).__name__})") from None
        try:
            parsed = response.json()
        except ValueError:
            parsed = response.text
        return Reply(response.status_code, parsed)


class InProcessTransport(Transport):
    """The service built in this process with ``plugin.create_app`` (no port opened)."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.base = "http://localhost"

    def call(self, method: str, path: str, body: Any, token: str | None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.open(path, method=method, json=body, headers=headers)
        return Reply(response.status_code, response.get_json(silent=True))


# --- the client flow --------------------------------------------------------------------------
def discover(transport: Transport, sign: Callable[[str], str | None], hook: str) -> dict[str, Any]:
    """The service definition for ``hook`` from the discovery document."""
    reply = transport.call("GET", "/cds-services", None, sign(transport.base + "/cds-services"))
    if reply.status == 401:
        raise SandboxError("the service refused the sandbox's JWT (401): trust its key with "
                           "EPIDOSE_JWKS, see --help")
    if reply.status != 200 or not isinstance(reply.body, dict):
        raise SandboxError(f"discovery answered {reply.status}")
    for service in reply.body.get("services") or []:
        if isinstance(service, dict) and service.get("hook") == hook:
            return service
    raise SandboxError(f"the service offers no {hook} hook")


def prefetch_from(fhir_server: str, templates: dict[str, str], context: dict[str, Any], token: str | None) -> dict[str, Any]:
    """Evaluate prefetch templates against the FHIR server as an EHR would (with paging)."""
    from plugin.gather import FhirFetcher

    authorization = {"access_token": token, "token_type": "Bearer"} if token else None
    gathered = FhirFetcher(FHIR_TIMEOUT_SECONDS, FHIR_BUDGET_SECONDS).gather(templates, None, context, fhir_server,
                                                                              authorization)
    for key, reason in gathered.unobtainable.items():
        print(f"prefetch {key}: not obtained ({reason}); the service will be asked without it", file=sys.stderr)
    return gathered.values


def draft_orders(patient_id: str, draft_file: Path | None, dose_mg: float | None) -> dict[str, Any]:
    """A draftOrders Bundle: the file's (a Bundle or one MedicationRequest), or an order made from flags."""
    if draft_file is not None:
        try:
            loaded = json.loads(draft_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SandboxError(f"{draft_file}: not readable JSON ({error})") from None
        if isinstance(loaded, dict) and loaded.get("resourceType") == "Bundle":
            return loaded
        if isinstance(loaded, dict) and loaded.get("resourceType") == "MedicationRequest":
            return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": loaded}]}
        raise SandboxError(f"{draft_file}: expected a Bundle or a MedicationRequest")
    if dose_mg is None:
        raise SandboxError("order hooks need a draft order: --draft-order FILE or --dose MG_PER_DAY")
    from fhir_mapping.emit import medication_request

    order = medication_request(patient_id, dose_mg, weight_kg=None, age_years=None, authored_on=date.today(),
                               status="draft", intent="order")
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}


def hook_request(hook: str, patient_id: str, fhir_server: str, token: str | None, prefetch: dict[str, Any],
                 orders: dict[str, Any] | None) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/epidose-sandbox", "patientId": patient_id}
    if orders is not None:
        context["draftOrders"] = orders
        if hook == "order-select":
            context["selections"] = [f"MedicationRequest/{e['resource']['id']}" for e in orders.get("entry", [])
                                     if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("id")]
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "fhirServer": fhir_server,
                            "context": context, "prefetch": prefetch}
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                                     "scope": "patient/*.read", "subject": "epidose-sandbox"}
    return body
