"""ClickHouse schema: named DDL constants and the ordered, idempotent migrations that apply them.

Every statement runs on ClickHouse 18.16 (Debian's server) and on current ClickHouse (chdb): no
TTL clause (old partitions are dropped instead), no LowCardinality, no DateTime64, the explicit
``MergeTree() PARTITION BY ... ORDER BY ...`` form. Each statement is ``IF NOT EXISTS`` so a
migration interrupted half-way can simply run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.clickhouse import ClickHouse

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version
"""

# Raw events: the source of truth for reports and training. Impressions and clicks are events too.
# ``skus``/``reasons`` hold every product of a hit (a purchase of several products, the products of
# an ad unit); ``sku`` is the first of them, for simple per-product filters. ``stream_id`` is the
# Redis stream entry the row came from, so a writer recovering from a crash can tell what is stored.
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    ts DateTime,
    date Date DEFAULT toDate(ts),
    advertiser String,
    event String,
    uid String,
    sku String,
    skus Array(String),
    reasons Array(String),
    order_id String,
    value Float64,
    currency String,
    placement String,
    impression_id String,
    size String,
    addressable UInt8,
    device String,
    url String,
    ref String,
    stream_id String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (advertiser, event, ts)
"""

EVENTS_COLUMNS = (
    "ts", "advertiser", "event", "uid", "sku", "skus", "reasons", "order_id", "value", "currency",
    "placement", "impression_id", "size", "addressable", "device", "url", "ref", "stream_id",
    "campaign", "cost", "pctr", "interest_age", "interest_views", "invalid", "invalid_reason",
)

# Invalid hits are kept with the raw request and every reason found, for integrators to debug.
BAD_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS bad_events (
    ts DateTime,
    date Date DEFAULT toDate(ts),
    advertiser String,
    event String,
    uid String,
    reason String,
    errors Array(String),
    raw String,
    stream_id String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (advertiser, ts)
"""

BAD_EVENTS_COLUMNS = ("ts", "advertiser", "event", "uid", "reason", "errors", "raw", "stream_id")

# The catalog: one row per product version; the newest version wins (read with FINAL / argMax).
# A product removed from a feed gets a new version with ``deleted = 1``.
PRODUCTS_TABLE = """
CREATE TABLE IF NOT EXISTS products (
    advertiser String,
    sku String,
    title String,
    description String,
    link String,
    image_link String,
    price Float64,
    sale_price Float64,
    currency String,
    availability String,
    product_type String,
    brand String,
    item_group_id String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (advertiser, sku)
"""

PRODUCTS_COLUMNS = (
    "advertiser", "sku", "title", "description", "link", "image_link", "price", "sale_price",
    "currency", "availability", "product_type", "brand", "item_group_id", "deleted", "version",
    "updated_at",
)

ADVERTISERS_TABLE = """
CREATE TABLE IF NOT EXISTS advertisers (
    id String,
    name String,
    currency String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

ADVERTISERS_COLUMNS = ("id", "name", "currency", "deleted", "version", "updated_at")

# Publishers' ad slots. ``advertisers`` lists whose non-personalised ads the slot shows when the
# visitor has no usable interest (house ads); empty means any advertiser.
PLACEMENTS_TABLE = """
CREATE TABLE IF NOT EXISTS placements (
    id String,
    site String,
    sizes Array(String),
    advertisers Array(String),
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

PLACEMENTS_COLUMNS = ("id", "site", "sizes", "advertisers", "deleted", "version", "updated_at")


# API tokens of advertisers (feed uploads, reports). Only a SHA-256 of the token is stored: tokens
# are 256-bit random strings, so a fast hash is enough (a slow KDF is for human passwords).
API_TOKENS_TABLE = """
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash String,
    advertiser String,
    label String,
    revoked UInt8,
    version UInt64,
    created_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash
"""

API_TOKENS_COLUMNS = ("token_hash", "advertiser", "label", "revoked", "version", "created_at")


# --- Reports -------------------------------------------------------------------------------------
# Raw ``events`` stay the source of truth; reports read the tables below, which materialized views
# keep up to date as events are inserted (``python -m adserver rebuild-reports`` refills them from
# ``events``). Everything is aggregated per UTC hour; reports convert hours to the advertiser's
# time zone at query time. Views must never fail (a failing view fails the insert into ``events``),
# so they only use total functions: out-of-range array reads give '' instead of an error. States
# are written with ``-StateIf`` (not ``-IfState``, whose type 18.16 cannot store in the column).

# Each advertiser's time zone (IANA name), for day and hour breakdowns. Added by ``AddColumn``,
# which checks ``system.columns`` first: ClickHouse 18.16 has no ``ADD COLUMN IF NOT EXISTS``.
ADVERTISERS_TIMEZONE_COLUMN = "timezone"

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

# Marketer accounts: a user signs in with an e-mail and a password (scrypt hash, see
# adserver/console/accounts.py) and sees the advertisers they are a member of.
USERS_TABLE = """
CREATE TABLE IF NOT EXISTS users (
    email String,
    password_hash String,
    disabled UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY email
"""

USERS_COLUMNS = ("email", "password_hash", "disabled", "version", "updated_at")

MEMBERSHIPS_TABLE = """
CREATE TABLE IF NOT EXISTS memberships (
    email String,
    advertiser String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (email, advertiser)
"""

MEMBERSHIPS_COLUMNS = ("email", "advertiser", "deleted", "version", "updated_at")

# What an advertiser pays: ``model`` 'cpc' (per click) or 'cpm' (per 1000 impressions), in the
# advertiser's currency; '' means no price (reports then show no cost and no ROAS).
PRICES_TABLE = """
CREATE TABLE IF NOT EXISTS advertiser_prices (
    advertiser String,
    model String,
    amount Float64,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY advertiser
"""

PRICES_COLUMNS = ("advertiser", "model", "amount", "version", "updated_at")

# --- Invalid traffic in reports (migration 6) ----------------------------------------------------
# Events flagged ``invalid = 1`` (bots, prefetches, link previewers, click floods: adserver/tracking/traffic.py)
# are not impressions, clicks, reach or touches. The ad tables count them apart, so reports can show
# the invalid share: ``invalid_impressions`` and ``invalid_clicks`` are sum states like the other
# counters (the tables are AggregatingMergeTree; rows written before the columns existed read as 0).
# The views of migration 4 (the SELECTs above) are dropped and created again with these SELECTs:
# ClickHouse 18.16 cannot alter a view's query. Events inserted between the drop and the create
# are not aggregated: migrate with the writer stopped, or run ``rebuild-reports`` after.
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

# The tables the report views fill, with the SELECT each view runs on inserted events: a rebuild
# runs the same SELECT over the whole ``events`` table (adserver/console/maintenance.py), and
# inserts by position, so each SELECT lists the columns in the table's order. Each view is named
# ``<table>_mv``.
REPORT_VIEWS = (
    ("report_ads_hourly", REPORT_ADS_HOURLY_V6_SELECT),
    ("report_reasons_hourly", _valid_only(REPORT_REASONS_HOURLY_SELECT)),
    ("report_products_hourly", _valid_only(REPORT_PRODUCTS_HOURLY_SELECT)),
    ("report_ads_daily", REPORT_ADS_DAILY_V6_SELECT),
    ("report_reasons_daily", _valid_only(REPORT_REASONS_DAILY_SELECT)),
    ("report_products_daily", _valid_only(REPORT_PRODUCTS_DAILY_SELECT)),
    ("report_touchpoints", _valid_only(REPORT_TOUCHPOINTS_SELECT)),
    ("report_reach_hourly", _valid_only(REPORT_REACH_HOURLY_SELECT)),
)


def _recreate_views() -> tuple[str, ...]:
    statements: list[str] = []
    for table, select in REPORT_VIEWS:
        statements += [f"DROP TABLE IF EXISTS {table}_mv",
                       f"CREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS {select}"]
    return tuple(statements)
# Filled by reports themselves (emptied by a rebuild).
REPORT_CACHES = ("report_order_touches",)


# --- Campaigns and the auction -----------------------------------------------------------------
# A campaign is what competes for a slot: its price (CPC or CPM, in the exchange currency of the
# settings), daily budget, dates, audience rules, frequency caps and look. Versioned like the other
# registries: the newest version wins, a removed campaign gets ``deleted = 1``.
CAMPAIGNS_TABLE = """
CREATE TABLE IF NOT EXISTS campaigns (
    id String,
    advertiser String,
    name String,
    status String,
    start_date Date,
    end_date Date,
    pricing String,
    price Float64,
    daily_budget Float64,
    audience_days UInt16,
    exclude_buyers_days UInt16,
    cap_per_day UInt16,
    min_gap_seconds UInt32,
    logo_url String,
    brand_color String,
    text_color String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

CAMPAIGNS_COLUMNS = (
    "id", "advertiser", "name", "status", "start_date", "end_date", "pricing", "price", "daily_budget",
    "audience_days", "exclude_buyers_days", "cap_per_day", "min_gap_seconds", "logo_url", "brand_color",
    "text_color", "deleted", "version", "updated_at",
)

# Columns added to ``events`` and ``placements`` by migration 5 (order of the writer's rows):
# the campaign that won, what it was charged, the predicted CTR and the interest the decision saw
# (the CTR model trains on them), and the invalid-traffic verdict (bots, prefetches, click floods).
EVENTS_V5_COLUMNS = (
    ("campaign", "String DEFAULT ''"),
    ("cost", "Float64 DEFAULT 0"),
    ("pctr", "Float64 DEFAULT 0"),
    ("interest_age", "UInt32 DEFAULT 0"),
    ("interest_views", "UInt16 DEFAULT 0"),
    ("invalid", "UInt8 DEFAULT 0"),
    ("invalid_reason", "String DEFAULT ''"),
)
PLACEMENTS_FLOOR_COLUMN = "floor"


@dataclass(frozen=True)
class AddColumn:
    """``ALTER TABLE ... ADD COLUMN`` applied only if the column is missing (18.16 has no IF NOT EXISTS)."""

    table: str
    column: str
    definition: str

    @property
    def sql(self) -> str:
        return f"ALTER TABLE {self.table} ADD COLUMN {self.column} {self.definition}"

    def apply(self, ch: ClickHouse) -> None:
        rows = ch.execute(
            "SELECT count() FROM system.columns WHERE database = currentDatabase() "
            "AND table = %(table)s AND name = %(column)s",
            {"table": self.table, "column": self.column},
        )
        if not rows[0][0]:
            ch.execute(self.sql)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str | AddColumn, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events and bad_events", (EVENTS_TABLE, BAD_EVENTS_TABLE)),
    Migration(2, "catalog, advertisers, placements", (PRODUCTS_TABLE, ADVERTISERS_TABLE, PLACEMENTS_TABLE)),
    Migration(3, "api tokens", (API_TOKENS_TABLE,)),
    Migration(4, "reports: advertiser time zone, pre-aggregated tables and views, accounts, prices", (
        AddColumn("advertisers", ADVERTISERS_TIMEZONE_COLUMN, "String DEFAULT 'UTC'"),
        REPORT_ADS_HOURLY_TABLE, REPORT_ADS_HOURLY_VIEW,
        REPORT_REASONS_HOURLY_TABLE, REPORT_REASONS_HOURLY_VIEW,
        REPORT_PRODUCTS_HOURLY_TABLE, REPORT_PRODUCTS_HOURLY_VIEW,
        REPORT_ADS_DAILY_TABLE, REPORT_ADS_DAILY_VIEW,
        REPORT_REASONS_DAILY_TABLE, REPORT_REASONS_DAILY_VIEW,
        REPORT_PRODUCTS_DAILY_TABLE, REPORT_PRODUCTS_DAILY_VIEW,
        REPORT_TOUCHPOINTS_TABLE, REPORT_TOUCHPOINTS_VIEW,
        REPORT_REACH_HOURLY_TABLE, REPORT_REACH_HOURLY_VIEW, REPORT_ORDER_TOUCHES_TABLE,
        USERS_TABLE, MEMBERSHIPS_TABLE, PRICES_TABLE,
    )),
    Migration(5, "campaigns, placement floors, auction and invalid-traffic columns on events", (
        CAMPAIGNS_TABLE,
        AddColumn("placements", PLACEMENTS_FLOOR_COLUMN, "Float64 DEFAULT 0"),
        *(AddColumn("events", name, definition) for name, definition in EVENTS_V5_COLUMNS),
    )),
    Migration(6, "reports: valid traffic only, invalid impressions and clicks apart", (
        *(AddColumn(table, column, "AggregateFunction(sum, UInt64)")
          for table in ("report_ads_hourly", "report_ads_daily") for column in REPORT_INVALID_COLUMNS),
        *_recreate_views(),
    )),
)

TABLES = ("events", "bad_events", "products", "advertisers", "placements", "api_tokens",
          "report_ads_hourly", "report_reasons_hourly", "report_products_hourly", "report_touchpoints",
          "report_ads_daily", "report_reasons_daily", "report_products_daily",
          "users", "memberships", "advertiser_prices", "report_reach_hourly",
          "report_order_touches", "campaigns")


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

REPORT_VIEWS = (
    *((table, {"report_ads_hourly": REPORT_ADS_HOURLY_V7_SELECT, "report_ads_daily": REPORT_ADS_DAILY_V7_SELECT}
       .get(table, select)) for table, select in REPORT_VIEWS),
    ("report_campaigns_hourly", REPORT_CAMPAIGNS_HOURLY_SELECT),
    ("report_campaigns_daily", REPORT_CAMPAIGNS_DAILY_SELECT),
)

MIGRATIONS = (*MIGRATIONS, Migration(7, "reports: spend charged, per campaign", (
    *(AddColumn(table, REPORT_SPEND_COLUMN, "AggregateFunction(sum, Float64)")
      for table in ("report_ads_hourly", "report_ads_daily")),
    REPORT_CAMPAIGNS_HOURLY_TABLE, REPORT_CAMPAIGNS_DAILY_TABLE,
    *_recreate_views(),
)))

TABLES = (*TABLES, "report_campaigns_hourly", "report_campaigns_daily")


def applied_versions(ch: ClickHouse) -> set[int]:
    ch.execute(MIGRATIONS_TABLE)
    return {row[0] for row in ch.execute("SELECT version FROM schema_migrations")}


def migrate(ch: ClickHouse) -> list[Migration]:
    """Apply the migrations not applied yet, in order; returns those it applied."""
    done = applied_versions(ch)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        log.info("applying migration %d: %s", migration.version, migration.name)
        for statement in migration.statements:
            if isinstance(statement, AddColumn):
                statement.apply(ch)
            else:
                ch.execute(statement)
        ch.insert(
            "schema_migrations",
            ("version", "name", "applied_at"),
            [(migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None))],
        )
        applied.append(migration)
    return applied
