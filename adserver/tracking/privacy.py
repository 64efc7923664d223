"""The visitor's privacy choices: the opt-out page, and forgetting what is stored about a browser.

Both POSTs change the visitor's state, so both take only a form from our own page
(``adserver.tracking.forms``): another site cannot make its visitors' browsers opt out or ask to
be forgotten.

Forgetting deletes the Redis profile at once and queues the visitor for the ClickHouse part
(``tracker.forget``): the writer's next forget run deletes the rows of every queued visitor with one
mutation per table, so many requests cost no more than one. Requests are also limited per visitor
and per client address (fixed windows counted in Redis); beyond, ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time

import redis
from flask import Blueprint, Response, jsonify, render_template, request

from adserver.services import services
from adserver.tracking import forms
from adserver.tracking.address import client_ip
from adserver.tracking.pixel import cookie_options
from adserver.tracking.traffic import address_key
from tracker.forget import QueueFull, request_forget, runs_until_done
from tracker.identity import OPTOUT_COOKIE, UID_COOKIE

log = logging.getLogger(__name__)
bp = Blueprint("privacy", __name__)

# A person asks once; a script keeping its cookie, or a hostile page's many visitors behind one
# address, are cut here. The address limit leaves room for a shared office or carrier network.
FORGET_WINDOW = 3600
FORGET_LIMIT_VISITOR = 3
FORGET_LIMIT_ADDRESS = 30


def _retry_after(client: redis.Redis, uid: str | None, address: str) -> int:
    """Count this request; seconds until the visitor's or the address's window ends if over a limit, else 0."""
    now = time.time()
    window = int(now // FORGET_WINDOW)
    keys = [(f"fg:ip:{address_key(address)}:{window}", FORGET_LIMIT_ADDRESS)]
    if uid:
        keys.insert(0, (f"fg:{{{uid}}}:{window}", FORGET_LIMIT_VISITOR))
    pipe = client.pipeline(transaction=False)
    for key, _ in keys:
        pipe.incr(key)
        pipe.expire(key, FORGET_WINDOW)
    counts = pipe.execute()[::2]
    if any(int(count) > limit for count, (_, limit) in zip(counts, keys)):
        return max(1, math.ceil((window + 1) * FORGET_WINDOW - now))
    return 0


def _wants_html() -> bool:
    """A browser submitting the form without JavaScript: answer the page, not JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _page(status: int = 200, **context) -> Response:
    """The opt-out page, with this browser's form token (and its nonce cookie if new)."""
    svc = services()
    nonce, new = forms.nonce(request)
    uid_known = svc.ids.verify(request.cookies.get(UID_COOKIE)) is not None
    context.setdefault("opted_out", request.cookies.get(OPTOUT_COOKIE) == "1")
    response = Response(render_template(
        "optout.html", token=forms.token(nonce, svc.settings), token_field=forms.TOKEN_FIELD,
        gpc=request.headers.get("Sec-GPC") == "1", uid_known=uid_known,
        **{"removed": None, "error": None, "forget": None, **context}), status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    if new:
        forms.set_nonce(response, nonce, svc.settings)
    return response


def _answer(body: dict, status: int, retry_after: int | None = None) -> Response:
    if _wants_html():
        if "error" in body and "profile" not in body:
            response = _page(status, error=body["message"])
        else:
            response = _page(status, forget=body, error=body.get("message"))
    else:
        response = jsonify(body)
        response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.post("/privacy/forget")
def forget() -> Response:
    """Delete this browser's profile now and queue its rows in ClickHouse for the next forget run.

    Answers what was done now and when the rest will be: ``{"visitor_known", "profile": "deleted",
    "profile_keys_removed", "events": "queued", "scheduled_within_seconds"}``; the ``uid`` cookie is
    removed so the browser starts afresh.
    """
    svc = services()
    try:
        forms.check(request, svc.settings)
    except forms.Refused as refused:
        return _answer({"error": refused.code, "message": refused.message}, 403)
    uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
    try:
        wait = _retry_after(svc.redis, uid, client_ip())
        if wait:
            return _answer({"error": "rate_limited", "message": "Too many requests to be forgotten from this "
                            f"browser or network: try again in {max(1, wait // 60)} minute(s)."}, 429, wait)
        if uid is None:
            return _answer({"visitor_known": False, "profile": "none", "events": "none",
                            "scheduled_within_seconds": 0}, 200)
        removed = svc.stream.forget(uid)
        body = {"visitor_known": True, "profile": "deleted", "profile_keys_removed": removed}
        rank = request_forget(svc.redis, uid)
    except QueueFull:
        interval = math.ceil(svc.settings.forget_interval)
        body.update(events="not_queued", error="queue_full", message="Too many deletions are waiting: your "
                    "profile was deleted, ask again later to have your stored events deleted.")
        return _answer(body, 503, interval)
    except (redis.RedisError, OSError):
        log.exception("forget request not recorded")
        return _answer({"error": "unavailable", "message": "The profile store is unavailable: nothing was "
                        "deleted, try again in a minute."}, 503, 60)
    body.update(events="queued", scheduled_within_seconds=math.ceil(svc.settings.forget_interval
                                                                     * runs_until_done(rank)))
    response = _answer(body, 200)
    response.delete_cookie(UID_COOKIE, **cookie_options(svc.settings))
    return response


@bp.route("/optout", methods=["GET", "POST"])
def optout() -> Response:
    """Explain what is collected; POST (from this page's form) opts the browser out and deletes its profile."""
    svc = services()
    if request.method == "GET":
        return _page()
    try:
        forms.check(request, svc.settings)
    except forms.Refused as refused:
        return _page(403, error=refused.message)
    uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
    removed = 0
    if uid:
        try:
            removed = svc.stream.forget(uid)
        except Exception:  # noqa: BLE001 - the opt-out cookie must be set even if Redis is away
            log.exception("profile of an opted-out visitor not deleted")
    response = _page(opted_out=True, removed=removed)
    response.set_cookie(OPTOUT_COOKIE, "1", max_age=5 * 365 * 86400, **cookie_options(svc.settings))
    response.delete_cookie(UID_COOKIE, **cookie_options(svc.settings))
    return response
