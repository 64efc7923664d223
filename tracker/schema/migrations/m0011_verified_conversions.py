"""Migration 11: verified conversions (purchases sent with the API token) and their kept attributions."""

from __future__ import annotations

from tracker.schema.events import EVENTS_VERIFIED_COLUMN
from tracker.schema.reports import REPORT_VERIFIED_ORDER_TOUCHES_TABLE
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(11, "verified conversions: purchases sent with the API token, their kept attributions", (
    AddColumn("events", *EVENTS_VERIFIED_COLUMN),
    REPORT_VERIFIED_ORDER_TOUCHES_TABLE,
))
