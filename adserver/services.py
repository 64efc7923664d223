"""The objects a running app shares between requests, built once per process.

Clients are reached through ``tracker.stores`` accessors, which are emptied after gunicorn forks;
the event stream wrapper is rebuilt whenever the underlying client changes, so a worker never
uses a socket inherited from its parent.
"""

from __future__ import annotations

import threading
import time

from flask import current_app

from adserver.catalog import CatalogCache
from adserver.clicks import ClickTokens
from adserver.recommend import ModelCache
from adserver.registry import Registry
from tracker.identity import VisitorIds
from tracker.settings import Settings
from tracker.stores import get_clickhouse, get_redis
from tracker.stream import EventStream


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
            skus = self._services.stream.popular(advertiser)
        except Exception:  # noqa: BLE001 - stale popularity beats no ad
            skus = entry[1] if entry else []
        with self._lock:
            self._entries[advertiser] = (now, skus)
        return skus


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ids = VisitorIds(settings.secret_keys)
        self.clicks = ClickTokens(settings.secret_keys, settings.click_ttl_days * 86400)
        self.registry = Registry(get_clickhouse)
        self.catalog = CatalogCache(get_clickhouse, lambda: get_redis("web"))
        self.popular = PopularCache(self)
        self.models = ModelCache(settings.model_dir)
        self._stream: EventStream | None = None

    @property
    def stream(self) -> EventStream:
        client = get_redis("web")
        stream = self._stream
        if stream is None or stream.client is not client:
            stream = self._stream = EventStream(
                client, self.settings.stream_key, self.settings.profile_size, self.settings.profile_ttl_days
            )
        return stream


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["adserver"]
