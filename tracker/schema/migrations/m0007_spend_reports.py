"""Migration 7: reports show the spend charged, and per campaign."""

from __future__ import annotations

from tracker.schema.reports import (
    REPORT_CAMPAIGNS_DAILY_TABLE,
    REPORT_CAMPAIGNS_HOURLY_TABLE,
    REPORT_SPEND_COLUMN,
    REPORT_VIEWS_V7,
    recreate_views,
)
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(7, "reports: spend charged, per campaign", (
    *(AddColumn(table, REPORT_SPEND_COLUMN, "AggregateFunction(sum, Float64)")
      for table in ("report_ads_hourly", "report_ads_daily")),
    REPORT_CAMPAIGNS_HOURLY_TABLE, REPORT_CAMPAIGNS_DAILY_TABLE,
    *recreate_views(REPORT_VIEWS_V7),
))
