"""The numbered migrations that create the schema, and ``migrate`` that applies the missing ones.

A database records every migration it applied in ``schema_migrations``; a migration is never
edited once released (databases in use have run it), and a change of schema is a new migration
at the end of ``MIGRATIONS``. Each statement is idempotent (``IF NOT EXISTS``, ``AddColumn``), so
a migration interrupted half-way can simply run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.clickhouse import ClickHouse
from tracker.schema.accounts import (
    API_TOKENS_TABLE,
    MEMBERSHIPS_TABLE,
    PRICES_TABLE,
    SESSION_GENERATIONS_TABLE,
    USERS_TABLE,
)
from tracker.schema.campaigns import CAMPAIGNS_HIDE_DAYS_COLUMN, CAMPAIGNS_TABLE
from tracker.schema.catalog import (
    ADVERTISERS_DOMAINS_COLUMN,
    ADVERTISERS_TABLE,
    ADVERTISERS_TIMEZONE_COLUMN,
    FEED_SOURCES_TABLE,
    PLACEMENTS_FLOOR_COLUMN,
    PLACEMENTS_TABLE,
    PRODUCTS_TABLE,
)
from tracker.schema.events import (
    BAD_EVENTS_TABLE,
    EVENTS_CONSENT_COLUMN,
    EVENTS_TABLE,
    EVENTS_V5_COLUMNS,
    EVENTS_VERIFIED_COLUMN,
)
from tracker.schema.images import IMAGE_VARIANTS_TABLE, PRODUCT_IMAGES_TABLE
from tracker.schema.reports import (
    REPORT_ADS_DAILY_TABLE,
    REPORT_ADS_DAILY_VIEW,
    REPORT_ADS_HOURLY_TABLE,
    REPORT_ADS_HOURLY_VIEW,
    REPORT_CAMPAIGNS_DAILY_TABLE,
    REPORT_CAMPAIGNS_HOURLY_TABLE,
    REPORT_CONSENT_COLUMNS,
    REPORT_CONSENT_TABLES,
    REPORT_HIDES_COLUMN,
    REPORT_HIDES_TABLES,
    REPORT_INVALID_COLUMNS,
    REPORT_ORDER_TOUCHES_TABLE,
    REPORT_PRODUCTS_DAILY_TABLE,
    REPORT_PRODUCTS_DAILY_VIEW,
    REPORT_PRODUCTS_HOURLY_TABLE,
    REPORT_PRODUCTS_HOURLY_VIEW,
    REPORT_REACH_HOURLY_TABLE,
    REPORT_REACH_HOURLY_VIEW,
    REPORT_REASONS_DAILY_TABLE,
    REPORT_REASONS_DAILY_VIEW,
    REPORT_REASONS_HOURLY_TABLE,
    REPORT_REASONS_HOURLY_VIEW,
    REPORT_SPEND_COLUMN,
    REPORT_TOUCHPOINTS_TABLE,
    REPORT_TOUCHPOINTS_VIEW,
    REPORT_VERIFIED_ORDER_TOUCHES_TABLE,
    REPORT_VIEWS_V6,
    REPORT_VIEWS_V7,
    REPORT_VIEWS_V14,
    REPORT_VIEWS_V15,
    recreate_views,
)

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version
"""


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
        *recreate_views(REPORT_VIEWS_V6),
    )),
    Migration(7, "reports: spend charged, per campaign", (
        *(AddColumn(table, REPORT_SPEND_COLUMN, "AggregateFunction(sum, Float64)")
          for table in ("report_ads_hourly", "report_ads_daily")),
        REPORT_CAMPAIGNS_HOURLY_TABLE, REPORT_CAMPAIGNS_DAILY_TABLE,
        *recreate_views(REPORT_VIEWS_V7),
    )),
    Migration(8, "marketers' session generations (sign-out and a new password end sessions)", (
        SESSION_GENERATIONS_TABLE,
    )),
    Migration(10, "advertisers' landing domains", (
        AddColumn("advertisers", ADVERTISERS_DOMAINS_COLUMN, "Array(String) DEFAULT []"),
    )),
    Migration(11, "verified conversions: purchases sent with the API token, their kept attributions", (
        AddColumn("events", *EVENTS_VERIFIED_COLUMN),
        REPORT_VERIFIED_ORDER_TOUCHES_TABLE,
    )),
    Migration(12, "product images resized for ad slots: variants and each feed image's variants", (
        IMAGE_VARIANTS_TABLE, PRODUCT_IMAGES_TABLE,
    )),
    Migration(13, "feed sources: validators of the feed copy last imported from each URL", (FEED_SOURCES_TABLE,)),
    Migration(14, "IAB TCF consent of each event; reports: impressions under GDPR and with consent", (
        AddColumn("events", *EVENTS_CONSENT_COLUMN),
        *(AddColumn(table, column, "AggregateFunction(sum, UInt64)")
          for table in REPORT_CONSENT_TABLES for column in REPORT_CONSENT_COLUMNS),
        *recreate_views(REPORT_VIEWS_V14),
    )),
    Migration(15, "not interested: campaigns' hide days; reports: hides per placement, campaign and product", (
        AddColumn("campaigns", *CAMPAIGNS_HIDE_DAYS_COLUMN),
        *(AddColumn(table, REPORT_HIDES_COLUMN, "AggregateFunction(sum, UInt64)") for table in REPORT_HIDES_TABLES),
        *recreate_views(REPORT_VIEWS_V15),
    )),
)

# Every table the migrations create (tests empty them all between tests).
TABLES = ("events", "bad_events", "products", "advertisers", "placements", "api_tokens",
          "report_ads_hourly", "report_reasons_hourly", "report_products_hourly", "report_touchpoints",
          "report_ads_daily", "report_reasons_daily", "report_products_daily",
          "users", "memberships", "advertiser_prices", "report_reach_hourly",
          "report_order_touches", "campaigns", "report_campaigns_hourly", "report_campaigns_daily",
          "report_verified_order_touches", "session_generations", "image_variants", "product_images",
          "feed_sources")


def applied_versions(ch: ClickHouse) -> set[int]:
    """Versions of the migrations this database has applied (creating the record table if needed)."""
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
