"""Conversions and revenue attributed to ads, computed at report time with the chosen windows.

Rules (docs/reports.md has the long version):

* An order counts once: purchases are de-duplicated per (advertiser, order id) and the first pixel
  wins (its time, visitor, value and products). Orders are dated by that first pixel. An order
  only sent through the conversion API (adserver/tracking/conversions.py) is described by that
  record, whose visitor is the one its click id named.
* ``verified``: only the records the conversion API stored count (a page can fire any pixel), and
  they describe their orders; pixels are ignored.
* For each order, the touchpoints of the same visitor (cookie) before the purchase are searched:
  the **last click** no older than the post-click window wins; if there is none, the **last
  impression** no older than the post-view window wins; otherwise the order is not attributed.
  A touch at the same second as the purchase counts; touches after the purchase never do.
* The order is reported under its winning touch: its placement; its product (post-click: the
  clicked product; post-view: the first product of the ad that the order contains, else the ad's
  first product) and that product's recommendation reason. Days and hours are the purchase's.

How: whatever the windows, an order's attribution only depends on the visitor's **last click**
and **last impression** before the purchase (the last touch of a kind is inside a window exactly
when any is). So each order is *resolved* once into those two touches (looking 90 days back), and a
report applies its windows to the resolved rows. Resolutions of orders older than an hour are kept
in ``report_order_touches`` (``report_verified_order_touches`` for verified orders; written here,
at most once a minute per advertiser, range, kind and process); newer or not yet kept orders are resolved on the fly, so a report is always complete.

Two sources give the same numbers: ``agg`` reads the touchpoints a materialized view keeps
(``report_touchpoints``) and the kept resolutions, ``raw`` resolves every order from ``events``
directly (tests and the benchmark compare them). Orders come from ``events`` in both. The SQL runs on ClickHouse 18.16
and on chdb; only key expressions from a fixed whitelist are formatted into it, values are
parameters.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tracker.clickhouse import ClickHouse

CLICK = 2
VIEW = 1
LOOKBACK = 90 * 86400  # the longest window a report may ask for
SETTLE = 3600  # orders older than this get their resolution kept
KEEP_EVERY = 60.0  # seconds between two attempts to keep resolutions, per advertiser and process
KEEP_PER_REPORT = 10_000  # orders a report keeps at most (a backlog is kept over several reports or by keep_all)

# De-duplicated orders whose describing record is in [start, end): (order_id, uid, pts, o_value,
# o_skus). An order's records are ranked: the store's pixels first (by time), then what the store sent
# through the conversion API (``verified``); the first describes the order, so sending orders through
# the API as well changes no count of a report over every order. ``{verified}`` keeps the API's
# records only. Purchases are a contiguous range of ``events``' sorting key (advertiser, event, ts),
# small next to ad events; every record of an order is looked at, so an order first seen before the
# range is not counted again in it.
_ORDERS = """
    SELECT order_id, o_uid AS uid, pts, o_value, o_skus FROM (
        SELECT order_id, argMin(ts, rank) AS pts, argMin(uid, rank) AS o_uid,
               argMin(value, rank) AS o_value, argMin(skus, rank) AS o_skus
        FROM (
            SELECT order_id, ts, uid, value, skus, toUInt64(verified) * 4294967296 + toUInt32(ts) AS rank
            FROM events
            WHERE advertiser = %(advertiser)s AND event = 'purchase' {verified}
              AND order_id IN (SELECT order_id FROM events WHERE advertiser = %(advertiser)s AND event = 'purchase'
                               AND ts >= toDateTime(%(start)s) AND ts < toDateTime(%(end)s) AND order_id != ''
                               {verified})
        )
        GROUP BY order_id
    )
    WHERE pts >= toDateTime(%(start)s) AND pts < toDateTime(%(end)s) AND o_uid != '' {where}
"""
_VERIFIED = "AND verified = 1"

# Where resolutions are kept: reports over verified orders keep theirs apart, since the records
# describing an order differ between the two.
KEPT_TABLES = {False: "report_order_touches", True: "report_verified_order_touches"}

# Orders whose resolution is not kept yet (optionally: only those old enough to be kept).
_NOT_KEPT = ("AND order_id NOT IN (SELECT order_id FROM {kept} WHERE advertiser = %(advertiser)s "
             "AND pts >= toDateTime(%(start)s) AND pts < toDateTime(%(end)s))")
_SETTLED = "AND pts < toDateTime(%(settled)s)"

# Touches of the visitors who ordered: (uid, t_ts, t_kind, t_placement, t_skus, t_reasons). ``agg``
# reads a batch of known visitors (a literal set, so the primary key prunes to their granules;
# ClickHouse 18.16 does not prune on a set built by a nested subquery).
_TOUCHES_AGG = """
    SELECT uid, ts AS t_ts, kind AS t_kind, placement AS t_placement, skus AS t_skus, reasons AS t_reasons
    FROM report_touchpoints
    WHERE advertiser = %(advertiser)s AND ts >= toDateTime(%(lookback)s) AND ts < toDateTime(%(end)s)
      AND uid IN %(batch_uids)s
"""

_TOUCHES_RAW = """
    SELECT uid, ts AS t_ts, toUInt8(if(event = 'click', 2, 1)) AS t_kind,
           placement AS t_placement, skus AS t_skus, reasons AS t_reasons
    FROM events
    WHERE advertiser = %(advertiser)s AND event IN ('impression', 'click') AND uid != '' AND invalid = 0
      AND ts >= toDateTime(%(lookback)s) AND ts < toDateTime(%(end)s)
      AND uid IN (SELECT uid FROM ({orders}))
"""
_BATCH = "AND order_id IN %(batch_orders)s"
BATCH_SIZE = 2000  # orders resolved per statement (keeps the SQL text well under max_query_size)

# One row per order that has a touch in the 90 days before it: its last click and last impression.
_RESOLVE = """
    SELECT order_id, any(uid) AS buyer, any(pts) AS o_pts, any(o_value) AS value, any(o_skus) AS order_skus,
           maxIf(t_ts, t_kind = 2) AS click_ts,
           argMaxIf(t_placement, t_ts, t_kind = 2) AS click_placement,
           argMaxIf(t_skus, t_ts, t_kind = 2) AS click_skus,
           argMaxIf(t_reasons, t_ts, t_kind = 2) AS click_reasons,
           maxIf(t_ts, t_kind = 1) AS view_ts,
           argMaxIf(t_placement, t_ts, t_kind = 1) AS view_placement,
           argMaxIf(t_skus, t_ts, t_kind = 1) AS view_skus,
           argMaxIf(t_reasons, t_ts, t_kind = 1) AS view_reasons
    FROM ({touches}) AS touches ALL INNER JOIN ({orders}) AS orders USING (uid)
    WHERE toUInt32(t_ts) <= toUInt32(pts) AND toUInt32(t_ts) + %(lookback_seconds)s >= toUInt32(pts)
    GROUP BY order_id
"""

_RESOLVED_COLUMNS = ("order_id, buyer, o_pts, value, order_skus, click_ts, click_placement, click_skus, "
                     "click_reasons, view_ts, view_placement, view_skus, view_reasons")

_KEPT = """
    SELECT order_id, uid AS buyer, pts AS o_pts, value, order_skus, click_ts, click_placement, click_skus,
           click_reasons, view_ts, view_placement, view_skus, view_reasons
    FROM {kept} FINAL
    WHERE advertiser = %(advertiser)s AND pts >= toDateTime(%(start)s) AND pts < toDateTime(%(end)s)
"""

# Windows applied to resolved orders: one row per attributed order.
_ATTRIBUTED = """
    SELECT order_id, o_pts AS pts, value, order_skus, kind,
           if(kind = 2, click_placement, view_placement) AS placement,
           if(kind = 2, click_skus, view_skus) AS touch_skus,
           if(kind = 2, click_reasons, view_reasons) AS touch_reasons
    FROM (
        SELECT *, multiIf(
            toUInt32(click_ts) > 0 AND toUInt32(click_ts) + %(click_window)s >= toUInt32(o_pts), 2,
            toUInt32(view_ts) > 0 AND toUInt32(view_ts) + %(view_window)s >= toUInt32(o_pts), 1,
            0) AS kind
        FROM ({resolved})
    )
    WHERE kind > 0
"""

_KEEP = f"""
    INSERT INTO {{kept}} (advertiser, order_id, uid, pts, value, order_skus, click_ts, click_placement,
        click_skus, click_reasons, view_ts, view_placement, view_skus, view_reasons, version)
    SELECT %(advertiser)s, {_RESOLVED_COLUMNS}, toUInt64(%(version)s) FROM ({{resolved}})
"""

# Settled orders without any touch are kept too (with no click and no view), so they are not
# searched again.
_KEEP_UNTOUCHED = """
    INSERT INTO {kept} (advertiser, order_id, uid, pts, value, order_skus, click_ts, click_placement,
        click_skus, click_reasons, view_ts, view_placement, view_skus, view_reasons, version)
    SELECT %(advertiser)s, order_id, uid, pts, o_value, o_skus, toDateTime(0), '', emptyArrayString(),
           emptyArrayString(), toDateTime(0), '', emptyArrayString(), emptyArrayString(), toUInt64(%(version)s)
    FROM ({orders})
"""

# The product an order is reported under, and that product's reason. (ClickHouse 18.16 lambdas
# cannot capture columns, so the order's products are passed to the lambda as a repeated array.)
_SHOWN_AND_BOUGHT = ("arrayFirst((s, bought) -> has(bought, s), touch_skus, "
                     "arrayResize([order_skus], length(touch_skus), order_skus))")
SKU_EXPR = f"if(kind = 2 OR {_SHOWN_AND_BOUGHT} = '', touch_skus[1], {_SHOWN_AND_BOUGHT})"
REASON_EXPR = f"touch_reasons[indexOf(touch_skus, {SKU_EXPR})]"

# Report keys (whitelist): each maps to an expression over the attributed orders' columns.
KEYS = {
    "total": "'total'",
    "day": "toString(toDate(toStartOfHour(pts, 'UTC'), %(tz)s))",
    "hour": "toString(toStartOfHour(pts, 'UTC'), %(tz)s)",
    "placement": "placement",
    "sku": SKU_EXPR,
    "reason": REASON_EXPR,
}


@dataclass
class Conversions:
    conversions: int = 0
    post_click: int = 0
    post_view: int = 0
    revenue: float = 0.0


def _orders(where: str, verified: bool) -> str:
    """``_ORDERS`` with ``where`` (constant fragments), over every order or verified orders only."""
    return _ORDERS.format(where=where, verified=_VERIFIED if verified else "")


def _not_kept_filter(verified: bool) -> str:
    return _NOT_KEPT.format(kept=KEPT_TABLES[verified])


def _resolve_sql(source: str, where: str = "", verified: bool = False) -> str:
    """Resolution of the orders ``_ORDERS`` selects with ``where`` (``agg``: plus the batch filter)."""
    if source == "agg":
        orders = _orders(f"{where} {_BATCH}", verified)
        return _RESOLVE.format(touches=_TOUCHES_AGG, orders=orders)
    orders = _orders(where, verified)
    return _RESOLVE.format(touches=_TOUCHES_RAW.format(orders=orders), orders=orders)


def conversions_sql(group_by: str, source: str = "agg", with_batch: bool = False, verified: bool = False) -> str:
    """The SQL of conversions per key; ``group_by`` and ``source`` come from fixed whitelists.

    ``agg`` reads kept resolutions, plus (``with_batch``) the on-the-fly resolution of the orders
    in the ``batch_orders`` parameter that are not kept. ``verified``: orders sent through the
    conversion API only.
    """
    if group_by not in KEYS:
        raise ValueError(f"unknown group_by {group_by!r}")
    if source == "agg":
        resolved = _KEPT.format(kept=KEPT_TABLES[verified])
        if with_batch:
            resolved += (f" UNION ALL SELECT {_RESOLVED_COLUMNS} "
                         f"FROM ({_resolve_sql('agg', _not_kept_filter(verified), verified)})")
    elif source == "raw":
        resolved = _resolve_sql("raw", verified=verified)
    else:
        raise ValueError(f"unknown source {source!r}")
    attributed = _ATTRIBUTED.format(resolved=resolved)
    return (f"SELECT {KEYS[group_by]} AS key, count() AS conversions, countIf(kind = 2) AS post_click, "
            f"countIf(kind = 1) AS post_view, sum(value) AS revenue FROM ({attributed}) GROUP BY key")


def _params(advertiser: str, start: int, end: int, **extra) -> dict:
    return {"advertiser": advertiser, "start": start, "end": end, "lookback": max(0, start - LOOKBACK),
            "lookback_seconds": LOOKBACK, **extra}


def _not_kept(ch: ClickHouse, params: dict, settled: bool, verified: bool = False) -> list[tuple[str, str]]:
    """(order_id, uid) of the orders of the range whose resolution is not kept."""
    where = f"{_not_kept_filter(verified)} {_SETTLED}" if settled else _not_kept_filter(verified)
    sql = "SELECT order_id, uid FROM (" + _orders(where, verified) + ") ORDER BY order_id"  # constant fragments
    return ch.execute(sql, params)


def _batches(orders: list[tuple[str, str]]):
    for i in range(0, len(orders), BATCH_SIZE):
        chunk = orders[i:i + BATCH_SIZE]
        yield {"batch_orders": tuple(o for o, _ in chunk), "batch_uids": tuple(sorted({u for _, u in chunk}))}


def keep_resolutions(ch: ClickHouse, advertiser: str, start: int, end: int, now: float | None = None,
                     limit: int | None = None, verified: bool = False) -> int:
    """Resolve the settled orders of ``[start, end)`` whose resolution is not kept yet (at most
    ``limit`` of them), and keep it. Returns how many orders were resolved."""
    now = time.time() if now is None else now
    params = _params(advertiser, start, end, settled=int(now) - SETTLE, version=time.time_ns())
    orders = _not_kept(ch, params, settled=True, verified=verified)[:limit]
    where = f"{_not_kept_filter(verified)} {_SETTLED}"
    kept = KEPT_TABLES[verified]
    for batch in _batches(orders):
        batch_params = {**params, **batch}
        ch.execute(_KEEP.format(kept=kept, resolved=_resolve_sql("agg", where, verified)), batch_params)
        ch.execute(_KEEP_UNTOUCHED.format(kept=kept, orders=_orders(f"{where} {_BATCH}", verified)), batch_params)
    return len(orders)


_kept_at: dict[str, float] = {}
_kept_lock = threading.Lock()


def _maybe_keep(ch: ClickHouse, advertiser: str, start: int, end: int, verified: bool) -> None:
    now = time.monotonic()
    key = f"{advertiser}:{start}:{end}:{int(verified)}"
    with _kept_lock:
        if now - _kept_at.get(key, -1e9) < KEEP_EVERY:
            return
        _kept_at[key] = now
    keep_resolutions(ch, advertiser, start, end, limit=KEEP_PER_REPORT, verified=verified)


def keep_all(ch: ClickHouse) -> int:
    """Keep the resolution of every settled order of every advertiser, for reports over every order
    and over verified orders (after a rebuild or a bulk load). Returns the resolutions kept."""
    kept = 0
    for advertiser, first, last, verified in ch.execute(
            "SELECT advertiser, toUInt32(min(ts)), toUInt32(max(ts)), max(verified) FROM events "
            "WHERE event = 'purchase' GROUP BY advertiser ORDER BY advertiser"):
        for mode in (False, True) if verified else (False,):
            kept += keep_resolutions(ch, advertiser, int(first), int(last) + 1, verified=mode)
    return kept


def forget_kept(advertiser: str | None = None) -> None:
    """Let the next report keep resolutions again at once (tests, after a rebuild)."""
    with _kept_lock:
        if advertiser is None:
            _kept_at.clear()
        else:
            for key in [k for k in _kept_at if k.startswith(advertiser + ":")]:
                del _kept_at[key]


def conversions(ch: ClickHouse, advertiser: str, start: int, end: int, group_by: str, timezone: str,
                click_window: int, view_window: int, source: str = "agg",
                verified: bool = False) -> dict[str, Conversions]:
    """Attributed conversions per key for orders described in ``[start, end)`` (unix seconds);
    ``verified``: only orders the store sent through the conversion API, described by that record."""
    if not 0 <= click_window <= LOOKBACK or not 0 <= view_window <= LOOKBACK:
        raise ValueError("attribution windows must be between 0 and 90 days")
    params = _params(advertiser, start, end, tz=timezone, click_window=click_window, view_window=view_window)
    results: dict[str, Conversions] = {}
    if source == "raw":
        _add_rows(results, ch.execute(conversions_sql(group_by, "raw", verified=verified), params))
        return results
    _maybe_keep(ch, advertiser, start, end, verified)
    batches = list(_batches(_not_kept(ch, params, settled=False, verified=verified)))
    # The kept resolutions, with the first batch of the others; further batches (rare: only when
    # thousands of orders are not kept yet) are added one by one.
    first = batches[0] if batches else None
    _add_rows(results, ch.execute(conversions_sql(group_by, "agg", with_batch=first is not None, verified=verified),
                                  {**params, **(first or {})}))
    for batch in batches[1:]:
        resolved = _resolve_sql("agg", _not_kept_filter(verified), verified)
        sql = (f"SELECT {KEYS[group_by]} AS key, count(), countIf(kind = 2), countIf(kind = 1), sum(value) "
               f"FROM ({_ATTRIBUTED.format(resolved=resolved)}) GROUP BY key")
        _add_rows(results, ch.execute(sql, {**params, **batch}))
    return results


def _add_rows(results: dict[str, Conversions], rows) -> None:
    for key, c, pc, pv, rev in rows:
        total = results.setdefault(str(key), Conversions())
        total.conversions += int(c)
        total.post_click += int(pc)
        total.post_view += int(pv)
        total.revenue = round(total.revenue + float(rev), 6)
