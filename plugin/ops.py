"""Operations endpoints: liveness, readiness and Prometheus metrics (no patient data in any of them)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from plugin.metrics import CONTENT_TYPE
from plugin.runtime import runtime

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when a model is loaded and the store is writable."""
    rt = runtime()
    model = rt.models.model
    store_ok = rt.store.writable()
    ready = model is not None and store_ok
    body = {"status": "ready" if ready else "not ready", "model": getattr(model, "version", None),
            "store_writable": store_ok}
    if rt.models.last_error:
        # Why the registry's current model is not the one served (no patient data in this text).
        body["model_problem"] = rt.models.last_error
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format, version 0.0.4."""
    rt = runtime()
    model = rt.models.model
    if model is not None:
        rt.metrics.model_version = str(getattr(model, "version", ""))
    return Response(rt.metrics.render(), content_type=CONTENT_TYPE)
