"""Operator endpoints: ``/healthz`` (is every dependency up?) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from adserver.metrics import app_metrics
from adserver.services import services
from tracker.writer import GROUP

bp = Blueprint("health", __name__)


def _check(fn) -> tuple[bool, str]:
    try:
        fn()
        return True, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        return False, f"down: {type(exc).__name__}: {str(exc)[:200]}"


@bp.get("/healthz")
def healthz() -> Response:
    svc = services()
    redis_ok, redis_state = _check(lambda: svc.stream.client.ping())
    ch_ok, ch_state = _check(lambda: services().ch.ping())
    body: dict = {"redis": redis_state, "clickhouse": ch_state}
    if redis_ok:
        try:
            body["stream"] = svc.stream.backlog(GROUP)
        except Exception as exc:  # noqa: BLE001
            body["stream"] = {"error": str(exc)[:200]}
    body["spool"] = {"records": svc.spool.pending_records()}
    body["embedded"] = svc.settings.embedded
    response = jsonify(body)
    response.status_code = 200 if redis_ok and ch_ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition (``adserver.metrics``): cluster-wide counters and stream state, request latency."""
    body, content_type = app_metrics(current_app).exposition(request.headers.get("Accept"))
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
