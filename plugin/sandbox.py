"""``epidose sandbox``: act as a CDS client against a FHIR server, for integrators.

It does what an EHR does: reads our discovery document, evaluates the service's prefetch templates
against the FHIR server (following ``next`` links), builds the hook request (for order hooks a
``draftOrders`` Bundle from a file or a levetiracetam order made from flags), signs it with a local
test key when the service requires a JWT, calls the service (in-process by default, or at a URL),
and prints the cards for a person to read (``--json`` for the raw response).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported where used, so that the rest of the CLI starts fast
    from cryptography.hazmat.primitives.asymmetric import ec

SANDBOX_ISSUER = "urn:epidose:sandbox"
SANDBOX_KID = "epidose-sandbox-1"
HOOKS = ("patient-view", "order-select", "order-sign")
FHIR_TIMEOUT_SECONDS = 10.0  # a person is waiting at a terminal, not an EHR: be patient with test servers
FHIR_BUDGET_SECONDS = 60.0
INDICATOR_COLOURS = {"info": "blue", "warning": "yellow", "critical": "red"}


class SandboxError(click.ClickException):
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
        click.echo(f"prefetch {key}: not obtained ({reason}); the service will be asked without it", err=True)
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


def render_cards(service_id: str, response: Any) -> str:
    """Cards as a person reads them in a terminal."""
    cards = response.get("cards", []) if isinstance(response, dict) else []
    lines = [f"{service_id}: {len(cards)} card(s)"]
    for card in cards:
        indicator = str(card.get("indicator", "info"))
        lines.append("")
        lines.append(click.style(f"[{indicator.upper()}] ", fg=INDICATOR_COLOURS.get(indicator), bold=True)
                     + str(card.get("summary", "")))
        source = card.get("source") or {}
        if source.get("label"):
            lines.append(f"  source: {source['label']}")
        for detail_line in str(card.get("detail", "")).splitlines():
            lines.append(f"  {detail_line}" if detail_line.strip() else "")
        for suggestion in card.get("suggestions") or []:
            actions = ", ".join(f"{a.get('type')} {(a.get('resource') or {}).get('resourceType', '')}".strip()
                                for a in suggestion.get("actions") or [])
            lines.append(f"  suggestion: {suggestion.get('label')} ({actions})")
        for reason in card.get("overrideReasons") or []:
            lines.append(f"  override reason: {reason.get('display') or reason.get('code')}")
        for link in card.get("links") or []:
            lines.append(f"  link: {link.get('label')} <{link.get('url')}>")
    return "\n".join(lines)


def embedded_app(sandbox_dir: Path) -> tuple[Any, ec.EllipticCurvePrivateKey]:
    """The service in-process, trusting the sandbox key, with the embedded default model."""
    from plugin import create_app
    from plugin.commands import ensure_default_model
    from plugin.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise SandboxError(str(error)) from None
    private, jwks_file = sandbox_key(sandbox_dir)
    if settings.auth:
        settings = Settings.from_env(None, jwks={**settings.jwks, SANDBOX_ISSUER: str(jwks_file)},
                                     public_base_url="http://localhost")
    ensure_default_model(settings)
    # The service's own log lines (whom it trusts, which model it serves) would interleave with the cards.
    return create_app(dataclasses.replace(settings, log_level="WARNING"), announce=False), private


@click.command()
@click.option("--fhir-server", required=True, help="Base URL of a FHIR R4 server holding the patient.")
@click.option("--patient", "patient_id", required=True, help="Patient logical id on that server.")
@click.option("--hook", type=click.Choice(HOOKS), default="patient-view", show_default=True,
              help="CDS hook to call: patient-view (chart opened), order-select or order-sign (a draft order).")
@click.option("--service", "service_url", default=None,
              help="Base URL of a running epidose (default: the service in this process).")
@click.option("--draft-order", "draft_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Order hooks: a draftOrders Bundle or one MedicationRequest (JSON).")
@click.option("--dose", "dose_mg", type=float, default=None,
              help="Order hooks without --draft-order: a levetiracetam draft order of this many mg/day.")
@click.option("--token", default=None, help="Access token for the FHIR server (sent as Bearer; never printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw CDS Hooks response.")
def sandbox(fhir_server: str, patient_id: str, hook: str, service_url: str | None, draft_file: Path | None,
            dose_mg: float | None, token: str | None, as_json: bool) -> None:
    """Act as a CDS client: prefetch from FHIR_SERVER, call the service, print the cards.

    Against a running service (--service) that requires JWTs, the sandbox signs with its own test key
    (issuer urn:epidose:sandbox); trust it there with
    EPIDOSE_JWKS='{"urn:epidose:sandbox": "<data dir>/sandbox/sandbox-jwks.json"}'.
    """
    from plugin.settings import Settings, SettingsError

    try:
        data_dir = Settings.from_env().data_dir
    except SettingsError as error:
        raise SandboxError(str(error)) from None
    sandbox_dir = data_dir / "sandbox"
    transport: Transport
    if service_url:
        transport = HttpTransport(service_url)
        private, jwks_file = sandbox_key(sandbox_dir)
        click.echo(f"signing with the sandbox key (trusted by the service only if EPIDOSE_JWKS names {jwks_file})",
                   err=True)
    else:
        app, private = embedded_app(sandbox_dir)
        transport = InProcessTransport(app)

    def sign(audience: str) -> str:
        return client_jwt(private, audience)

    service = discover(transport, sign, hook)
    context = {"patientId": patient_id, "userId": "Practitioner/epidose-sandbox"}
    prefetch = prefetch_from(fhir_server, service.get("prefetch") or {}, context, token)
    orders = draft_orders(patient_id, draft_file, dose_mg) if hook != "patient-view" else None
    body = hook_request(hook, patient_id, fhir_server, token, prefetch, orders)
    path = f"/cds-services/{service['id']}"
    reply = transport.call("POST", path, body, sign(transport.base + path))
    if as_json:
        click.echo(json.dumps(reply.body, indent=2))
    elif reply.status != 200:
        detail = reply.body if isinstance(reply.body, (dict, str)) else ""
        raise SandboxError(f"the service answered {reply.status}: {json.dumps(detail)[:500]}")
    else:
        click.echo(render_cards(service["id"], reply.body))
    if reply.status != 200:
        raise SystemExit(1)
