"""Migration 16: the report breakdowns share one table per time grain (``report_hourly``, ``report_daily``)."""

from __future__ import annotations

from tracker.schema.report_grains import (
    REPORT_DAILY_SELECT,
    REPORT_DAILY_TABLE,
    REPORT_GRAIN_TABLES,
    REPORT_HOURLY_SELECT,
    REPORT_HOURLY_TABLE,
    REPORT_MOVES,
)
from tracker.schema.steps import CopyRows, Migration

_OLD = (*REPORT_GRAIN_TABLES["hour"], *REPORT_GRAIN_TABLES["day"])

# The old views go first, so the copies read tables nothing writes to any more; the new views come
# last, after the old tables are dropped (see CopyRows). Events inserted meanwhile are in ``events``
# but in no report table: migrate with the writer stopped, or run ``rebuild-reports`` after.
MIGRATION = Migration(16, "reports: one table per time grain for placements, campaigns, reasons and products", (
    *(f"DROP TABLE IF EXISTS {table}_mv" for table in _OLD),
    REPORT_HOURLY_TABLE,
    REPORT_DAILY_TABLE,
    CopyRows("report_hourly", REPORT_MOVES["hour"]),
    CopyRows("report_daily", REPORT_MOVES["day"]),
    *(f"DROP TABLE IF EXISTS {table}" for table in _OLD),
    "CREATE MATERIALIZED VIEW IF NOT EXISTS report_hourly_mv TO report_hourly AS " + REPORT_HOURLY_SELECT,
    "CREATE MATERIALIZED VIEW IF NOT EXISTS report_daily_mv TO report_daily AS " + REPORT_DAILY_SELECT,
))
