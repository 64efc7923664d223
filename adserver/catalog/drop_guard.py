"""The drop guard: a full feed that would remove most of a catalog is refused unless forced.

A full feed replaces the catalog: products missing from it are removed. A download cut short, a store's
export that failed half-way or a feed of the wrong site looks like a valid feed that lacks most
products, and importing it would take them off the ads. So a full import that would remove more than
a share (``ADSERVER_FEED_MAX_DROP``) of the products in the catalog is refused, with nothing
imported, unless the operator forces it.
"""

from __future__ import annotations

from tracker.clickhouse import ClickHouse
from tracker.errors import FeedError


def check_drop(ch: ClickHouse, advertiser: str, present: set[str], max_drop: float, report=None) -> None:
    """Raise :class:`FeedError` (code ``too_many_removed``) when keeping only ``present`` would remove
    more than ``max_drop`` (0-1) of the advertiser's current products."""
    current = {row[0] for row in ch.execute(
        "SELECT sku FROM products FINAL WHERE advertiser = %(a)s AND deleted = 0", {"a": advertiser})}
    if not current:
        return
    gone = len(current - present)
    if gone / len(current) > max_drop:
        raise FeedError(
            f"this full feed would remove {gone} of the {len(current)} products in the catalog "
            f"({gone / len(current):.0%}, more than the {max_drop:.0%} allowed by ADSERVER_FEED_MAX_DROP); "
            "a truncated download or a failed export looks like this, so nothing was imported and the catalog "
            "is unchanged. Check the feed; if the removal is intended, import it again with --force",
            "too_many_removed", report=report)
