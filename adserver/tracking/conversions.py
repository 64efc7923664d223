"""``POST /api/v1/conversions/<advertiser>``: the store's server reports its orders, the server-side
twin of the ``purchase`` pixel.

Any page can fire a ``purchase`` pixel with any value for any advertiser; an order sent here comes
with the advertiser's API token (``Authorization: Bearer ads_…``, as for feed uploads), so it is
stored as a **verified** purchase (``events.verified = 1``: the pixel path never sets it) and
reports can count verified orders only (docs/reports.md). The store passes back the click id the
click redirect appended to the landing URL (``adclid``, adserver/serving/click_ids.py); its
signature is checked, and the visitor it carries links the order to the ads that visitor saw.

Idempotent by order id: an order id already stored for the advertiser (or being stored by a
concurrent request: a short Redis claim per order) is answered ``duplicate`` and not stored again,
so a store can resend a batch after a timeout. Rows are inserted before the answer, so ``accepted``
means stored. Bad orders are listed with index, field and reason; the good ones are stored.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, jsonify, request

from adserver.api_errors import api_error
from adserver.catalog.tokens import bearer_token, token_advertiser
from adserver.limits import accepts_body
from adserver.services import services
from adserver.tracking.orders import MAX_BODY_BYTES, BadBatch, Order, parse_orders
from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError
from tracker.events import ADVERTISER_RE

log = logging.getLogger(__name__)
bp = Blueprint("conversions", __name__)

CLAIM_SECONDS = 300  # longer than any insert takes; afterwards the stored row answers for the order
_COLUMNS = ("ts", "advertiser", "event", "uid", "sku", "skus", "order_id", "value", "currency",
            "impression_id", "addressable", "verified")


def _claim_key(advertiser: str, order_id: str) -> str:
    return f"conv:{advertiser}:{order_id}"


def stored_order_ids(ch: ClickHouse, advertiser: str, order_ids: list[str]) -> set[str]:
    """Which of these order ids the advertiser already sent through the API."""
    if not order_ids:
        return set()
    rows = ch.execute(
        "SELECT DISTINCT order_id FROM events WHERE advertiser = %(a)s AND event = 'purchase' AND verified = 1 "
        "AND order_id IN %(ids)s", {"a": advertiser, "ids": tuple(order_ids)})
    return {r[0] for r in rows}


def _row(advertiser: str, order: Order) -> tuple:
    """The ``events`` row of a verified order (columns ``_COLUMNS``)."""
    ts = datetime.fromtimestamp(order.ts, UTC).replace(tzinfo=None)
    return (ts, advertiser, "purchase", order.uid, order.skus[0], order.skus, order.order_id, order.value,
            order.currency, order.impression_id, 1 if order.uid else 0, 1)


def store_orders(ch: ClickHouse, client: redis.Redis, advertiser: str, orders: list[Order]) -> list[bool]:
    """Store each order not stored yet; True per order stored now, False per duplicate.

    Raises ``redis.RedisError``/``OSError`` or :class:`StoreError` when a store is unavailable: then
    nothing of the batch is stored and the claims are released, so a retry stores it.
    """
    first: dict[str, int] = {}
    for n, order in enumerate(orders):
        first.setdefault(order.order_id, n)  # the same id twice in one batch: the first one counts
    known = stored_order_ids(ch, advertiser, list(first))
    candidates = [oid for oid in first if oid not in known]
    claimed: list[str] = []
    if candidates:
        pipe = client.pipeline(transaction=False)
        for oid in candidates:
            pipe.set(_claim_key(advertiser, oid), 1, nx=True, ex=CLAIM_SECONDS)
        claimed = [oid for oid, ok in zip(candidates, pipe.execute()) if ok]
    rows = [_row(advertiser, orders[first[oid]]) for oid in claimed]
    try:
        ch.insert("events", _COLUMNS, rows)
    except Exception:
        if claimed:
            client.delete(*(_claim_key(advertiser, oid) for oid in claimed))
        raise
    stored = set(claimed)
    return [order.order_id in stored and first[order.order_id] == n for n, order in enumerate(orders)]


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/api/v1/conversions/<advertiser>")
@accepts_body(MAX_BODY_BYTES)  # a full batch; a larger declared body is refused before it is read
def post_conversions(advertiser: str) -> Response:
    if not ADVERTISER_RE.match(advertiser):
        return api_error(404, "not_found", "unknown advertiser")
    svc = services()
    owner = token_advertiser(svc.ch, bearer_token(request))
    if owner is None:
        return api_error(401, "unauthorized", "a valid API token is required (Authorization: Bearer ...)")
    if owner != advertiser:
        return api_error(403, "forbidden", "this token belongs to another advertiser")
    data = request.get_data(cache=False)  # at most MAX_BODY_BYTES: Werkzeug cuts a chunked body there
    try:
        batch = parse_orders(data, advertiser, svc.click_ids)
    except BadBatch as exc:
        return api_error(exc.status, exc.code, str(exc))
    orders = [order for _, order in batch.orders]
    try:
        stored = store_orders(svc.ch, svc.redis, advertiser, orders)
    except (redis.RedisError, OSError, StoreError) as exc:
        log.warning("conversions of %s not stored: %s", advertiser, exc)
        response = api_error(503, "unavailable", "the orders could not be stored now; nothing was stored, "
                                              "send the same batch again")
        response.headers["Retry-After"] = "30"
        return response
    results = [{"index": index, "order_id": order.order_id, "status": "accepted" if new else "duplicate"}
               for (index, order), new in zip(batch.orders, stored)]
    results += [{"index": i, "status": "rejected"} for i in sorted({e.index for e in batch.errors})]
    results.sort(key=lambda r: r["index"])
    accepted = sum(stored)
    body = {"accepted": accepted, "duplicates": len(stored) - accepted,
            "rejected": len({e.index for e in batch.errors}), "orders": results,
            "errors": [e.as_dict() for e in batch.errors]}
    if not orders:
        return api_error(400, "no_valid_order", "no order of the batch is valid; nothing was stored", **body)
    return jsonify(body)
