"""Migration 3: advertisers' API tokens."""

from __future__ import annotations

from tracker.schema.accounts import API_TOKENS_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(3, "api tokens", (API_TOKENS_TABLE,))
