"""The report breakdowns' tables per time grain (migrations 16 and 17): one hourly and one daily table
for placements, campaigns, reasons and products, the view that fills each, and how the tables of
migrations 4-15 are copied into them. The older report DDL stays in ``tracker.schema.reports``.
"""

from __future__ import annotations

from tracker.schema.reports import (
    REPORT_CONSENT_COLUMNS,
    REPORT_HIDES_COLUMN,
    REPORT_HIDES_TABLES,
    REPORT_INVALID_COLUMNS,
    REPORT_SPEND_COLUMN,
    REPORT_VIEWS_V15,
)

# --- One table per time grain (migration 16) -----------------------------------------------------
# Every insert into ``events`` writes a new part into each view's table, and that costs ClickHouse
# about the same per part whatever the rows (``scripts/bench_insert.py``): the eight tables above
# (placements, campaigns, reasons and products, each per hour and per day) made the writer's inserts
# cost about twice what they cost with one table per grain. So the four breakdowns share one hourly
# and one daily table, their rows told apart by ``dim``: ``placement`` and ``campaign`` rows (``key``
# = the placement, the campaign) count ads, ``reason`` rows (``key`` = the reason, ``sub`` = the
# placement) and ``sku`` rows (``key`` = the product) count product slots. Sorted by ``dim`` first, a
# breakdown still reads a contiguous range, as it did in its own table. Each row holds every state;
# those a breakdown does not keep stay empty (merged, 0): ``impression_share`` on ad rows, spend,
# consent and invalid counts on product rows, visitors on product rows, hides on reason rows.
REPORT_DIMS = ("placement", "campaign", "reason", "sku")

REPORT_HOURLY_TABLE = """
CREATE TABLE IF NOT EXISTS report_hourly (
    advertiser String,
    hour DateTime,
    dim String,
    key String,
    sub String,
    impressions AggregateFunction(sum, UInt64),
    impression_share AggregateFunction(sum, Float64),
    addressable_impressions AggregateFunction(sum, UInt64),
    clicks AggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqHLL12, String),
    invalid_impressions AggregateFunction(sum, UInt64),
    invalid_clicks AggregateFunction(sum, UInt64),
    spend AggregateFunction(sum, Float64),
    gdpr_impressions AggregateFunction(sum, UInt64),
    consented_impressions AggregateFunction(sum, UInt64),
    hides AggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (advertiser, dim, hour, key, sub)
"""

# Each event gives its rows through one ARRAY JOIN over ``n``: -2 its placement row, -1 its campaign
# row, 1..k its k product slots' reason rows and k+1..2k their sku rows (built without lambdas, which
# cannot read the row's columns on ClickHouse 18.16). Ad rows count every event, invalid ones apart;
# product rows are of valid events only, and reason rows leave out hides (as migrations 6 and 15
# left them). Out-of-range reads (a negative ``n`` on an ad row, fewer reasons than skus) give ''.
REPORT_HOURLY_SELECT = """
SELECT
    advertiser,
    toStartOfHour(ts, 'UTC') AS hour,
    multiIf(n = -2, 'placement', n = -1, 'campaign', n <= length(skus), 'reason', 'sku') AS dim,
    multiIf(n = -2, placement, n = -1, campaign, n <= length(skus), reasons[n], skus[n - length(skus)]) AS key,
    if(n > 0 AND n <= length(skus), placement, '') AS sub,
    sumState(toUInt64(event = 'impression' AND invalid = 0)) AS impressions,
    sumState(if(event = 'impression' AND n > 0, 1 / length(skus), 0)) AS impression_share,
    sumState(toUInt64(event = 'impression' AND addressable = 1 AND invalid = 0)) AS addressable_impressions,
    sumState(toUInt64(event = 'click' AND invalid = 0)) AS clicks,
    uniqHLL12StateIf(uid, event = 'impression' AND uid != '' AND invalid = 0 AND n <= length(skus)) AS visitors,
    sumState(toUInt64(event = 'impression' AND invalid != 0)) AS invalid_impressions,
    sumState(toUInt64(event = 'click' AND invalid != 0)) AS invalid_clicks,
    sumState(if(invalid = 0 AND n < 0, cost, toFloat64(0))) AS spend,
    sumState(toUInt64(event = 'impression' AND invalid = 0 AND consent != 0 AND n < 0)) AS gdpr_impressions,
    sumState(toUInt64(event = 'impression' AND invalid = 0 AND consent = 1 AND n < 0)) AS consented_impressions,
    sumState(toUInt64(event = 'hide' AND invalid = 0)) AS hides
FROM events
ARRAY JOIN arrayConcat([-2, -1], arrayEnumerate(arrayConcat(skus, skus))) AS n
WHERE event IN ('impression', 'click', 'hide') AND (n < 0 OR (invalid = 0 AND (n > length(skus) OR event != 'hide')))
GROUP BY advertiser, hour, dim, key, sub
"""

REPORT_DAILY_TABLE = (REPORT_HOURLY_TABLE.replace("report_hourly", "report_daily").replace("hour DateTime", "day Date")
                      .replace("toYYYYMM(hour)", "toYYYYMM(day)").replace("dim, hour, key", "dim, day, key"))
REPORT_DAILY_SELECT = (REPORT_HOURLY_SELECT.replace("toStartOfHour(ts, 'UTC') AS hour", "toDate(ts, 'UTC') AS day")
                       .replace("GROUP BY advertiser, hour,", "GROUP BY advertiser, day,"))


def _moved(table: str, time: str) -> tuple[str, str]:
    """The statement that copies one table of migrations 4-15 into its grain's table: each state as
    it is (same types), the states it lacked left empty."""
    dim = {"ads": "placement", "campaigns": "campaign", "reasons": "reason", "products": "sku"}[table.split("_")[1]]
    key, sub = {"placement": ("placement", "''"), "campaign": ("campaign", "''"), "reason": ("reason", "placement"),
                "sku": ("sku", "''")}[dim]
    states = [c for c in ("impressions", "impression_share", "addressable_impressions", "clicks", "visitors",
                          *REPORT_INVALID_COLUMNS, REPORT_SPEND_COLUMN, *REPORT_CONSENT_COLUMNS, REPORT_HIDES_COLUMN)
              if _had(table, c)]
    target = "report_hourly" if time == "hour" else "report_daily"
    return table, (f"INSERT INTO {target} (advertiser, {time}, dim, key, sub, {', '.join(states)}) "
                   f"SELECT advertiser, {time}, '{dim}', {key}, {sub}, {', '.join(states)} FROM {table}")


def _had(table: str, column: str) -> bool:
    """Whether ``column`` is a state of ``table`` as migrations 4-15 left it."""
    ads = table.startswith(("report_ads_", "report_campaigns_"))
    if column == "impression_share":
        return not ads
    if column == "visitors":
        return not table.startswith("report_products_")
    if column in (*REPORT_INVALID_COLUMNS, REPORT_SPEND_COLUMN, *REPORT_CONSENT_COLUMNS):
        return ads
    if column == REPORT_HIDES_COLUMN:
        return table in REPORT_HIDES_TABLES
    return True


REPORT_GRAIN_TABLES = {"hour": ("report_ads_hourly", "report_campaigns_hourly", "report_reasons_hourly",
                                "report_products_hourly"),
                       "day": ("report_ads_daily", "report_campaigns_daily", "report_reasons_daily",
                               "report_products_daily")}
REPORT_MOVES = {time: tuple(_moved(table, time) for table in tables) for time, tables in REPORT_GRAIN_TABLES.items()}

REPORT_VIEWS_V16 = (
    ("report_hourly", REPORT_HOURLY_SELECT),
    ("report_daily", REPORT_DAILY_SELECT),
    *((table, select) for table, select in REPORT_VIEWS_V15 if table in ("report_touchpoints", "report_reach_hourly")),
)


# --- Smaller granules for the grain tables (migration 17) -----------------------------------------
# A breakdown reads whole granules, and in the grain tables a dimension's rows share their granules
# with the other dimensions' rows and their large HLL states: with 8,192-row granules a placement
# report read six times the rows it needed (docs/benchmarks.md, "Seventh round"). A table's
# granularity cannot be altered, so migration 17 copies ``report_hourly`` and ``report_daily`` into
# ``report_hours`` and ``report_days``, the same tables with 1,024-row granules (as
# ``report_touchpoints`` has), and drops them.
def _granules(create: str, old: str, new: str) -> str:
    return create.replace(f"EXISTS {old} (", f"EXISTS {new} (", 1).rstrip() + "\nSETTINGS index_granularity = 1024\n"


REPORT_HOURS_TABLE = _granules(REPORT_HOURLY_TABLE, "report_hourly", "report_hours")
REPORT_DAYS_TABLE = _granules(REPORT_DAILY_TABLE, "report_daily", "report_days")
REPORT_GRAIN_RENAMES = {"report_hourly": "report_hours", "report_daily": "report_days"}

REPORT_VIEWS_V17 = tuple((REPORT_GRAIN_RENAMES.get(table, table), select) for table, select in REPORT_VIEWS_V16)

# The tables the report views fill, with the SELECT each view runs on inserted events: a rebuild
# runs the same SELECT over the whole ``events`` table (adserver/console/maintenance.py), and
# inserts by position, so each SELECT lists the columns in the table's order. Each view is named
# ``<table>_mv``.
REPORT_VIEWS = REPORT_VIEWS_V17
