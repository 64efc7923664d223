"""Migration 15: "not interested": campaigns' hide days; reports count hides."""

from __future__ import annotations

from tracker.schema.campaigns import CAMPAIGNS_HIDE_DAYS_COLUMN
from tracker.schema.reports import REPORT_HIDES_COLUMN, REPORT_HIDES_TABLES, REPORT_VIEWS_V15, recreate_views
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(15, "not interested: campaigns' hide days; reports: hides per placement, campaign and product", (
    AddColumn("campaigns", *CAMPAIGNS_HIDE_DAYS_COLUMN),
    *(AddColumn(table, REPORT_HIDES_COLUMN, "AggregateFunction(sum, UInt64)") for table in REPORT_HIDES_TABLES),
    *recreate_views(REPORT_VIEWS_V15),
))
