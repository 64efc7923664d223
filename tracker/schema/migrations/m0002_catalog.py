"""Migration 2: the registries of what is advertised and where."""

from __future__ import annotations

from tracker.schema.catalog import ADVERTISERS_TABLE, PLACEMENTS_TABLE, PRODUCTS_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(2, "catalog, advertisers, placements", (PRODUCTS_TABLE, ADVERTISERS_TABLE, PLACEMENTS_TABLE))
