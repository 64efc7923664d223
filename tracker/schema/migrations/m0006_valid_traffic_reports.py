"""Migration 6: reports count valid traffic only, invalid impressions and clicks apart."""

from __future__ import annotations

from tracker.schema.reports import REPORT_INVALID_COLUMNS, REPORT_VIEWS_V6, recreate_views
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(6, "reports: valid traffic only, invalid impressions and clicks apart", (
    *(AddColumn(table, column, "AggregateFunction(sum, UInt64)")
      for table in ("report_ads_hourly", "report_ads_daily") for column in REPORT_INVALID_COLUMNS),
    *recreate_views(REPORT_VIEWS_V6),
))
