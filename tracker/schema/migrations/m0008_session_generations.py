"""Migration 8: marketers' session generations."""

from __future__ import annotations

from tracker.schema.accounts import SESSION_GENERATIONS_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(8, "marketers' session generations (sign-out and a new password end sessions)", (
    SESSION_GENERATIONS_TABLE,
))
