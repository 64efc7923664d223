"""Migration 12: product images resized for ad slots."""

from __future__ import annotations

from tracker.schema.images import IMAGE_VARIANTS_TABLE, PRODUCT_IMAGES_TABLE
from tracker.schema.steps import Migration

MIGRATION = Migration(12, "product images resized for ad slots: variants and each feed image's variants", (
    IMAGE_VARIANTS_TABLE, PRODUCT_IMAGES_TABLE,
))
