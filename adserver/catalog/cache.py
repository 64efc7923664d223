"""The catalogs serving reads: each process's own copy in memory, so an ad costs no database call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from adserver.catalog.product import Product
from adserver.catalog.storage import catalog_version_key, load_products
from tracker.clickhouse import ClickHouse


class CatalogCache:
    """Each process's in-memory copy of the catalogs, refreshed when an import bumps the version.

    The version is checked at most every ``check_seconds`` per advertiser, so serving an ad costs no
    database call in the common case; a failed reload keeps serving the copy it has.
    """

    def __init__(self, ch_factory: Callable[[], ClickHouse], redis_factory: Callable[[], redis.Redis],
                 check_seconds: float = 5.0) -> None:
        self._ch = ch_factory
        self._redis = redis_factory
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float, dict[str, Product]]] = {}

    def get(self, advertiser: str) -> dict[str, Product]:
        """The advertiser's products by sku (empty when it has none)."""
        entry = self._entries.get(advertiser)
        now = time.monotonic()
        if entry is not None and now - entry[1] < self.check_seconds:
            return entry[2]
        with self._lock:
            entry = self._entries.get(advertiser)
            if entry is not None and now - entry[1] < self.check_seconds:
                return entry[2]
            try:
                version = (self._redis().get(catalog_version_key(advertiser)) or b"0").decode()
            except Exception:  # noqa: BLE001 - Redis trouble must not break serving
                version = entry[0] if entry else "?"
            if entry is not None and entry[0] == version:
                self._entries[advertiser] = (version, now, entry[2])
                return entry[2]
            try:
                products = load_products(self._ch(), advertiser)
            except Exception:  # noqa: BLE001 - keep the old copy when the database is away
                if entry is None:
                    raise
                self._entries[advertiser] = (entry[0], now, entry[2])
                return entry[2]
            self._entries[advertiser] = (version, now, products)
            return products
