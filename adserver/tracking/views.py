"""The store side: the pixel's debug twin, the JS tag, forgetting a visitor and the opt-out page.

The pixel itself (``/px.gif``) is answered in front of Flask, by ``adserver.tracking.pixel``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_file

from adserver.services import services
from adserver.tracking.pixel import GIF, check_hit, cookie_options
from adserver.tracking.pixel import answer as pixel_answer
from tracker.events import Invalid
from tracker.identity import OPTOUT_COOKIE, UID_COOKIE, tracking_allowed

__all__ = ["GIF", "bp", "current_uid"]

log = logging.getLogger(__name__)
bp = Blueprint("tracking", __name__)

TAG_JS = Path(__file__).parent.parent / "static" / "tag.js"


def _cookie_options() -> dict:
    return cookie_options(services().settings)


def current_uid() -> str | None:
    """The visitor's id if their cookie verifies and they allow tracking."""
    if not tracking_allowed(request.cookies, request.headers):
        return None
    return services().ids.verify(request.cookies.get(UID_COOKIE))


@bp.get("/px.gif")
def pixel() -> Response:
    """The pixel when ``PixelEndpoint`` is not in front (it answers GET and HEAD before Flask).

    Registered so that ``url_for`` knows the URL and other methods get Flask's 405; same answer.
    """
    return Response(GIF, headers=pixel_answer(current_app, request.environ))


@bp.get("/px/debug")
def pixel_debug() -> Response:
    """The same checks as the pixel, answered as JSON for integrators; records nothing."""
    result = check_hit(request.query_string, services().registry.known_advertiser)
    if isinstance(result, Invalid):
        errors = [{"code": e.split(":", 1)[0], "message": e.split(":", 1)[-1].strip()} for e in result.errors]
        body = {"ok": False, "errors": errors}
    else:
        body = {"ok": True, "errors": [], "event": {
            "advertiser": result.advertiser, "event": result.event, "skus": result.skus,
            "order": result.order_id, "value": result.value, "currency": result.currency,
        }}
    body["tracking_allowed"] = tracking_allowed(request.cookies, request.headers)
    body["cookie_valid"] = services().ids.verify(request.cookies.get(UID_COOKIE)) is not None
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tag.js")
def tag_js() -> Response:
    response = send_file(TAG_JS, mimetype="application/javascript", max_age=3600)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.post("/privacy/forget")
def forget() -> Response:
    """Delete what is kept about this browser: its Redis profile and its rows in ClickHouse.

    The ClickHouse part is a mutation: it is scheduled now and applied by the server shortly after.
    The answer says what was found; the ``uid`` cookie is removed so the browser starts afresh.
    """
    from tracker.retention import forget_visitor

    svc = services()
    uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
    body: dict = {"visitor_known": uid is not None, "profile_keys_removed": 0, "rows_scheduled_for_deletion": {}}
    status = 200
    if uid is not None:
        try:
            body["profile_keys_removed"] = svc.stream.forget(uid)
        except Exception:  # noqa: BLE001 - report it, the ClickHouse part still runs
            log.exception("profile not deleted")
            body["profile_error"] = "profile store unavailable, try again later"
            status = 503
        try:
            body["rows_scheduled_for_deletion"] = forget_visitor(services().ch, uid)
        except Exception:  # noqa: BLE001
            log.exception("events not deleted")
            body["events_error"] = "event store unavailable, try again later"
            status = 503
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if uid is not None and status == 200:
        response.delete_cookie(UID_COOKIE, **_cookie_options())
    return response


@bp.route("/optout", methods=["GET", "POST"])
def optout() -> Response:
    """Explain what is collected; POST opts the browser out and deletes its profile."""
    svc = services()
    opted_out = request.cookies.get(OPTOUT_COOKIE) == "1"
    removed = None
    if request.method == "POST":
        uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
        removed = 0
        if uid:
            try:
                removed = svc.stream.forget(uid)
            except Exception:  # noqa: BLE001 - the opt-out cookie must be set even if Redis is away
                log.exception("profile of an opted-out visitor not deleted")
        opted_out = True
    response = Response(render_template("optout.html", opted_out=opted_out, removed=removed,
                                        gpc=request.headers.get("Sec-GPC") == "1"))
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    if request.method == "POST":
        response.set_cookie(OPTOUT_COOKIE, "1", max_age=5 * 365 * 86400, **_cookie_options())
        response.delete_cookie(UID_COOKIE, **_cookie_options())
    return response
