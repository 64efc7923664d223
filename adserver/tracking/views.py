"""The store side: the pixel's debug twin and the JS tag.

The pixel itself (``/px.gif``) is answered in front of Flask, by ``adserver.tracking.pixel``; the
opt-out page and forgetting a visitor are in ``adserver.tracking.privacy``.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_file

from adserver.services import services
from adserver.tracking.pixel import GIF, check_hit
from adserver.tracking.pixel import answer as pixel_answer
from tracker import consent
from tracker.events import Invalid
from tracker.identity import UID_COOKIE, tracking_allowed

__all__ = ["GIF", "bp", "current_uid", "request_consent"]

bp = Blueprint("tracking", __name__)

TAG_JS = Path(__file__).parent.parent / "static" / "tag.js"


def request_consent() -> consent.Verdict:
    """What this request's ``gdpr``/``gdpr_consent`` parameters (IAB TCF) allow us to do."""
    return consent.verdict(request.args.get("gdpr"), request.args.get("gdpr_consent"),
                           services().settings.tcf_vendor_id)


def current_uid() -> str | None:
    """The visitor's id if their cookie verifies, they allow tracking and (where GDPR applies) their
    consent string allows personalised ads."""
    if not tracking_allowed(request.cookies, request.headers) or not request_consent().personalised:
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
    allowed = request_consent()
    body["consent"] = {"gdpr_applies": allowed.applies, "valid": consent.decode(request.args.get("gdpr_consent"))
                       is not None, "profile": allowed.profile, "personalised": allowed.personalised}
    body["cookie_valid"] = services().ids.verify(request.cookies.get(UID_COOKIE)) is not None
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/tag.js")
def tag_js() -> Response:
    response = send_file(TAG_JS, mimetype="application/javascript", max_age=3600)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
