"""Migration 10: advertisers' landing domains."""

from __future__ import annotations

from tracker.schema.catalog import ADVERTISERS_DOMAINS_COLUMN
from tracker.schema.steps import AddColumn, Migration

MIGRATION = Migration(10, "advertisers' landing domains", (
    AddColumn("advertisers", ADVERTISERS_DOMAINS_COLUMN, "Array(String) DEFAULT []"),
))
