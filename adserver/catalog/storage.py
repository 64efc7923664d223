"""The catalogs in ClickHouse, and the Redis version number that tells serving processes one changed.

ClickHouse holds one row per product version (newest wins, a deleted flag removes a product). An
import bumps the advertiser's version number in Redis; every serving process compares it with the
version of its cached copy (:class:`adserver.catalog.cache.CatalogCache`) and reloads the catalog
when it changed, so no restart is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from adserver.catalog.product import Product
from tracker.clickhouse import ClickHouse
from tracker.schema import PRODUCTS_COLUMNS


def store_products(ch: ClickHouse, advertiser: str, products: Iterable[Product], full: bool = False,
                   keep: set[str] | frozenset[str] = frozenset()) -> tuple[int, int]:
    """Write a catalog version; with ``full``, products missing from it (and not in ``keep``) are marked deleted."""
    now = datetime.now(UTC).replace(tzinfo=None)
    version = time.time_ns()
    products = list(products)
    rows = [
        (advertiser, p.sku, p.title, p.description, p.link, p.image_link, p.price, p.sale_price, p.currency,
         p.availability, p.product_type, p.brand, p.item_group_id, 0, version, now)
        for p in products
    ]
    removed = 0
    if full:
        present = {p.sku for p in products} | set(keep)
        current = ch.execute(
            "SELECT sku FROM products FINAL WHERE advertiser = %(a)s AND deleted = 0", {"a": advertiser}
        )
        gone = [r[0] for r in current if r[0] not in present]
        rows += [(advertiser, sku, "", "", "", "", 0.0, 0.0, "", "", "", "", "", 1, version, now) for sku in gone]
        removed = len(gone)
    ch.insert("products", PRODUCTS_COLUMNS, rows)
    return len(products), removed


def load_products(ch: ClickHouse, advertiser: str) -> dict[str, Product]:
    """The advertiser's current products by sku (the newest version of each, deleted ones left out)."""
    rows = ch.execute(
        "SELECT sku, title, link, image_link, price, sale_price, currency, availability, description, "
        "product_type, brand, item_group_id FROM products FINAL "
        "WHERE advertiser = %(a)s AND deleted = 0 ORDER BY sku",
        {"a": advertiser},
    )
    return {r[0]: Product(*r) for r in rows}


def catalog_version_key(advertiser: str) -> str:
    return "catalog:ver:{%s}" % advertiser


def bump_version(redis_client: redis.Redis, advertiser: str) -> None:
    """Tell every serving process that this advertiser's catalog changed."""
    redis_client.incr(catalog_version_key(advertiser))
