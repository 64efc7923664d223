"""Impressions, clicks, visitors, addressable share and spend per report key, of valid traffic;
invalid impressions and clicks (bots, prefetches, click floods) counted apart for the ad-level
breakdowns. Spend is what campaigns were charged (``cost`` of valid impressions and clicks); it is
known for ads (totals, days, hours, placements, campaigns), not per product or reason. Negative
feedback (``hide`` events: readers' "not interested") is counted for every breakdown but reasons. So is the
consent of impressions under GDPR (IAB TCF, ``events.consent``): how many applied and how many of
those consented to personalised ads.

``agg`` reads the hourly tables the materialized views fill; ``raw`` computes the same from
``events`` (the source of truth), for tests and the benchmark. Hours are UTC hours; keys convert
them to the advertiser's time zone. Only whitelisted table names and key expressions are
formatted into the SQL; values are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.clickhouse import ClickHouse

# Which rows of the report tables (``dim``, tracker/schema/reports.py) answer each breakdown, and whether
# their impressions are ads or product slots. Totals, days and hours add up the placement rows.
DIMS = {
    "total": "placement",
    "day": "placement",
    "hour": "placement",
    "placement": "placement",
    "reason": "reason",
    "sku": "sku",
    "campaign": "campaign",
}
PRODUCT_LEVEL = frozenset({"reason", "sku"})

KEYS = {
    "total": "'total'",
    "day": "toString(toDate(hour, %(tz)s))",
    "hour": "toString(hour, %(tz)s)",
    "placement": "placement",
    "reason": "reason",
    "sku": "sku",
    "campaign": "campaign",
}

_AGG = """
SELECT {key} AS key,
       sumMerge(impressions) AS imps,
       sumMerge(addressable_impressions) AS addressable,
       sumMerge(clicks) AS clks,
       {share} AS share,
       {visitors} AS uniq_visitors,
       {invalid} AS invalid_imps,
       {invalid_clicks} AS invalid_clks,
       {spend} AS spend,
       {gdpr} AS gdpr_imps,
       {consented} AS consented_imps,
       {hides} AS hides
FROM {source}
WHERE {where}
GROUP BY key
"""
_HOURS = ("advertiser = %(advertiser)s AND dim = %(dim)s AND hour >= toDateTime(%(start)s) "
          "AND hour < toDateTime(%(end)s)")

# Breakdowns without time in the key (placement, reason, product, campaign) read whole UTC days from
# the daily table and only the hours at the ends of the range from the hourly one.
SPLIT_GROUPS = frozenset({"placement", "reason", "sku", "campaign"})
# Each breakdown's key under the name its ``KEYS`` expression reads.
_KEY_COLUMNS = {"placement": "key AS placement", "campaign": "key AS campaign", "reason": "key AS reason, sub AS placement",
                "sku": "key AS sku"}
_STATES = ("impressions, impression_share, addressable_impressions, clicks, visitors, invalid_impressions, "
           "invalid_clicks, spend, gdpr_impressions, consented_impressions, hides")
_SPLIT_SOURCE = """(
    SELECT {columns} FROM report_hours
    WHERE advertiser = %(advertiser)s AND dim = %(dim)s
      AND ((hour >= toDateTime(%(start)s) AND hour < toDateTime(%(day_lo)s))
           OR (hour >= toDateTime(%(day_hi)s) AND hour < toDateTime(%(end)s)))
    UNION ALL
    SELECT {columns} FROM report_days
    WHERE advertiser = %(advertiser)s AND dim = %(dim)s AND day >= %(day_lo_date)s AND day < %(day_hi_date)s
)"""

# Visitors for totals, days and hours come from the small per-hour reach table.
REACH_GROUPS = frozenset({"total", "day", "hour"})
_REACH = """
SELECT {key} AS key, uniqHLL12Merge(visitors) AS uniq_visitors
FROM report_reach_hourly
WHERE advertiser = %(advertiser)s AND hour >= toDateTime(%(start)s) AND hour < toDateTime(%(end)s)
GROUP BY key
"""

# The raw twin: the same hour truncation and key expressions over ``events``. Product-level
# tables hold valid events only, so their twin skips invalid events altogether.
_RAW = """
SELECT {key} AS key,
       sum(toUInt64(event = 'impression' AND invalid = 0)) AS imps,
       sum(toUInt64(event = 'impression' AND addressable = 1 AND invalid = 0)) AS addressable,
       sum(toUInt64(event = 'click' AND invalid = 0)) AS clks,
       {share} AS share,
       {visitors} AS uniq_visitors,
       sum(toUInt64(event = 'impression' AND invalid != 0)) AS invalid_imps,
       sum(toUInt64(event = 'click' AND invalid != 0)) AS invalid_clks,
       {spend} AS spend,
       {gdpr} AS gdpr_imps,
       {consented} AS consented_imps,
       {hides} AS hides
FROM (
    SELECT toStartOfHour(ts, 'UTC') AS hour, event, addressable, uid, placement, campaign, cost,
           invalid, consent{slot_columns}
    FROM events {array_join}
    WHERE advertiser = %(advertiser)s AND event IN ({events}) {valid_only}
      AND ts >= toDateTime(%(start)s) AND ts < toDateTime(%(end)s)
)
GROUP BY key
"""


@dataclass
class AdStats:
    impressions: int = 0
    addressable: int = 0
    clicks: int = 0
    share: float = 0.0  # ad impressions these product impressions stand for (sum of 1/n)
    visitors: int | None = None
    invalid_impressions: int | None = 0  # None: not counted for this breakdown (products, reasons)
    invalid_clicks: int | None = 0
    spend: float | None = 0.0  # None: not known for this breakdown (products, reasons)
    gdpr_impressions: int | None = 0  # valid impressions where GDPR applied; None: products, reasons
    consented_impressions: int | None = 0  # of those, with consent to personalised ads
    hides: int | None = 0  # "not interested" answers (negative feedback); None: not counted per reason


def day_split(start: int, end: int) -> dict:
    """The whole UTC days inside ``[start, end)``: ``[day_lo, day_hi)``, empty if there is none."""
    day_lo = -(-start // 86400) * 86400
    day_hi = end // 86400 * 86400
    if day_lo >= day_hi:
        day_lo = day_hi = end
    return {"day_lo": day_lo, "day_hi": day_hi,
            "day_lo_date": datetime.fromtimestamp(day_lo, UTC).date(),
            "day_hi_date": datetime.fromtimestamp(day_hi, UTC).date()}


def ad_stats_sql(group_by: str, source: str = "agg") -> str:
    if group_by not in KEYS:
        raise ValueError(f"unknown group_by {group_by!r}")
    product_level = group_by in PRODUCT_LEVEL
    if source == "agg":
        split = group_by in SPLIT_GROUPS
        return _AGG.format(
            key=KEYS[group_by],
            source=_SPLIT_SOURCE.format(columns=f"{_KEY_COLUMNS[group_by]}, {_STATES}") if split else "report_hours",
            where="1" if split else _HOURS,
            share="sumMerge(impression_share)" if product_level else "toFloat64(sumMerge(impressions))",
            visitors=("toUInt64(0)" if group_by == "sku" or group_by in REACH_GROUPS
                      else "uniqHLL12Merge(visitors)"),
            invalid="toUInt64(0)" if product_level else "sumMerge(invalid_impressions)",
            invalid_clicks="toUInt64(0)" if product_level else "sumMerge(invalid_clicks)",
            spend="toFloat64(0)" if product_level else "sumMerge(spend)",
            gdpr="toUInt64(0)" if product_level else "sumMerge(gdpr_impressions)",
            consented="toUInt64(0)" if product_level else "sumMerge(consented_impressions)",
            hides="toUInt64(0)" if group_by == "reason" else "sumMerge(hides)",
        )
    if source == "raw":
        return _RAW.format(
            key=KEYS[group_by],
            share=("sum(if(event = 'impression', 1 / n_products, 0))" if product_level
                   else "toFloat64(sum(toUInt64(event = 'impression' AND invalid = 0)))"),
            visitors=("toUInt64(0)" if group_by == "sku"
                      else "uniqHLL12If(uid, event = 'impression' AND uid != '' AND invalid = 0)"),
            slot_columns=", skus[slot] AS sku, reasons[slot] AS reason, length(skus) AS n_products"
            if product_level else "",
            array_join="ARRAY JOIN arrayEnumerate(skus) AS slot" if product_level else "",
            valid_only="AND invalid = 0" if product_level else "",
            spend="toFloat64(0)" if product_level else "sum(if(invalid = 0, cost, toFloat64(0)))",
            gdpr="toUInt64(0)" if product_level else "sum(toUInt64(event = 'impression' AND invalid = 0 AND consent != 0))",
            consented="toUInt64(0)" if product_level else "sum(toUInt64(event = 'impression' AND invalid = 0 "
                                                          "AND consent = 1))",
            hides="toUInt64(0)" if group_by == "reason" else "sum(toUInt64(event = 'hide' AND invalid = 0))",
            events="'impression', 'click'" if group_by == "reason" else "'impression', 'click', 'hide'",
        )
    raise ValueError(f"unknown source {source!r}")


def ad_stats(ch: ClickHouse, advertiser: str, start: int, end: int, group_by: str, timezone: str,
             source: str = "agg") -> dict[str, AdStats]:
    """Ad statistics per key for UTC hours in ``[start, end)`` (unix seconds, whole hours)."""
    params = {"advertiser": advertiser, "start": start, "end": end, "tz": timezone, "dim": DIMS[group_by],
              **day_split(start, end)}
    rows = ch.execute(ad_stats_sql(group_by, source), params)
    product_level = group_by in PRODUCT_LEVEL
    stats = {
        str(key): AdStats(int(imps), int(addr), int(clks), float(share), None if group_by == "sku" else int(vis),
                          None if product_level else int(bad_imps), None if product_level else int(bad_clks),
                          None if product_level else round(float(spend), 6),
                          None if product_level else int(gdpr), None if product_level else int(consented),
                          hides=None if group_by == "reason" else int(hides))
        for key, imps, addr, clks, share, vis, bad_imps, bad_clks, spend, gdpr, consented, hides in rows
    }
    if source == "agg" and group_by in REACH_GROUPS:
        for key, visitors in ch.execute(_REACH.format(key=KEYS[group_by]), params):
            stats.setdefault(str(key), AdStats(visitors=0)).visitors = int(visitors)
    return stats
