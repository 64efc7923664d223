"""Migration 14: each event's IAB TCF consent; reports count impressions under GDPR and with consent."""

from __future__ import annotations

from tracker.schema.events import EVENTS_CONSENT_COLUMN
from tracker.schema.reports import REPORT_CONSENT_COLUMNS, REPORT_CONSENT_TABLES, REPORT_VIEWS_V14, recreate_views
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(14, "IAB TCF consent of each event; reports: impressions under GDPR and with consent", (
    AddColumn("events", *EVENTS_CONSENT_COLUMN),
    *(AddColumn(table, column, "AggregateFunction(sum, UInt64)")
      for table in REPORT_CONSENT_TABLES for column in REPORT_CONSENT_COLUMNS),
    *recreate_views(REPORT_VIEWS_V14),
))
