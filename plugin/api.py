"""CDS Hooks endpoints: discovery, service calls and feedback (CDS Hooks 2.0).

The discovery document and request routing come from the same registry: the service definitions in
``hooks/*.json``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from plugin.cache import ResponseCache, fill, make_template
from plugin.cards import constant_card
from plugin.decide import decide
from plugin.errors import BadRequest, NotFound, ServiceError
from plugin.runtime import Runtime, runtime
from plugin.store import AuditRecord

bp = Blueprint("cds", __name__)
BENCH_SERVICE_ID = "bench-constant"
FEEDBACK_OUTCOMES = ("accepted", "overridden")


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ServiceError("the request body must be JSON (Content-Type: application/json)", 415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


@bp.get("/cds-services")
def discovery() -> Response:
    """The discovery document, generated from hooks/*.json."""
    return jsonify({"services": runtime().services_public})


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    """Run one hook call and answer cards."""
    rt = runtime()
    started = time.perf_counter()
    status = 500
    try:
        if service_id == BENCH_SERVICE_ID and rt.settings.bench_constant_card:
            _json_body()
            status = 200
            return jsonify({"cards": [constant_card()]})
        definition = rt.services.get(service_id)
        if definition is None:
            status = 404
            raise NotFound("no such CDS service")
        response = _hook_call(rt, service_id, definition)
        status = response.status_code
        return response
    except ServiceError as error:
        status = error.status
        raise
    finally:
        rt.metrics.observe_request(service_id if service_id in rt.services else "unknown", status,
                                   time.perf_counter() - started)


def _hook_call(rt: Runtime, service_id: str, definition: dict[str, Any]) -> Response:
    body = _json_body()
    hook = body.get("hook")
    if hook != definition["hook"]:
        raise BadRequest(f"this service answers the {definition['hook']} hook")
    hook_instance = body.get("hookInstance")
    if not isinstance(hook_instance, str) or not hook_instance or len(hook_instance) > 200:
        raise BadRequest("hookInstance must be a non-empty string")
    context = body.get("context")
    if not isinstance(context, dict):
        raise BadRequest("context must be an object")
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id or len(patient_id) > 200:
        raise BadRequest("context.patientId must be a non-empty string")
    if hook in ("order-select", "order-sign") and not isinstance(context.get("draftOrders"), dict):
        raise BadRequest("context.draftOrders must be a Bundle")
    prefetch = body.get("prefetch")
    if prefetch is not None and not isinstance(prefetch, dict):
        raise BadRequest("prefetch must be an object")
    fhir_server = body.get("fhirServer")
    if fhir_server is not None and (not isinstance(fhir_server, str) or not fhir_server.startswith(("https://", "http://"))):
        raise BadRequest("fhirServer must be an absolute http(s) URL")
    authorization = body.get("fhirAuthorization")
    if authorization is not None:
        if not isinstance(authorization, dict) or not isinstance(authorization.get("access_token"), str):
            raise BadRequest("fhirAuthorization must carry an access_token")
        if str(authorization.get("token_type", "Bearer")).lower() != "bearer":
            raise BadRequest("fhirAuthorization.token_type must be Bearer")
    templates = definition.get("prefetch") or {}
    model = rt.models.model
    if model is not None:
        rt.metrics.model_version = str(getattr(model, "version", ""))
    today = datetime.now(UTC).date()
    key = None
    if rt.cache.enabled and prefetch is not None and all(k in prefetch for k in templates):
        token = (authorization or {}).get("access_token") or ""
        key = ResponseCache.key(request.get_data(cache=True), [hook_instance, token], service_id, today.isoformat(),
                                str(rt.models.registry_version))
        cached = rt.cache.get(key) if key is not None else None
        if cached is not None:
            text, audits = fill(cached)
            _record(rt, service_id, hook_instance, patient_id, audits, list(cached.indicators))
            return Response(text, mimetype="application/json")
    gathered = rt.fetcher.gather(templates, prefetch, context, fhir_server, authorization)
    outcome = decide(hook, context, gathered, model, rt.report_url(), today=today)
    if outcome.out_of_scope is not None:
        rt.metrics.observe_out_of_scope(service_id, outcome.out_of_scope)
        key = None  # answered without a card: counted on every call, not served from the cache
    text = json.dumps({"cards": outcome.cards}, separators=(",", ":"), ensure_ascii=False)
    indicators = [card["indicator"] for card in outcome.cards]
    _record(rt, service_id, hook_instance, patient_id, outcome.audit, indicators)
    if key is not None and not gathered.fetched:
        rt.cache.put(key, make_template(text, _generated_uuids(outcome.cards), outcome.audit, indicators,
                                        [card["uuid"] for card in outcome.cards]))
    return Response(text, mimetype="application/json")


def _generated_uuids(cards: list[dict[str, Any]]) -> list[str]:
    """The uuids this service made up for a response (cards, suggestions, created resources)."""
    found = []
    for card in cards:
        found.append(card["uuid"])
        for suggestion in card.get("suggestions") or []:
            found.append(suggestion["uuid"])
            for action in suggestion.get("actions") or []:
                if action.get("type") == "create" and isinstance(action.get("resource"), dict):
                    found.append(action["resource"]["id"])
    return found


def _record(rt: Runtime, service_id: str, hook_instance: str, patient_id: str, audits: list[dict[str, Any]],
            indicators: list[str]) -> None:
    """One audit record per card served (patient as a keyed hash) and the card metrics."""
    served_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patient_hash = rt.store.patient_hash(patient_id)
    for audit, indicator in zip(audits, indicators, strict=True):
        rt.store.add_audit(AuditRecord(
            card_uuid=audit["card_uuid"], served_at=served_at, service=service_id, hook_instance=hook_instance,
            patient_hash=patient_hash, model_version=audit["model_version"], input_fingerprint=audit["input_fingerprint"],
            indicator=audit["indicator"], recommended_mg_per_day=audit["recommended_mg_per_day"],
            compared_mg_per_day=audit["compared_mg_per_day"], raw_model_mg_per_day=audit["raw_model_mg_per_day"],
            safety_adjustments=tuple(audit["safety_adjustments"])))
        rt.metrics.observe_card(service_id, indicator)


@bp.get("/fhir/Questionnaire/bect-follow-up")
def bect_questionnaire() -> Response:
    """The project's BECT follow-up Questionnaire (FHIR R4), at its stable URL, for any form filler."""
    from fhir_mapping.questionnaire import questionnaire

    return Response(json.dumps(questionnaire(), ensure_ascii=False), mimetype="application/fhir+json")


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """Store accepted/overridden outcomes for cards this service served (joined by card uuid)."""
    rt = runtime()
    if service_id not in rt.services:
        raise NotFound("no such CDS service")
    body = _json_body()
    items = body.get("feedback")
    if not isinstance(items, list) or not items or len(items) > 100:
        raise BadRequest("feedback must be a non-empty array")
    checked = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("each feedback item must be an object")
        card = item.get("card")
        if not isinstance(card, str) or not card:
            raise BadRequest("feedback.card must be the card's uuid")
        outcome = item.get("outcome")
        if outcome not in FEEDBACK_OUTCOMES:
            raise BadRequest("feedback.outcome must be accepted or overridden")
        accepted = item.get("acceptedSuggestions") or []
        if not isinstance(accepted, list) or not all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted):
            raise BadRequest("acceptedSuggestions must be an array of {id}")
        reason = item.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict):
                raise BadRequest("overrideReason must be an object")
            coding = reason.get("reason")
            if coding is not None and not (isinstance(coding, dict) and isinstance(coding.get("code", ""), str)
                                           and isinstance(coding.get("system", ""), str)):
                raise BadRequest("overrideReason.reason must be a Coding")
            if not isinstance(reason.get("userComment", ""), str):
                raise BadRequest("overrideReason.userComment must be a string")
        timestamp = item.get("outcomeTimestamp")
        if timestamp is not None and not isinstance(timestamp, str):
            raise BadRequest("outcomeTimestamp must be a string")
        if not rt.store.known_card(card):
            raise BadRequest("feedback names a card this service did not serve")
        checked.append(item)
    rt.store.add_feedback(service_id, checked)
    for item in checked:
        rt.metrics.observe_feedback(service_id, item["outcome"])
    current_app.logger.info("feedback stored: %d item(s) for %s", len(checked), service_id)
    return jsonify({"stored": len(checked)})
