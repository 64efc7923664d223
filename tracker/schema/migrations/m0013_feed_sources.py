"""Migration 13: feed sources and the validators of the copy last imported."""

from __future__ import annotations

from tracker.schema.catalog import FEED_SOURCES_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(13, "feed sources: validators of the feed copy last imported from each URL", (FEED_SOURCES_TABLE,))
