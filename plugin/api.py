"""CDS Hooks endpoints: discovery, service calls and feedback (CDS Hooks 2.0).

The discovery document and request routing come from the same registry: the service definitions in
``hooks/*.json``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ValidationError

from fhir_mapping.errors import EpidoseError
from plugin.audit import DecisionRecord
from plugin.cache import ResponseCache, fill, make_template
from plugin.cards import constant_card
from plugin.decide import decide
from plugin.errors import BadRequest, NotFound, UnsupportedMediaType, http_status
from plugin.jsonbody import JsonBodyError, encode_json, parse_json
from plugin.note_binaries import fetch_note_binaries
from plugin.runtime import Runtime, runtime
from plugin.schemas import FeedbackRequest, HookRequest, describe
from plugin.store import AuditRecord

bp = Blueprint("cds", __name__)
BENCH_SERVICE_ID = "bench-constant"
Model = TypeVar("Model", bound=BaseModel)
QUESTIONNAIRE_PATH = "/fhir/Questionnaire/bect-follow-up"


def _json_body() -> dict[str, Any]:
    """The request body as a JSON object, parsed within the bounds of :mod:`plugin.jsonbody`."""
    if not request.is_json:
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    try:
        body = parse_json(request.get_data(cache=True))
    except JsonBodyError as error:
        raise BadRequest(str(error)) from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _validated(schema: type[Model], body: dict[str, Any]) -> Model:
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        raise BadRequest(describe(error)) from None


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
    except EpidoseError as error:
        status = http_status(error)
        raise
    finally:
        rt.metrics.observe_request(service_id if service_id in rt.services else "unknown", status,
                                   time.perf_counter() - started)


def _hook_call(rt: Runtime, service_id: str, definition: dict[str, Any]) -> Response:
    body = _json_body()
    call = _validated(HookRequest, body)
    hook = call.hook
    if hook != definition["hook"]:
        raise BadRequest(f"this service answers the {definition['hook']} hook")
    hook_instance = call.hookInstance
    patient_id = call.context.patientId
    if hook in ("order-select", "order-sign") and call.context.draftOrders is None:
        raise BadRequest("context.draftOrders must be a Bundle")
    context = body["context"]
    prefetch = body.get("prefetch")
    fhir_server = call.fhirServer
    authorization = body.get("fhirAuthorization")
    templates = definition.get("prefetch") or {}
    model = rt.models.model
    if model is not None:
        rt.metrics.model_version = str(getattr(model, "version", ""))
    today = datetime.now(UTC).date()
    key = None
    # Cached only when nothing is read from the FHIR server (every key prefetched, or no server to ask).
    if rt.cache.enabled and prefetch is not None and (not fhir_server or all(k in prefetch for k in templates)):
        token = (authorization or {}).get("access_token") or ""
        key = ResponseCache.key(request.get_data(cache=True), [hook_instance, token], service_id, today.isoformat(),
                                str(rt.models.registry_version))
        cached = rt.cache.get(key) if key is not None else None
        if cached is not None:
            text, audits = fill(cached)
            _record(rt, service_id, hook_instance, patient_id, audits, list(cached.indicators))
            return Response(text, mimetype="application/json")
    deadline = time.monotonic() + rt.fetcher.budget
    gathered = rt.fetcher.gather(templates, prefetch, context, fhir_server, authorization)
    fetch_note_binaries(rt.fetcher, gathered, fhir_server, authorization, deadline)
    outcome = decide(hook, context, gathered, model, rt.report_url(), today=today,
                     questionnaire_url=rt.base_url() + QUESTIONNAIRE_PATH)
    if outcome.out_of_scope is not None:
        rt.metrics.observe_out_of_scope(service_id, outcome.out_of_scope)
        key = None  # answered without a card: counted on every call, not served from the cache
    answer = encode_json({"cards": outcome.cards})
    indicators = [card["indicator"] for card in outcome.cards]
    _record(rt, service_id, hook_instance, patient_id, outcome.audit, indicators)
    if key is not None and not gathered.fetched:
        rt.cache.put(key, make_template(answer.decode("utf-8"), _generated_uuids(outcome.cards), outcome.audit, indicators,
                                        [card["uuid"] for card in outcome.cards]))
    return Response(answer, mimetype="application/json")


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


def _record(rt: Runtime, service_id: str, hook_instance: str, patient_id: str, audits: list[DecisionRecord],
            indicators: list[str]) -> None:
    """One audit record per card served (patient as a keyed hash) and the card metrics."""
    served_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patient_hash = rt.store.patient_hash(patient_id)
    # All the response's records in one transaction: a card whose audit cannot be written is not served
    # (the database's failure answers 503), and no response is left half-audited.
    rt.store.add_audits([AuditRecord.of(audit, served_at=served_at, service=service_id, hook_instance=hook_instance,
                                        patient_hash=patient_hash) for audit in audits])
    for indicator in indicators:
        rt.metrics.observe_card(service_id, indicator)


@bp.get(QUESTIONNAIRE_PATH)
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
    request_items = _validated(FeedbackRequest, body).feedback
    for requested in request_items:
        if not rt.store.known_card(requested.card, service_id):
            raise BadRequest("feedback names a card this service did not serve")
    checked = [requested.model_dump(exclude_none=True) for requested in request_items]
    if not rt.settings.keep_override_comments:
        for item in checked:
            if (item.get("overrideReason") or {}).pop("userComment", None) is not None:
                rt.metrics.observe_dropped_comment(service_id)
    stored = rt.store.add_feedback(service_id, checked)
    for item in stored:
        rt.metrics.observe_feedback(service_id, item["outcome"])
    repeated = len(checked) - len(stored)
    if repeated:
        rt.metrics.observe_repeated_feedback(service_id, repeated)
    current_app.logger.info("feedback stored: %d item(s) for %s, %d repeated", len(stored), service_id, repeated)
    return jsonify({"stored": len(stored), "repeated": repeated})
