"""Each advertiser's popular products, the fallback of every ad, cached per process."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from adserver.services import Services


class PopularCache:
    """Each advertiser's popular products, read from Redis at most every ``ttl`` seconds."""

    def __init__(self, services: Services, ttl: float = 30.0) -> None:
        self._services = services
        self.ttl = ttl
        self._entries: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def get(self, advertiser: str) -> list[str]:
        entry = self._entries.get(advertiser)
        now = time.monotonic()
        if entry and now - entry[0] < self.ttl:
            return entry[1]
        try:
            skus = self._services.stream_if_up().popular(advertiser)
        except (redis.RedisError, OSError):  # stale popularity beats no ad
            self._services.breaker.failure()
            skus = entry[1] if entry else []
        with self._lock:
            self._entries[advertiser] = (now, skus)
        return skus
