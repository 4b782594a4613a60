"""``epidose sandbox``: the CDS client of :mod:`plugin.sandbox` as a command, for integrators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plugin.sandbox import (
    HOOKS,
    SANDBOX_ISSUER,
    HttpTransport,
    InProcessTransport,
    SandboxError,
    Transport,
    client_jwt,
    discover,
    draft_orders,
    hook_request,
    prefetch_from,
    sandbox_key,
)

if TYPE_CHECKING:  # imported where used, so that the rest of the CLI starts fast
    from cryptography.hazmat.primitives.asymmetric import ec

INDICATOR_COLOURS = {"info": "blue", "warning": "yellow", "critical": "red"}


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
    from plugin.cli.serve import ensure_default_model
    from plugin.settings import Settings

    settings = Settings.from_env()
    private, jwks_file = sandbox_key(sandbox_dir)
    if settings.auth:
        settings = Settings.from_env(None, jwks={**settings.jwks, SANDBOX_ISSUER: str(jwks_file)},
                                     public_base_url="http://localhost")
    ensure_default_model(settings)
    # The service's own log lines (whom it trusts, which model it serves) would interleave with the cards.
    return create_app(settings.model_copy(update={"log_level": "WARNING"}), announce=False), private


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
    from plugin.settings import Settings

    data_dir = Settings.from_env().data_dir
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
