"""Migration 5: campaigns, placement floors, and the auction's and invalid traffic's columns on events."""

from __future__ import annotations

from tracker.schema.campaigns import CAMPAIGNS_TABLE
from tracker.schema.catalog import PLACEMENTS_FLOOR_COLUMN
from tracker.schema.events import EVENTS_V5_COLUMNS
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(5, "campaigns, placement floors, auction and invalid-traffic columns on events", (
    CAMPAIGNS_TABLE,
    AddColumn("placements", PLACEMENTS_FLOOR_COLUMN, "Float64 DEFAULT 0"),
    *(AddColumn("events", name, definition) for name, definition in EVENTS_V5_COLUMNS),
))
