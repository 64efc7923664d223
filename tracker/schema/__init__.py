"""ClickHouse schema: named DDL constants beside their domain, and the migrations that apply them.

Every statement runs on ClickHouse 18.16 (Debian's server) and on current ClickHouse (chdb): no
TTL clause (old partitions are dropped instead), no LowCardinality, no DateTime64, the explicit
``MergeTree() PARTITION BY ... ORDER BY ...`` form. Each statement is ``IF NOT EXISTS`` so a
migration interrupted half-way can simply run again.

- ``events``: the ``events`` and ``bad_events`` tables the batch writer fills;
- ``reports``: aggregate tables and the materialized views that fill them from ``events``;
- ``catalog``: products, advertisers, placements;
- ``campaigns``: what competes in the auction;
- ``accounts``: API tokens, marketer accounts and memberships, advertiser prices;
- ``migrations``: the numbered migrations, ``migrate`` and ``TABLES``.

Importers use this package (``from tracker import schema``; ``schema.EVENTS_COLUMNS``,
``schema.migrate``): which module holds a name is this package's own business.
"""

from __future__ import annotations

from tracker.schema.accounts import (
    API_TOKENS_COLUMNS,
    API_TOKENS_TABLE,
    MEMBERSHIPS_COLUMNS,
    MEMBERSHIPS_TABLE,
    PRICES_COLUMNS,
    PRICES_TABLE,
    USERS_COLUMNS,
    USERS_TABLE,
)
from tracker.schema.campaigns import (
    CAMPAIGNS_COLUMNS,
    CAMPAIGNS_TABLE,
)
from tracker.schema.catalog import (
    ADVERTISERS_COLUMNS,
    ADVERTISERS_TABLE,
    ADVERTISERS_TIMEZONE_COLUMN,
    PLACEMENTS_COLUMNS,
    PLACEMENTS_FLOOR_COLUMN,
    PLACEMENTS_TABLE,
    PRODUCTS_COLUMNS,
    PRODUCTS_TABLE,
)
from tracker.schema.events import (
    BAD_EVENTS_COLUMNS,
    BAD_EVENTS_TABLE,
    EVENTS_COLUMNS,
    EVENTS_TABLE,
    EVENTS_V5_COLUMNS,
)
from tracker.schema.migrations import (
    MIGRATIONS,
    MIGRATIONS_TABLE,
    TABLES,
    AddColumn,
    Migration,
    applied_versions,
    migrate,
)
from tracker.schema.reports import (
    REPORT_ADS_DAILY_SELECT,
    REPORT_ADS_DAILY_TABLE,
    REPORT_ADS_DAILY_V6_SELECT,
    REPORT_ADS_DAILY_V7_SELECT,
    REPORT_ADS_DAILY_VIEW,
    REPORT_ADS_HOURLY_SELECT,
    REPORT_ADS_HOURLY_TABLE,
    REPORT_ADS_HOURLY_V6_SELECT,
    REPORT_ADS_HOURLY_V7_SELECT,
    REPORT_ADS_HOURLY_VIEW,
    REPORT_CACHES,
    REPORT_CAMPAIGNS_DAILY_SELECT,
    REPORT_CAMPAIGNS_DAILY_TABLE,
    REPORT_CAMPAIGNS_HOURLY_SELECT,
    REPORT_CAMPAIGNS_HOURLY_TABLE,
    REPORT_INVALID_COLUMNS,
    REPORT_ORDER_TOUCHES_TABLE,
    REPORT_PRODUCTS_DAILY_SELECT,
    REPORT_PRODUCTS_DAILY_TABLE,
    REPORT_PRODUCTS_DAILY_VIEW,
    REPORT_PRODUCTS_HOURLY_SELECT,
    REPORT_PRODUCTS_HOURLY_TABLE,
    REPORT_PRODUCTS_HOURLY_VIEW,
    REPORT_REACH_HOURLY_SELECT,
    REPORT_REACH_HOURLY_TABLE,
    REPORT_REACH_HOURLY_VIEW,
    REPORT_REASONS_DAILY_SELECT,
    REPORT_REASONS_DAILY_TABLE,
    REPORT_REASONS_DAILY_VIEW,
    REPORT_REASONS_HOURLY_SELECT,
    REPORT_REASONS_HOURLY_TABLE,
    REPORT_REASONS_HOURLY_VIEW,
    REPORT_SPEND_COLUMN,
    REPORT_TOUCHPOINTS_SELECT,
    REPORT_TOUCHPOINTS_TABLE,
    REPORT_TOUCHPOINTS_VIEW,
    REPORT_VIEWS,
    REPORT_VIEWS_V6,
)

__all__ = [
    "ADVERTISERS_COLUMNS",
    "ADVERTISERS_TABLE",
    "ADVERTISERS_TIMEZONE_COLUMN",
    "API_TOKENS_COLUMNS",
    "API_TOKENS_TABLE",
    "AddColumn",
    "BAD_EVENTS_COLUMNS",
    "BAD_EVENTS_TABLE",
    "CAMPAIGNS_COLUMNS",
    "CAMPAIGNS_TABLE",
    "EVENTS_COLUMNS",
    "EVENTS_TABLE",
    "EVENTS_V5_COLUMNS",
    "MEMBERSHIPS_COLUMNS",
    "MEMBERSHIPS_TABLE",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "Migration",
    "PLACEMENTS_COLUMNS",
    "PLACEMENTS_FLOOR_COLUMN",
    "PLACEMENTS_TABLE",
    "PRICES_COLUMNS",
    "PRICES_TABLE",
    "PRODUCTS_COLUMNS",
    "PRODUCTS_TABLE",
    "REPORT_ADS_DAILY_SELECT",
    "REPORT_ADS_DAILY_TABLE",
    "REPORT_ADS_DAILY_V6_SELECT",
    "REPORT_ADS_DAILY_V7_SELECT",
    "REPORT_ADS_DAILY_VIEW",
    "REPORT_ADS_HOURLY_SELECT",
    "REPORT_ADS_HOURLY_TABLE",
    "REPORT_ADS_HOURLY_V6_SELECT",
    "REPORT_ADS_HOURLY_V7_SELECT",
    "REPORT_ADS_HOURLY_VIEW",
    "REPORT_CACHES",
    "REPORT_CAMPAIGNS_DAILY_SELECT",
    "REPORT_CAMPAIGNS_DAILY_TABLE",
    "REPORT_CAMPAIGNS_HOURLY_SELECT",
    "REPORT_CAMPAIGNS_HOURLY_TABLE",
    "REPORT_INVALID_COLUMNS",
    "REPORT_ORDER_TOUCHES_TABLE",
    "REPORT_PRODUCTS_DAILY_SELECT",
    "REPORT_PRODUCTS_DAILY_TABLE",
    "REPORT_PRODUCTS_DAILY_VIEW",
    "REPORT_PRODUCTS_HOURLY_SELECT",
    "REPORT_PRODUCTS_HOURLY_TABLE",
    "REPORT_PRODUCTS_HOURLY_VIEW",
    "REPORT_REACH_HOURLY_SELECT",
    "REPORT_REACH_HOURLY_TABLE",
    "REPORT_REACH_HOURLY_VIEW",
    "REPORT_REASONS_DAILY_SELECT",
    "REPORT_REASONS_DAILY_TABLE",
    "REPORT_REASONS_DAILY_VIEW",
    "REPORT_REASONS_HOURLY_SELECT",
    "REPORT_REASONS_HOURLY_TABLE",
    "REPORT_REASONS_HOURLY_VIEW",
    "REPORT_SPEND_COLUMN",
    "REPORT_TOUCHPOINTS_SELECT",
    "REPORT_TOUCHPOINTS_TABLE",
    "REPORT_TOUCHPOINTS_VIEW",
    "REPORT_VIEWS",
    "REPORT_VIEWS_V6",
    "TABLES",
    "USERS_COLUMNS",
    "USERS_TABLE",
    "applied_versions",
    "migrate",
]
