"""Migration 1: the raw event tables the batch writer fills."""

from __future__ import annotations

from tracker.schema.events import BAD_EVENTS_TABLE, EVENTS_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(1, "events and bad_events", (EVENTS_TABLE, BAD_EVENTS_TABLE))
