"""The viewability beacon (``/px/viewable``) that ``pub.js`` sends when an ad became viewable
(MRC display standard: at least half of its pixels on screen for one continuous second).

The ad unit runs no script and is cross-origin, so the page cannot read the impression id the server
chose. Instead ``pub.js`` draws a random nonce per slot and passes it as ``r`` to ``/ad``; the server
derives the impression id from it with an HMAC under its secret key, and ``/px/viewable?r=`` derives
the same id again. The nonce alone tells nothing about the id (the key is needed), and an id cannot be
steered onto someone else's impression without knowing that impression's nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence

import redis
from flask import Blueprint, Response, request

from adserver.services import services
from adserver.tracking.views import GIF
from tracker.events import ADVERTISER_RE, PLACEMENT_RE, device_class
from tracker.signing import b64encode
from tracker.stream import METRICS_KEY

log = logging.getLogger(__name__)
bp = Blueprint("publisher", __name__)

# 16-64 base64url characters: pub.js sends 24 (18 random bytes); anything else is not ours.
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")
IMPRESSION_ID_BYTES = 12  # as random ids: 16 base64url characters, and what click tokens carry
# A repeated beacon is ignored this long. pub.js sends one beacon per slot and page, at most seconds
# to minutes after the ad, so the window only has to catch replays. Each well-formed beacon keeps one
# key (``vw:{<impression id>}``, about 70 bytes in Redis 7) this long: bounded by the beacon rate times
# the window, whatever nonces are sent (a one-day window would keep 24 times as many); malformed ones none.
VIEWABLE_DEDUPE_SECONDS = 3600


def valid_nonce(value: object) -> str | None:
    """The request nonce if it has the shape pub.js sends, else None (callers ignore bad ones)."""
    return value if isinstance(value, str) and NONCE_RE.match(value) else None


def impression_id_for(keys: Sequence[str | bytes], nonce: str) -> str:
    """The impression id for a page's request nonce: HMAC of the nonce under the newest key.

    Deterministic, so ``/ad`` and ``/px/viewable`` agree without sharing any state; purpose-separated
    (``impression:``) so the value can never double as a cookie or click-token MAC. Same length as the
    random ids, so click tokens and reports need not know where an id came from.
    """
    key = keys[0]
    key_bytes = key if isinstance(key, bytes) else key.encode()
    digest = hmac.new(key_bytes, b"impression:" + nonce.encode("ascii"), hashlib.sha256).digest()
    return b64encode(digest[:IMPRESSION_ID_BYTES])


def _count(name: str) -> None:
    """Bump a shared counter; a counter is never worth failing a beacon for."""
    try:
        services().stream_if_up().client.hincrby(METRICS_KEY, name, 1)
    except (redis.RedisError, OSError):
        services().breaker.failure()


def _first_viewable(impression_id: str) -> bool:
    """True the first time this impression is reported viewable (within ``VIEWABLE_DEDUPE_SECONDS``).

    With Redis down the event is recorded anyway: a rare duplicate beats losing viewability data,
    and reports can still count distinct impression ids.
    """
    svc = services()
    try:
        first = svc.stream_if_up().client.set("vw:{%s}" % impression_id, 1, nx=True, ex=VIEWABLE_DEDUPE_SECONDS)
        svc.breaker.success()
        return bool(first)
    except (redis.RedisError, OSError) as exc:
        svc.breaker.failure()
        log.warning("viewable de-duplication skipped (%s)", exc)
        return True


@bp.route("/px/viewable", methods=["GET", "POST"])
def viewable() -> Response:
    """Record that an impression became viewable; always the GIF, whatever the input.

    GET comes from an ``Image``, POST from ``navigator.sendBeacon`` (no body is read). Invalid
    requests are counted (``viewable_rejected``), not stored: they carry nothing worth keeping.
    """
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, max-age=0"
    try:
        placement = request.args.get("p", "")
        nonce = valid_nonce(request.args.get("r"))
        if not PLACEMENT_RE.match(placement) or nonce is None:
            _count("viewable_rejected")
            return response
        advertiser = request.args.get("a", "")
        svc = services()
        impression_id = impression_id_for(svc.settings.secret_keys, nonce)
        if not _first_viewable(impression_id):
            _count("viewable_duplicate")
            return response
        svc.record({
            "ts": time.time(), "advertiser": advertiser if ADVERTISER_RE.match(advertiser) else "",
            "event": "viewable", "uid": "", "placement": placement, "impression_id": impression_id,
            "addressable": 0, "device": device_class(request.headers.get("User-Agent", "")),
        }, counter="viewable")
    except Exception:  # noqa: BLE001 - a beacon never fails
        log.exception("viewable beacon not recorded")
    return response
