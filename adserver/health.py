"""Operator endpoints: ``/healthz`` (is every dependency up?) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from adserver.services import services
from tracker.writer import GROUP

bp = Blueprint("health", __name__)
_started = time.time()


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


def _line(name: str, value: float, help_text: str, kind: str = "counter") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    out = [_line("adserver_process_uptime_seconds", round(time.time() - _started, 3),
                 "Seconds since this process started.", "gauge")]
    redis_up = 1
    try:
        counters = svc.stream.counters()
        backlog = svc.stream.backlog(GROUP)
    except Exception:  # noqa: BLE001
        counters, backlog, redis_up = {}, {}, 0
    out.append(_line("adserver_redis_up", redis_up, "1 if Redis answered this scrape.", "gauge"))
    out.append(_line("adserver_spool_records", svc.spool.pending_records(),
                     "Events kept in the local spool while Redis was unavailable.", "gauge"))
    descriptions = {
        "pixel_accepted": "Pixel hits accepted into the event stream.",
        "pixel_rejected": "Pixel hits rejected and stored in bad_events.",
        "ads_served": "Ad decisions that showed at least one product.",
        "clicks": "Valid clicks redirected to a product page.",
        "pixel_invalid": "Pixel hits from bots, prefetches or previewers (stored as invalid, not profiled).",
        "ads_invalid": "Ad units served to bots, prefetches or previewers (not counted, not charged).",
        "clicks_invalid": "Clicks from bots or click floods (redirected, not counted, not charged).",
        "viewable": "Viewable impressions (50 % of the unit in view for 1 s) recorded.",
    }
    for key, text in descriptions.items():
        out.append(_line(f"adserver_{key}_total", counters.get(key, 0), text))
    if backlog:
        out.append(_line("adserver_stream_length", backlog["length"],
                         "Entries in the event stream not yet deleted by the writer.", "gauge"))
        out.append(_line("adserver_stream_pending", backlog["pending"],
                         "Entries read by the writer but not yet acknowledged.", "gauge"))
        out.append(_line("adserver_writer_lag_seconds", backlog["oldest_age_seconds"],
                         "Age of the oldest event not yet written to ClickHouse.", "gauge"))
        if backlog.get("lag") is not None:
            out.append(_line("adserver_stream_lag", backlog["lag"],
                             "Entries in the stream not yet read by the writer group.", "gauge"))
    return Response("".join(out), mimetype="text/plain; version=0.0.4")
