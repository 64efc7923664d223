"""The store side: the tracking pixel, its debug twin, the JS tag and the opt-out page."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes

from flask import Blueprint, Response, jsonify, render_template, request, send_file
from werkzeug.http import dump_cookie

from adserver.services import services
from adserver.traffic import classify, device_of, invalid_fields
from tracker.events import MAX_RAW_LEN, Hit, Invalid, validate_hit
from tracker.identity import OPTOUT_COOKIE, UID_COOKIE, UID_MAX_AGE, tracking_allowed

log = logging.getLogger(__name__)
bp = Blueprint("tracking", __name__)

# The classic 43-byte transparent 1x1 GIF (what nginx's empty_gif sends).
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
TAG_JS = Path(__file__).parent / "static" / "tag.js"
HIT_PARAMS = ("a", "e", "sku", "order", "value", "currency", "url", "ref")


def _raw_query() -> str:
    return request.query_string.decode("utf-8", errors="replace")


def _params() -> dict[str, str]:
    return {k: v for k, v in request.args.items(multi=False)}


def _cookie_options() -> dict:
    """Attributes of every cookie we set: third-party (SameSite=None) needs Secure; plain-HTTP development gets Lax."""
    settings = services().settings
    return {"path": "/", "domain": settings.cookie_domain, "secure": settings.cookie_secure, "httponly": True,
            "samesite": "None" if settings.cookie_secure else "Lax"}


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.-]+\Z")
_uid_cookie_tail: tuple[tuple, str] = ((), "")  # (second and options, what follows "uid=<value>")


def set_uid_cookie(response: Response, value: str) -> None:
    """Set the ``uid`` cookie; the same header ``response.set_cookie`` would write, built faster.

    Werkzeug formats the expiry date and re-checks every attribute on each call, about 4 % of a
    pixel hit's CPU. Its header is ``uid=<value>`` then attributes that depend only on the options
    and the current second, so that tail is made by Werkzeug once per second and reused; values
    are base64url with a dot (never quoted), anything else goes through Werkzeug.
    """
    global _uid_cookie_tail
    options = _cookie_options()
    if not _PLAIN_VALUE.match(value):
        response.set_cookie(UID_COOKIE, value, max_age=UID_MAX_AGE, **options)
        return
    key = (int(time.time()), *options.values())
    cached = _uid_cookie_tail
    if cached[0] != key:
        head = f"{UID_COOKIE}=x"
        cached = _uid_cookie_tail = (key, dump_cookie(UID_COOKIE, "x", max_age=UID_MAX_AGE,
                                                      max_size=response.max_cookie_size, **options)[len(head):])
    response.headers.add("Set-Cookie", f"{UID_COOKIE}={value}{cached[1]}")


def current_uid() -> str | None:
    """The visitor's id if their cookie verifies and they allow tracking."""
    if not tracking_allowed(request.cookies, request.headers):
        return None
    return services().ids.verify(request.cookies.get(UID_COOKIE))


def _request_errors() -> list[str]:
    """What the parsed parameters hide: bytes that are not UTF-8 and parameters given twice."""
    errors = []
    try:
        unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        errors.append("invalid_encoding: parameters must be percent-encoded UTF-8")
    repeated = [k for k in HIT_PARAMS if len(request.args.getlist(k)) > 1]
    if repeated:
        errors.append(f"duplicate_parameter: {', '.join(repeated)} given more than once")
    return errors


def _check(params: dict[str, str]) -> Hit | Invalid:
    registry = services().registry
    result = validate_hit(params, _raw_query(), known_advertiser=registry.known_advertiser)
    errors = _request_errors()
    if not errors:
        return result
    if isinstance(result, Invalid):
        result.errors[:0] = errors
        return result
    return Invalid(result.advertiser, result.event, errors, _raw_query()[:MAX_RAW_LEN])


@bp.get("/px.gif")
def pixel() -> Response:
    """Record a store event; always a GIF, whatever happens, so the store page never breaks."""
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, max-age=0"
    try:
        if not tracking_allowed(request.cookies, request.headers):
            return response
        svc = services()
        uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
        if uid is None:
            uid, cookie = svc.ids.new()
        else:
            cookie = svc.ids.cookie_value(uid)  # re-set: lifetime counts from the last visit
        set_uid_cookie(response, cookie)
        result = _check(_params())
        now = time.time()
        if isinstance(result, Invalid):
            svc.record({
                "ts": now, "advertiser": result.advertiser, "event": result.event, "uid": uid,
                "errors": result.errors, "raw": result.raw,
            }, counter="pixel_rejected", bad=True)
            return response
        row = {
            "ts": now, "advertiser": result.advertiser, "event": result.event, "uid": uid,
            "skus": result.skus, "order_id": result.order_id, "value": result.value,
            "currency": result.currency, "url": result.url, "ref": result.ref,
            "device": device_of(request.headers.get("User-Agent", "")), "addressable": 1,
        }
        invalid = invalid_fields(classify(request.headers, None))  # bots: no profile, no popularity (no flood count)
        row.update(invalid)
        svc.record(row, uid=None if invalid else uid, counter="pixel_invalid" if invalid else "pixel_accepted")
    except Exception:  # noqa: BLE001 - the GIF goes out even if Redis is down
        log.exception("pixel hit not recorded")
    return response


@bp.get("/px/debug")
def pixel_debug() -> Response:
    """The same checks as the pixel, answered as JSON for integrators; records nothing."""
    result = _check(_params())
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
    from tracker.stores import get_clickhouse

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
            body["rows_scheduled_for_deletion"] = forget_visitor(get_clickhouse(), uid)
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
