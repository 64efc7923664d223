"""Each advertiser's recent "not this product" answers (every reader), cached per process like popularity."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import redis

from tracker.hides import Hides

if TYPE_CHECKING:
    from adserver.services import Services


class HideCounts:
    """Answers per sku over the last days, read from Redis at most every ``ttl`` seconds per advertiser."""

    def __init__(self, services: Services, ttl: float = 30.0) -> None:
        self._services = services
        self.ttl = ttl
        self._entries: dict[str, tuple[float, dict[str, float]]] = {}
        self._lock = threading.Lock()

    def get(self, advertiser: str) -> dict[str, float]:
        entry = self._entries.get(advertiser)
        now = time.monotonic()
        if entry and now - entry[0] < self.ttl:
            return entry[1]
        try:
            counts = Hides(self._services.stream_if_up().client).counts(advertiser)
        except (redis.RedisError, OSError):  # the ranking without them beats no ad
            self._services.breaker.failure()
            counts = entry[1] if entry else {}
        with self._lock:
            self._entries[advertiser] = (now, counts)
        return counts

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
