"""Synthetic ad traffic: impressions, clicks and purchases generated inside ClickHouse.

Used by ``scripts/gen_events.py`` (benchmark volumes) and by the demo (a few days of traffic so the
dashboard has something to show). Every row is computed by the server from ``numbers()`` with
``INSERT ... SELECT``, so 100 million rows never travel through Python; all values are parameters.

The traffic is shaped like a real retargeting campaign: a day/night cycle in the advertiser's time
zone, a few heavy visitors and many light ones (20 % of browsers without a usable cookie), a
skewed catalog and placement mix, 2-4 products per ad with recent/similar/popular reasons, about
0.8 % of ads clicked, 5 % of clicks followed by an order (minutes to days later), a few orders
after an ad was only seen, orders from visitors who never saw an ad, and 3 % of order pixels
firing twice. Everything is a deterministic function of (seed, row number): the same arguments
give the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracker.clickhouse import ClickHouse

# Relative traffic per local hour of the day (0-23): quiet nights, busy evenings.
DIURNAL = (3, 2, 1, 1, 1, 2, 4, 6, 8, 9, 9, 10, 11, 10, 9, 9, 10, 11, 13, 15, 16, 15, 11, 6)

_COLUMNS = ("ts, advertiser, event, uid, sku, skus, reasons, order_id, value, currency, placement, "
            "impression_id, size, addressable, device, url, ref, stream_id")

# One row per generated impression, numbered ``n`` (no lambdas: 18.16 lambdas cannot capture columns).
_BASE = """
SELECT n, ts, uid, placement, imp_id, device,
       arraySlice([catalog[1 + p %% nc], catalog[1 + (p + 7) %% nc], catalog[1 + (p + 14) %% nc],
                   catalog[1 + (p + 21) %% nc]], 1, k) AS skus,
       arraySlice([multiIf(uid = '', 'popular', r > 0, 'recent', 'similar'),
                   multiIf(uid = '', 'popular', r > 1, 'recent', r = 1, 'similar', 'popular'),
                   multiIf(uid = '', 'popular', r = 2, 'similar', 'popular'), 'popular'], 1, k) AS reasons
FROM (
    SELECT n,
           %(catalog)s AS catalog, length(catalog) AS nc,
           toDateTime(%(start)s + intDiv(n * %(days)s, %(total)s) * 86400
                      + %(hours)s[1 + cityHash64(n, %(seed)s, 1) %% 100] * 3600
                      + cityHash64(n, %(seed)s, 2) %% 3600) AS ts,
           toUInt64(pow((cityHash64(n, %(seed)s, 3) %% 1000000) / 1000000, 2) * %(visitors)s) AS v,
           if(cityHash64(v, %(seed)s, 4) %% 100 < 80,
              concat(hex(cityHash64(v, %(seed)s, 5)), substring(hex(cityHash64(v, %(seed)s, 6)), 1, 6)),
              '') AS uid,
           %(placements)s[1 + toUInt64(pow((cityHash64(n, %(seed)s, 7) %% 1000) / 1000, 2)
                                      * length(%(placements)s))] AS placement,
           toUInt64(pow((cityHash64(n, %(seed)s, 8) %% 1000000) / 1000000, 3) * nc) AS p,
           2 + cityHash64(n, %(seed)s, 9) %% 3 AS k,
           cityHash64(v, %(seed)s, 10) %% 3 AS r,
           lower(hex(cityHash64(n, %(seed)s, 11))) AS imp_id,
           multiIf(cityHash64(v, %(seed)s, 12) %% 100 < 62, 'mobile',
                   cityHash64(v, %(seed)s, 12) %% 100 < 93, 'desktop', 'tablet') AS device
    FROM (SELECT number + %(offset)s AS n FROM numbers(%(count)s))
)
WHERE ts <= toDateTime(%(until)s)
"""

# Ads and clicks carry the campaign and what it was charged (CPM: each impression; CPC: each click).
_AD_COLUMNS = _COLUMNS + ", campaign, cost"

_IMPRESSIONS = f"""
INSERT INTO events ({_AD_COLUMNS})
SELECT ts, %(advertiser)s, 'impression', uid, skus[1], skus, reasons, '', 0, '', placement, imp_id,
       '300x250', toUInt8(uid != ''), device, '', '', %(tag)s, %(campaign)s, toFloat64(%(impression_cost)s)
FROM ({_BASE})
"""

# Clicked ads: which product, and when (a few seconds to a minute after the impression).
_CLICKS_BASE = f"""
SELECT n, uid, placement, imp_id, device, skus[c] AS sku, reasons[c] AS reason,
       ts + 2 + cityHash64(n, %(seed)s, 21) %% 60 AS click_ts
FROM (SELECT *, 1 + cityHash64(n, %(seed)s, 22) %% length(skus) AS c FROM ({_BASE}))
WHERE cityHash64(n, %(seed)s, 20) %% 10000 < %(ctr_bp)s
"""

_CLICKS = f"""
INSERT INTO events ({_AD_COLUMNS})
SELECT click_ts, %(advertiser)s, 'click', uid, sku, [sku], [reason], '', 0, '', placement, imp_id,
       '', toUInt8(uid != ''), device, '', '', %(tag)s, %(campaign)s, toFloat64(%(click_cost)s)
FROM ({_CLICKS_BASE})
WHERE click_ts <= toDateTime(%(until)s)
"""

# Orders after a click (5 %): mostly within hours, a tail over weeks; a click without a cookie
# leads to an order under another uid (not attributable). 3 %% of order pixels fire twice.
_CLICK_ORDERS = f"""
INSERT INTO events ({_COLUMNS})
SELECT order_ts + copy * 15, %(advertiser)s, 'purchase', buyer, sku, [sku], [], order_id, amount, %(currency)s,
       '', '', '', 1, device, '', '', %(tag)s
FROM (
    SELECT *, click_ts + 30 + toUInt32(pow((cityHash64(n, %(seed)s, 31) %% 1000) / 1000, 4) * 21 * 86400) AS order_ts,
           if(uid != '', uid, lower(hex(cityHash64(n, %(seed)s, 32)))) AS buyer,
           concat('o', lower(hex(cityHash64(n, %(seed)s, 33)))) AS order_id,
           round(19 + (cityHash64(n, %(seed)s, 34) %% 48000) / 100, 2) AS amount,
           if(cityHash64(n, %(seed)s, 35) %% 100 < 3, [0, 1], [0]) AS copies
    FROM ({_CLICKS_BASE})
    WHERE cityHash64(n, %(seed)s, 30) %% 100 < %(click_order_pct)s
)
ARRAY JOIN copies AS copy
WHERE order_ts + copy * 15 <= toDateTime(%(until)s)
"""

# Orders after an ad was only seen (a few in 10,000 addressable impressions), 10 minutes to 2 days later.
_VIEW_ORDERS = f"""
INSERT INTO events ({_COLUMNS})
SELECT order_ts, %(advertiser)s, 'purchase', uid, skus[1], skus, [], order_id, amount, %(currency)s,
       '', '', '', 1, device, '', '', %(tag)s
FROM (
    SELECT *, ts + 600 + cityHash64(n, %(seed)s, 41) %% (2 * 86400) AS order_ts,
           concat('v', lower(hex(cityHash64(n, %(seed)s, 42)))) AS order_id,
           round(19 + (cityHash64(n, %(seed)s, 43) %% 30000) / 100, 2) AS amount
    FROM ({_BASE})
    WHERE uid != '' AND cityHash64(n, %(seed)s, 40) %% 100000 < %(view_order_pcm)s
)
WHERE order_ts <= toDateTime(%(until)s)
"""

# Orders from visitors who never saw an ad (one per 2,000 impressions).
_ORGANIC_ORDERS = f"""
INSERT INTO events ({_COLUMNS})
SELECT ts, %(advertiser)s, 'purchase', uid, sku, [sku], [], order_id, amount, %(currency)s,
       '', '', '', 1, 'desktop', '', '', %(tag)s
FROM (
    SELECT toDateTime(%(start)s + cityHash64(n, %(seed)s, 51) %% (%(days)s * 86400)) AS ts,
           concat('z', lower(hex(cityHash64(n, %(seed)s, 52)))) AS uid,
           %(catalog)s[1 + cityHash64(n, %(seed)s, 53) %% length(%(catalog)s)] AS sku,
           concat('g', lower(hex(cityHash64(n, %(seed)s, 54)))) AS order_id,
           round(19 + (cityHash64(n, %(seed)s, 55) %% 30000) / 100, 2) AS amount
    FROM (SELECT number + %(offset)s AS n FROM numbers(%(count)s))
)
WHERE ts <= toDateTime(%(until)s)
"""


@dataclass(frozen=True)
class Traffic:
    advertiser: str
    start: int  # unix seconds, a local midnight
    days: int
    impressions: int
    catalog: Sequence[str]
    placements: Sequence[str]
    utc_offset_hours: int = 0  # shifts the day/night cycle to the advertiser's zone
    visitors: int = 0  # default: impressions / 30
    currency: str = "CNY"
    seed: int = 1
    tag: str = "synthetic"
    until: int = 2**32 - 1  # nothing later than this (unix seconds)
    ctr_bp: int = 80  # clicks per 10,000 ads
    click_order_pct: int = 5
    view_order_pcm: int = 25  # orders per 100,000 addressable ads, after a view only
    campaign: str = ""  # the campaign the ads belong to ('' : unpaid)
    pricing: str = "cpc"  # cpc | cpm: what is charged (no budget limit applies here)
    price: float = 0.0


def hour_table(utc_offset_hours: int) -> list[int]:
    """100 UTC hours drawn in proportion to the local day/night cycle."""
    total = sum(DIURNAL)
    table: list[int] = []
    for local_hour, weight in enumerate(DIURNAL):
        table += [(local_hour - utc_offset_hours) % 24] * round(weight * 100 / total)
    return (table + table[-1:] * 100)[:100]


def generate(ch: ClickHouse, traffic: Traffic, chunk: int = 2_000_000,
             progress: Callable[[int, int], None] | None = None) -> int:
    """Insert the traffic in chunks of ``chunk`` impressions; returns the number of impressions made."""
    if not traffic.catalog or not traffic.placements:
        raise ValueError("a catalog and at least one placement are needed")
    base = {
        "advertiser": traffic.advertiser, "start": traffic.start, "days": traffic.days,
        "total": max(1, traffic.impressions), "hours": hour_table(traffic.utc_offset_hours),
        "catalog": list(traffic.catalog), "placements": list(traffic.placements),
        "visitors": traffic.visitors or max(10, traffic.impressions // 30), "seed": traffic.seed,
        "currency": traffic.currency, "tag": traffic.tag, "until": traffic.until, "ctr_bp": traffic.ctr_bp,
        "click_order_pct": traffic.click_order_pct, "view_order_pcm": traffic.view_order_pcm,
        "campaign": traffic.campaign,
        "impression_cost": traffic.price / 1000.0 if traffic.pricing == "cpm" else 0.0,
        "click_cost": traffic.price if traffic.pricing == "cpc" else 0.0,
    }
    done = 0
    while done < traffic.impressions:
        count = min(chunk, traffic.impressions - done)
        params = dict(base, offset=done, count=count)
        for sql in (_IMPRESSIONS, _CLICKS, _CLICK_ORDERS, _VIEW_ORDERS):
            ch.execute(sql, params)
        organic = math.ceil(count / 2000)
        ch.execute(_ORGANIC_ORDERS, dict(base, offset=done // 2000, count=organic))
        done += count
        if progress:
            progress(done, traffic.impressions)
    return done
