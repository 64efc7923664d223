"""Report tables: per-hour and per-day aggregates that materialized views fill from ``events``.

Raw ``events`` stay the source of truth; reports read the tables below, which materialized views
keep up to date as events are inserted (``python -m adserver rebuild-reports`` refills them from
``events``). Everything is aggregated per UTC hour; reports convert hours to the advertiser's
time zone at query time. Views must never fail (a failing view fails the insert into ``events``),
so they only use total functions: out-of-range array reads give '' instead of an error. States
are written with ``-StateIf`` (not ``-IfState``, whose type 18.16 cannot store in the column).

A view's query cannot be altered on ClickHouse 18.16, so a migration that changes what a view
computes drops it and creates it again (``recreate_views``); each migration keeps the SELECTs it
was written with, which is why the SELECTs of migrations 4, 6 and 7 all live here.
"""

from __future__ import annotations

from collections.abc import Iterable

# Ad units: one row per (advertiser, UTC hour, placement). ``impressions`` counts ad decisions
# that showed products, ``addressable_impressions`` those whose request carried a valid cookie,
# ``visitors`` estimates distinct cookies reached (HyperLogLog, 2^12 cells: exact up to 16
# visitors, about 1.6 % error beyond; small, fixed-size states that merge fast across hours).
REPORT_ADS_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_ads_hourly (
    advertiser String,
    hour DateTime,
    placement String,
    impressions AggregateFunction(sum, UInt64),
    addressable_impressions AggregateFunction(sum, UInt64),
    clicks AggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqHLL12, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, hour, placement)
"""

REPORT_ADS_HOURLY_SELECT = """
SELECT
    advertiser,
    toStartOfHour(ts, 'UTC') AS hour,
    placement,
    sumState(toUInt64(event = 'impression')) AS impressions,
    sumState(toUInt64(event = 'impression' AND addressable = 1)) AS addressable_impressions,
    sumState(toUInt64(event = 'click')) AS clicks,
    uniqHLL12StateIf(uid, event = 'impression' AND uid != '') AS visitors
FROM events
WHERE event IN ('impression', 'click')
GROUP BY advertiser, hour, placement
"""

REPORT_ADS_HOURLY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_ads_hourly_mv TO report_ads_hourly AS " + REPORT_ADS_HOURLY_SELECT


# Products shown, per recommendation reason and placement: one row per product slot of an ad
# (``impressions`` = product impressions) and per click. ``impression_share`` adds 1/n for each of
# the n products of an ad, so a CPM cost can be split between the products an ad showed.
REPORT_REASONS_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_reasons_hourly (
    advertiser String,
    hour DateTime,
    placement String,
    reason String,
    impressions AggregateFunction(sum, UInt64),
    impression_share AggregateFunction(sum, Float64),
    addressable_impressions AggregateFunction(sum, UInt64),
    clicks AggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqHLL12, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, hour, reason, placement)
"""

REPORT_REASONS_HOURLY_SELECT = """
SELECT
    advertiser,
    toStartOfHour(ts, 'UTC') AS hour,
    placement,
    reasons[slot] AS reason,
    sumState(toUInt64(event = 'impression')) AS impressions,
    sumState(if(event = 'impression', 1 / length(skus), 0)) AS impression_share,
    sumState(toUInt64(event = 'impression' AND addressable = 1)) AS addressable_impressions,
    sumState(toUInt64(event = 'click')) AS clicks,
    uniqHLL12StateIf(uid, event = 'impression' AND uid != '') AS visitors
FROM events
ARRAY JOIN arrayEnumerate(skus) AS slot
WHERE event IN ('impression', 'click')
GROUP BY advertiser, hour, placement, reason
"""

REPORT_REASONS_HOURLY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_reasons_hourly_mv TO report_reasons_hourly AS " + REPORT_REASONS_HOURLY_SELECT


# The same per product (no placement, reason or visitors: a catalog has thousands of products,
# and this keeps the table at most hours x products rows).
REPORT_PRODUCTS_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_products_hourly (
    advertiser String,
    hour DateTime,
    sku String,
    impressions AggregateFunction(sum, UInt64),
    impression_share AggregateFunction(sum, Float64),
    addressable_impressions AggregateFunction(sum, UInt64),
    clicks AggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, hour, sku)
"""

REPORT_PRODUCTS_HOURLY_SELECT = """
SELECT
    advertiser,
    toStartOfHour(ts, 'UTC') AS hour,
    skus[slot] AS sku,
    sumState(toUInt64(event = 'impression')) AS impressions,
    sumState(if(event = 'impression', 1 / length(skus), 0)) AS impression_share,
    sumState(toUInt64(event = 'impression' AND addressable = 1)) AS addressable_impressions,
    sumState(toUInt64(event = 'click')) AS clicks
FROM events
ARRAY JOIN arrayEnumerate(skus) AS slot
WHERE event IN ('impression', 'click')
GROUP BY advertiser, hour, sku
"""

REPORT_PRODUCTS_HOURLY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_products_hourly_mv TO report_products_hourly AS " + REPORT_PRODUCTS_HOURLY_SELECT


# Daily twins of the three tables above (UTC days). A report over whole UTC days reads a day row
# instead of 24 hour rows; the hours at either end of its range (local midnights are rarely UTC
# midnights) still come from the hourly tables.
def _daily(sql: str) -> str:
    return (sql.replace("_hourly", "_daily").replace("hour DateTime", "day Date")
            .replace("toYYYYMM(hour)", "toYYYYMM(day)").replace("(advertiser, hour,", "(advertiser, day,")
            .replace("toStartOfHour(ts, 'UTC') AS hour", "toDate(ts, 'UTC') AS day")
            .replace("GROUP BY advertiser, hour,", "GROUP BY advertiser, day,"))


REPORT_ADS_DAILY_TABLE = _daily(REPORT_ADS_HOURLY_TABLE)
REPORT_ADS_DAILY_SELECT = _daily(REPORT_ADS_HOURLY_SELECT)
REPORT_ADS_DAILY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_ads_daily_mv TO report_ads_daily AS " + REPORT_ADS_DAILY_SELECT
REPORT_REASONS_DAILY_TABLE = _daily(REPORT_REASONS_HOURLY_TABLE)
REPORT_REASONS_DAILY_SELECT = _daily(REPORT_REASONS_HOURLY_SELECT)
REPORT_REASONS_DAILY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_reasons_daily_mv TO report_reasons_daily AS " + REPORT_REASONS_DAILY_SELECT
REPORT_PRODUCTS_DAILY_TABLE = _daily(REPORT_PRODUCTS_HOURLY_TABLE)
REPORT_PRODUCTS_DAILY_SELECT = _daily(REPORT_PRODUCTS_HOURLY_SELECT)
REPORT_PRODUCTS_DAILY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_products_daily_mv TO report_products_daily AS " + REPORT_PRODUCTS_DAILY_SELECT

# Attribution touchpoints: impressions and clicks of visitors with a cookie, ordered for lookup by
# visitor. ``kind`` 2 = click, 1 = impression (a view). Small granules: attribution reads the
# touches of a few visitors at a time. Like every table with a ``uid`` column, a visitor's rows are
# removed by tracker/retention.py when they ask to be forgotten.
REPORT_TOUCHPOINTS_TABLE = """
CREATE TABLE IF NOT EXISTS report_touchpoints (
    advertiser String,
    uid String,
    ts DateTime,
    kind UInt8,
    placement String,
    skus Array(String),
    reasons Array(String)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (advertiser, uid, ts)
SETTINGS index_granularity = 1024
"""

REPORT_TOUCHPOINTS_SELECT = """
SELECT advertiser, uid, ts, toUInt8(if(event = 'click', 2, 1)) AS kind, placement, skus, reasons
FROM events
WHERE event IN ('impression', 'click') AND uid != ''
"""

REPORT_TOUCHPOINTS_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_touchpoints_mv TO report_touchpoints AS " + REPORT_TOUCHPOINTS_SELECT

# Visitors reached per advertiser and UTC hour, for totals, days and hours: a few hundred states
# per month to merge instead of one per placement and hour.
REPORT_REACH_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_reach_hourly (
    advertiser String,
    hour DateTime,
    visitors AggregateFunction(uniqHLL12, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, hour)
"""

REPORT_REACH_HOURLY_SELECT = """
SELECT advertiser, toStartOfHour(ts, 'UTC') AS hour, uniqHLL12State(uid) AS visitors
FROM events
WHERE event = 'impression' AND uid != ''
GROUP BY advertiser, hour
"""

REPORT_REACH_HOURLY_VIEW = "CREATE MATERIALIZED VIEW IF NOT EXISTS report_reach_hourly_mv TO report_reach_hourly AS " + REPORT_REACH_HOURLY_SELECT

# Each order's last click and last impression before it (same visitor, at most 90 days back),
# whatever the windows: a report applies its windows to these. (Orders themselves are read from
# ``events``: purchases are a small, contiguous range of its sorting key.) Written by reports themselves
# (adserver/console/attribution.py) for orders older than an hour, so that a report reads a few
# rows per order instead of every touch of every buyer; ``rebuild-reports`` empties it.
# ``click_ts``/``view_ts`` = 0 (1970-01-01) when there is none.
REPORT_ORDER_TOUCHES_TABLE = """
CREATE TABLE IF NOT EXISTS report_order_touches (
    advertiser String,
    order_id String,
    uid String,
    pts DateTime,
    value Float64,
    order_skus Array(String),
    click_ts DateTime,
    click_placement String,
    click_skus Array(String),
    click_reasons Array(String),
    view_ts DateTime,
    view_placement String,
    view_skus Array(String),
    view_reasons Array(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (advertiser, pts, order_id)
"""

# The same for reports that count verified orders only (those a store sent with its API token):
# their orders are described by the API's records alone, so their resolutions are kept apart
# (migration 11).
REPORT_VERIFIED_ORDER_TOUCHES_TABLE = REPORT_ORDER_TOUCHES_TABLE.replace(
    "report_order_touches", "report_verified_order_touches", 1)

# Filled by reports themselves (emptied by a rebuild).
REPORT_CACHES = ("report_order_touches", "report_verified_order_touches")


# --- Invalid traffic in reports (migration 6) ----------------------------------------------------
# Events flagged ``invalid = 1`` (bots, prefetches, link previewers, click floods: adserver/tracking/traffic.py)
# are not impressions, clicks, reach or touches. The ad tables count them apart, so reports can show
# the invalid share: ``invalid_impressions`` and ``invalid_clicks`` are sum states like the other
# counters (the tables are AggregatingMergeTree; rows written before the columns existed read as 0).
# The views of migration 4 (the SELECTs above) are dropped and created again with these SELECTs.
# Events inserted between the drop and the create are not aggregated: migrate with the writer
# stopped, or run ``rebuild-reports`` after.
REPORT_INVALID_COLUMNS = ("invalid_impressions", "invalid_clicks")

REPORT_ADS_HOURLY_V6_SELECT = """
SELECT
    advertiser,
    toStartOfHour(ts, 'UTC') AS hour,
    placement,
    sumState(toUInt64(event = 'impression' AND invalid = 0)) AS impressions,
    sumState(toUInt64(event = 'impression' AND addressable = 1 AND invalid = 0)) AS addressable_impressions,
    sumState(toUInt64(event = 'click' AND invalid = 0)) AS clicks,
    uniqHLL12StateIf(uid, event = 'impression' AND uid != '' AND invalid = 0) AS visitors,
    sumState(toUInt64(event = 'impression' AND invalid != 0)) AS invalid_impressions,
    sumState(toUInt64(event = 'click' AND invalid != 0)) AS invalid_clicks
FROM events
WHERE event IN ('impression', 'click')
GROUP BY advertiser, hour, placement
"""


def _valid_only(select: str) -> str:
    """The same SELECT over valid events only."""
    return select.replace("WHERE event", "WHERE invalid = 0 AND event", 1)


REPORT_ADS_DAILY_V6_SELECT = _daily(REPORT_ADS_HOURLY_V6_SELECT)

# The view of each report table as migration 6 creates it: ``(table, SELECT)``.
REPORT_VIEWS_V6 = (
    ("report_ads_hourly", REPORT_ADS_HOURLY_V6_SELECT),
    ("report_reasons_hourly", _valid_only(REPORT_REASONS_HOURLY_SELECT)),
    ("report_products_hourly", _valid_only(REPORT_PRODUCTS_HOURLY_SELECT)),
    ("report_ads_daily", REPORT_ADS_DAILY_V6_SELECT),
    ("report_reasons_daily", _valid_only(REPORT_REASONS_DAILY_SELECT)),
    ("report_products_daily", _valid_only(REPORT_PRODUCTS_DAILY_SELECT)),
    ("report_touchpoints", _valid_only(REPORT_TOUCHPOINTS_SELECT)),
    ("report_reach_hourly", _valid_only(REPORT_REACH_HOURLY_SELECT)),
)


# --- Spend in reports (migration 7) ------------------------------------------------------------
# What campaigns were really charged: the ``cost`` of valid impressions (CPM, reserved at serving)
# and clicks (CPC, charged once per impression) summed per hour, so reports show spend and compute
# cost and ROAS from it rather than from a price set by hand. ``spend`` is a sum state added to the
# ad tables (rows written before it existed read as 0: run ``rebuild-reports`` to fill the past).
# A small per-campaign table twins the ad tables with the campaign in place of the placement
# (a few campaigns per advertiser: at most hours x campaigns rows). The ad views are dropped and
# created again with the new SELECTs, like in migration 6: migrate with the writer stopped, or run
# ``rebuild-reports`` after.
REPORT_SPEND_COLUMN = "spend"

REPORT_ADS_HOURLY_V7_SELECT = REPORT_ADS_HOURLY_V6_SELECT.replace(
    "AS invalid_clicks\n", "AS invalid_clicks,\n    sumState(if(invalid = 0, cost, toFloat64(0))) AS spend\n", 1)
REPORT_ADS_DAILY_V7_SELECT = _daily(REPORT_ADS_HOURLY_V7_SELECT)

REPORT_CAMPAIGNS_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_campaigns_hourly (
    advertiser String,
    hour DateTime,
    campaign String,
    impressions AggregateFunction(sum, UInt64),
    addressable_impressions AggregateFunction(sum, UInt64),
    clicks AggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqHLL12, String),
    invalid_impressions AggregateFunction(sum, UInt64),
    invalid_clicks AggregateFunction(sum, UInt64),
    spend AggregateFunction(sum, Float64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, hour, campaign)
"""
REPORT_CAMPAIGNS_HOURLY_SELECT = REPORT_ADS_HOURLY_V7_SELECT.replace(
    "    placement,\n", "    campaign,\n", 1).replace("GROUP BY advertiser, hour, placement", "GROUP BY advertiser, hour, campaign")
REPORT_CAMPAIGNS_DAILY_TABLE = _daily(REPORT_CAMPAIGNS_HOURLY_TABLE)
REPORT_CAMPAIGNS_DAILY_SELECT = _daily(REPORT_CAMPAIGNS_HOURLY_SELECT)

# The view of each report table as migration 7 creates it.
_V7_SELECTS = {"report_ads_hourly": REPORT_ADS_HOURLY_V7_SELECT, "report_ads_daily": REPORT_ADS_DAILY_V7_SELECT}
REPORT_VIEWS_V7 = (
    *((table, _V7_SELECTS.get(table, select)) for table, select in REPORT_VIEWS_V6),
    ("report_campaigns_hourly", REPORT_CAMPAIGNS_HOURLY_SELECT),
    ("report_campaigns_daily", REPORT_CAMPAIGNS_DAILY_SELECT),
)


# --- Consent in reports (migration 14) -----------------------------------------------------------
# Valid impressions where GDPR applied (``events.consent`` 1 or 2) and those of them whose consent
# string allowed personalised ads (``consent`` = 1), so reports show the consent share beside the
# addressable share. Sum states added to the ad and campaign tables (rows aggregated before read as
# 0: run ``rebuild-reports`` to fill the past); their views are dropped and created again, as in
# migrations 6 and 7.
REPORT_CONSENT_COLUMNS = ("gdpr_impressions", "consented_impressions")
REPORT_CONSENT_TABLES = ("report_ads_hourly", "report_ads_daily", "report_campaigns_hourly", "report_campaigns_daily")
_CONSENT_STATES = (
    " AS spend,\n"
    "    sumState(toUInt64(event = 'impression' AND invalid = 0 AND consent != 0)) AS gdpr_impressions,\n"
    "    sumState(toUInt64(event = 'impression' AND invalid = 0 AND consent = 1)) AS consented_impressions\n"
)


def _with_consent(select: str) -> str:
    """The SELECT with the consent states after ``spend`` (the columns' order in the table)."""
    return select.replace(" AS spend\n", _CONSENT_STATES, 1)


REPORT_VIEWS_V14 = tuple((table, _with_consent(select) if table in REPORT_CONSENT_TABLES else select)
                         for table, select in REPORT_VIEWS_V7)

# --- Negative feedback in reports (migration 15) -------------------------------------------------
# "Not interested" answers (event ``hide``: adserver/serving/feedback.py) of valid traffic, counted
# per placement, campaign and product beside impressions and clicks, so reports show the negative
# feedback rate (hides / impressions) next to the CTR. A sum state appended to the ad, campaign and
# product tables (rows aggregated before read as 0: run ``rebuild-reports`` to fill the past); their
# views also read ``hide`` events, and are dropped and created again as in migrations 6, 7 and 14.
REPORT_HIDES_COLUMN = "hides"
REPORT_HIDES_TABLES = ("report_ads_hourly", "report_ads_daily", "report_campaigns_hourly", "report_campaigns_daily",
                       "report_products_hourly", "report_products_daily")


def _with_hides(select: str) -> str:
    """The SELECT reading ``hide`` events too, with the ``hides`` state last (the column's place)."""
    return (select.replace("event IN ('impression', 'click')", "event IN ('impression', 'click', 'hide')", 1)
            .replace("\nFROM events", ",\n    sumState(toUInt64(event = 'hide' AND invalid = 0)) AS hides\nFROM events", 1))


REPORT_VIEWS_V15 = tuple((table, _with_hides(select) if table in REPORT_HIDES_TABLES else select)
                         for table, select in REPORT_VIEWS_V14)



def recreate_views(views: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Statements that drop each ``<table>_mv`` view and create it again with its new SELECT."""
    statements: list[str] = []
    for table, select in views:
        statements += [f"DROP TABLE IF EXISTS {table}_mv",
                       f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS {select}"]
    return tuple(statements)
