"""The catalogs serving reads: each process's own copy in memory, so an ad costs no database call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

from adserver.catalog.product import Product
from adserver.catalog.storage import catalog_version_key, load_products
from tracker.clickhouse import ClickHouse

T = TypeVar("T")


class CatalogVersioned(Generic[T]):
    """Something loaded per advertiser from the catalog tables, kept in each process's memory and
    reloaded when an import bumps the advertiser's catalog version.

    The version is checked at most every ``check_seconds`` per advertiser, so serving an ad costs no
    database call in the common case; a failed reload keeps serving the copy it has. Without a copy,
    ``fallback`` answers (``None``: the error is raised).
    """

    def __init__(self, ch_factory: Callable[[], ClickHouse], redis_factory: Callable[[], redis.Redis],
                 load: Callable[[ClickHouse, str], T], check_seconds: float = 5.0,
                 fallback: Callable[[], T] | None = None) -> None:
        self._ch = ch_factory
        self._redis = redis_factory
        self._load = load
        self._fallback = fallback
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float, T]] = {}

    def get(self, advertiser: str) -> T:
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
                value = self._load(self._ch(), advertiser)
            except Exception:  # noqa: BLE001 - keep the old copy when the database is away
                if entry is not None:
                    self._entries[advertiser] = (entry[0], now, entry[2])
                    return entry[2]
                if self._fallback is None:
                    raise
                self._entries[advertiser] = ("?", now, self._fallback())
                return self._entries[advertiser][2]
            self._entries[advertiser] = (version, now, value)
            return value


class CatalogCache(CatalogVersioned[dict[str, Product]]):
    """Each process's in-memory copy of the catalogs: the advertiser's products by sku (empty when it
    has none)."""

    def __init__(self, ch_factory: Callable[[], ClickHouse], redis_factory: Callable[[], redis.Redis],
                 check_seconds: float = 5.0) -> None:
        super().__init__(ch_factory, redis_factory, load_products, check_seconds)
