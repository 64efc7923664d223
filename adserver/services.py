"""The objects a running app shares between requests, owned by the app (``app.extensions``).

The app's :class:`~tracker.stores.Stores` hold its Redis and ClickHouse clients, built on first use
and forgotten in a forked child; the event stream and budget wrappers are rebuilt whenever the
underlying client changes, so a worker never uses a socket inherited from its parent.
"""

from __future__ import annotations

import logging
import time

import redis
from flask import current_app

from adserver.campaigns.budgets import Budgets
from adserver.catalog.cache import CatalogCache
from adserver.catalog.registry import Registry
from adserver.learning.ctr import CtrCache
from adserver.learning.prior import prior_ctr
from adserver.learning.similar import ModelCache
from adserver.serving.click_ids import ClickIds
from adserver.serving.clicks import ClickTokens
from adserver.serving.hide_counts import HideCounts
from adserver.serving.hide_tokens import HideTokens
from adserver.serving.popular import PopularCache
from models.ctr import CtrContext
from tracker.breaker import CircuitBreaker
from tracker.clickhouse import ClickHouse
from tracker.hides import Hides
from tracker.identity import VisitorIds
from tracker.linger import Linger
from tracker.settings import Settings
from tracker.spool import Spool
from tracker.stores import Stores
from tracker.stream import PROFILE_EVENTS, EventStream, Frequency, Interest

log = logging.getLogger(__name__)
CATALOG_RETRY_SECONDS = 5.0  # after a failed catalog load, hits skip the profile this long instead of waiting


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores = Stores(settings)
        self.ids = VisitorIds(settings.secret_keys)
        self.clicks = ClickTokens(settings.secret_keys, settings.click_ttl_days * 86400)
        self.click_ids = ClickIds(settings.secret_keys)  # adclid on landing URLs, checked by the conversion API
        self.hide_tokens = HideTokens(settings.secret_keys, settings.click_ttl_days * 86400)  # "not interested"
        self.hide_counts = HideCounts(self)
        self.registry = Registry(self.stores.clickhouse)
        self.catalog = CatalogCache(self.stores.clickhouse, lambda: self.stream_if_up().client)
        self.popular = PopularCache(self)
        self.models = ModelCache(settings.model_dir)
        self.breaker = CircuitBreaker(cooldown=1.0)
        self.spool = Spool(settings.data_dir / "spool", max_bytes=settings.spool_max_mb * 1024 * 1024)
        self.ctr = CtrCache(settings.model_dir)
        self._stream: EventStream | None = None
        self._budgets: Budgets | None = None
        self._hides: Hides | None = None
        self._catalog_retry: dict[str, float] = {}  # advertiser -> monotonic time to try its catalog again
        # Pixel hits gathered and written in batches (tracker.linger); None: each written before its answer.
        self.linger = (Linger(lambda: self.stream, self.breaker, self._spill, settings.pixel_linger_ms / 1000)
                       if settings.pixel_linger_ms > 0 else None)
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
        """Send the pixel hits still queued, then close the app's clients (tests build many apps in one process)."""
        if self.linger is not None:
            self.linger.close()
        self.stores.close()

    @property
    def stream(self) -> EventStream:
        client = self.stores.redis("web")
        stream = self._stream
        if stream is None or stream.client is not client:
            stream = self._stream = EventStream(
                client, self.settings.stream_key, self.settings.profile_size, self.settings.profile_ttl_days,
                new_visitor_ttl=self.settings.new_visitor_ttl_minutes * 60, partitions=self.settings.stream_partitions,
            )
        return stream

    def stream_if_up(self) -> EventStream:
        """The stream, unless Redis failed a moment ago (then fail fast instead of waiting for a timeout)."""
        if not self.breaker.allow():
            raise redis.ConnectionError("Redis circuit open")
        return self.stream

    def record(self, row: dict, uid: str | None = None, counter: str | None = None, bad: bool = False,
               first_visit: bool = False, linger: bool = False) -> bool:
        """Append an event (or a rejected hit with ``bad``); spooled locally if Redis is unavailable.

        Only the row's skus in the advertiser's catalog enter the visitor's profile and popularity
        (the row keeps them all). ``first_visit``: ``uid`` was made for this hit (see
        ``EventStream.record``). ``linger``: the event may wait a few milliseconds to be written
        with others (the pixel's hits, when ``ADSERVER_PIXEL_LINGER_MS`` is set; see
        ``tracker.linger``). Returns True if it reached Redis now or waits in that queue, False if
        it waits in the spool (or was dropped, the spool being full).
        """
        profile_skus = None
        if uid and not bad and row.get("skus") and row.get("event") in PROFILE_EVENTS:
            profile_skus = self.catalog_skus(row.get("advertiser") or "", row["skus"])
        if linger and self.linger is not None:
            self._linger(row, uid, counter, bad, profile_skus, first_visit)
            return True
        record = {"kind": "bad" if bad else "ev", "row": row, "uid": uid, "counter": counter,
                  "profile_skus": profile_skus, "first_visit": first_visit}
        if self.breaker.allow():
            try:
                stream = self.stream
                call = stream.prepare_bad(row, counter) if bad else stream.prepare(row, uid, counter, profile_skus,
                                                                                    first_visit)
                # the call's id goes to the spool with it: if this try ran but its answer was lost, the
                # replay is recognised and writes nothing (EventStream.send)
                record["once"] = stream.once(call.partition)
                record["partition"] = call.partition
                stream.send(call, record["once"])
                self.breaker.success()
                return True
            except (redis.RedisError, OSError) as exc:
                self.breaker.failure()
                log.warning("Redis unavailable (%s): spooling events locally", exc)
        self.spool.append(record)
        self.spool.start_replayer(self._replay, self.breaker.allow)
        return False

    def _linger(self, row: dict, uid: str | None, counter: str | None, bad: bool, profile_skus: list[str] | None,
                first_visit: bool) -> None:
        """Queue the event for the next batch, with what the spool keeps if that batch fails."""
        record = {"kind": "bad" if bad else "ev", "row": row, "uid": uid, "counter": counter,
                  "profile_skus": profile_skus, "first_visit": first_visit}
        try:
            stream = self.stream  # a Redis Cluster client asks a seed node for the slots when it is made
        except (redis.RedisError, OSError) as exc:
            log.warning("Redis unavailable (%s): spooling events locally", exc)
            self.linger.offer(record, None, None)  # spooled in its turn, after the hits queued before it
            return
        call = stream.prepare_bad(row, counter) if bad else stream.prepare(row, uid, counter, profile_skus,
                                                                            first_visit)
        self.linger.offer(record, stream, call)

    def _spill(self, records: list[dict]) -> None:
        """Spool events that Redis did not take (a failed batch), in order, and replay them once it answers."""
        for record in records:
            self.spool.append(record)
        self.spool.start_replayer(self._replay, self.breaker.allow)

    def catalog_skus(self, advertiser: str, skus: list[str]) -> list[str]:
        """The skus found in the advertiser's catalog (the per-process copy), in order.

        None of them while the catalog cannot be read: a visitor's profile then misses a hit rather than
        taking skus nobody checked. A failed load is not retried for ``CATALOG_RETRY_SECONDS``, so
        hits do not each wait for an unreachable ClickHouse.
        """
        retry = self._catalog_retry.get(advertiser)
        if retry is not None and time.monotonic() < retry:
            return []
        try:
            products = self.catalog.get(advertiser)
        except Exception as exc:  # noqa: BLE001 - the event is recorded anyway, only the profile waits
            if len(self._catalog_retry) > 10_000:
                self._catalog_retry.clear()
            self._catalog_retry[advertiser] = time.monotonic() + CATALOG_RETRY_SECONDS
            log.warning("catalog of %r unavailable (%s): hits update no profile for %.0f s", advertiser, exc,
                        CATALOG_RETRY_SECONDS)
            return []
        self._catalog_retry.pop(advertiser, None)
        return [sku for sku in skus if sku in products]

    def _replay(self, record: dict) -> None:
        """Send a spooled event, or a batch of them, again; with the id of the try that failed, if any, so
        a try that did run is not written twice."""
        try:
            stream = self.stream
            if record.get("kind") == "batch":
                partition = record.get("partition")
                calls = [self._prepare(stream, inner, partition) for inner in record["records"]]
                stream.send_all(calls, tuple(record["once"]))
            else:
                call = self._prepare(stream, record, record.get("partition"))
                once = record.get("once")
                stream.send(call, tuple(once) if once else stream.once(call.partition))
        except (redis.RedisError, OSError):
            self.breaker.failure()
            raise
        self.breaker.success()

    @staticmethod
    def _prepare(stream: EventStream, record: dict, partition: int | None):
        """A spooled event's writes (a rejected hit to ``partition``, as its first try had it)."""
        if record.get("kind") == "bad":
            return stream.prepare_bad(record["row"], counter=record.get("counter"), partition=partition)
        return stream.prepare(record["row"], uid=record.get("uid"), counter=record.get("counter"),
                              profile_skus=record.get("profile_skus"), first_visit=bool(record.get("first_visit")))

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

    @property
    def hides(self) -> Hides:
        client = self.stores.redis("web")
        hides = self._hides
        if hides is None or hides.client is not client:
            hides = self._hides = Hides(client, self.stream.partitions)
        return hides


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["adserver"]
