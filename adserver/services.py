"""The objects a running app shares between requests, owned by the app (``app.extensions``).

The app's :class:`~tracker.stores.Stores` hold its Redis and ClickHouse clients, built on first use
and forgotten in a forked child; the event stream and budget wrappers are rebuilt whenever the
underlying client changes, so a worker never uses a socket inherited from its parent.
"""

from __future__ import annotations

import logging

import redis
from flask import current_app

from adserver.campaigns.budgets import Budgets
from adserver.catalog.cache import CatalogCache
from adserver.catalog.registry import Registry
from adserver.learning.ctr import CtrCache
from adserver.learning.prior import prior_ctr
from adserver.learning.similar import ModelCache
from adserver.serving.clicks import ClickTokens
from adserver.serving.popular import PopularCache
from models.ctr import CtrContext
from tracker.breaker import CircuitBreaker
from tracker.clickhouse import ClickHouse
from tracker.identity import VisitorIds
from tracker.settings import Settings
from tracker.spool import Spool
from tracker.stores import Stores
from tracker.stream import EventStream, Frequency, Interest

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores = Stores(settings)
        self.ids = VisitorIds(settings.secret_keys)
        self.clicks = ClickTokens(settings.secret_keys, settings.click_ttl_days * 86400)
        self.registry = Registry(self.stores.clickhouse)
        self.catalog = CatalogCache(self.stores.clickhouse, lambda: self.stream_if_up().client)
        self.popular = PopularCache(self)
        self.models = ModelCache(settings.model_dir)
        self.breaker = CircuitBreaker(cooldown=1.0)
        self.spool = Spool(settings.data_dir / "spool")
        self.ctr = CtrCache(settings.model_dir)
        self._stream: EventStream | None = None
        self._budgets: Budgets | None = None
        if self.spool.pending_files():  # left by a process that died while Redis was down
            self.spool.start_replayer(self._replay, self.breaker.allow)

    @property
    def ch(self) -> ClickHouse:
        """The app's ClickHouse client."""
        return self.stores.clickhouse()

    @property
    def redis(self) -> redis.Redis:
        """The app's Redis client for requests (short timeouts)."""
        return self.stores.redis("web")

    def close(self) -> None:
        """Close the app's clients (tests build many apps in one process)."""
        self.stores.close()

    @property
    def stream(self) -> EventStream:
        client = self.stores.redis("web")
        stream = self._stream
        if stream is None or stream.client is not client:
            stream = self._stream = EventStream(
                client, self.settings.stream_key, self.settings.profile_size, self.settings.profile_ttl_days
            )
        return stream

    def stream_if_up(self) -> EventStream:
        """The stream, unless Redis failed a moment ago (then fail fast instead of waiting for a timeout)."""
        if not self.breaker.allow():
            raise redis.ConnectionError("Redis circuit open")
        return self.stream

    def record(self, row: dict, uid: str | None = None, counter: str | None = None, bad: bool = False) -> bool:
        """Append an event (or a rejected hit with ``bad``); spooled locally if Redis is unavailable.

        Returns True if it reached Redis now, False if it waits in the spool.
        """
        if self.breaker.allow():
            try:
                if bad:
                    self.stream.record_bad(row, counter=counter)
                else:
                    self.stream.record(row, uid=uid, counter=counter)
                self.breaker.success()
                return True
            except (redis.RedisError, OSError) as exc:
                self.breaker.failure()
                log.warning("Redis unavailable (%s): spooling events locally", exc)
        self.spool.append({"kind": "bad" if bad else "ev", "row": row, "uid": uid, "counter": counter})
        self.spool.start_replayer(self._replay, self.breaker.allow)
        return False

    def _replay(self, record: dict) -> None:
        try:
            if record.get("kind") == "bad":
                self.stream.record_bad(record["row"], counter=record.get("counter"))
            else:
                self.stream.record(record["row"], uid=record.get("uid"), counter=record.get("counter"))
        except (redis.RedisError, OSError):
            self.breaker.failure()
            raise
        self.breaker.success()

    def interests(self, uid: str, now: float) -> tuple[list[Interest], Frequency] | None:
        """The visitor's interests and frequency state, or None when Redis is unavailable."""
        try:
            return self.stream_if_up().interests(uid, now=now)
        except (redis.RedisError, OSError) as exc:
            self.breaker.failure()
            log.warning("profile lookup failed (%s); serving the fallback", exc)
            return None

    def predict_ctr(self, ctx, advertiser: str, interest) -> float:
        """Predicted CTR of an ad of ``advertiser`` in this request (the prior until a model is trained)."""
        context = CtrContext(
            placement=ctx.placement_id, size=ctx.size, advertiser=advertiser,
            interest_age=int(max(0.0, ctx.now - interest.last_seen)) if interest else 0,
            interest_views=interest.views if interest else 0, hour=ctx.hour, device=ctx.device,
        )
        model = self.ctr.get()
        return model.predict(context) if model is not None else prior_ctr(context)

    @property
    def budgets(self) -> Budgets:
        client = self.stores.redis("web")
        budgets = self._budgets
        if budgets is None or budgets.client is not client:
            budgets = self._budgets = Budgets(client)
        return budgets


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["adserver"]
