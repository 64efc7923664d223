"""Migration 17: the grain tables again as ``report_hours`` and ``report_days``, with 1,024-row granules."""

from __future__ import annotations

from tracker.schema.report_grains import (
    REPORT_DAILY_SELECT,
    REPORT_DAYS_TABLE,
    REPORT_GRAIN_RENAMES,
    REPORT_HOURLY_SELECT,
    REPORT_HOURS_TABLE,
)
from tracker.schema.steps import CopyRows, Migration

_RENAMES = tuple(REPORT_GRAIN_RENAMES.items())

# As in migration 16 (see CopyRows): the old views first, the new views after the old tables are
# dropped; events inserted meanwhile reach no report table: migrate with the writer stopped, or run
# ``rebuild-reports`` after.
MIGRATION = Migration(17, "reports: the grain tables as report_hours and report_days, with 1,024-row granules", (
    *(f"DROP TABLE IF EXISTS {old}_mv" for old, _ in _RENAMES),
    REPORT_HOURS_TABLE,
    REPORT_DAYS_TABLE,
    *(CopyRows(new, ((old, f"INSERT INTO {new} SELECT * FROM {old}"),)) for old, new in _RENAMES),
    *(f"DROP TABLE IF EXISTS {old}" for old, _ in _RENAMES),
    "CREATE MATERIALIZED VIEW IF NOT EXISTS report_hours_mv TO report_hours AS " + REPORT_HOURLY_SELECT,
    "CREATE MATERIALIZED VIEW IF NOT EXISTS report_days_mv TO report_days AS " + REPORT_DAILY_SELECT,
))
