"""What visitors answered "not interested" to, and how often each product was dismissed lately.

Key layout (hash tags as in ``tracker.stream``, so a visitor's keys share a slot: ``{T}`` is the tag
of their stream partition, ``tracker.partitions``):

- ``p:{T}:<uid>:hide``        ZSET member -> until when it stays hidden (unix s): ``s:<advertiser>``
                               hides a whole store, ``p:<advertiser>:<sku>`` one product. At most
                               ``HIDES_MAX`` members (the soonest to end go first), expired ones are
                               dropped on every write, and the key's TTL is the latest member's end,
                               so nothing outlives the longest suppression. The ad decision reads it
                               in the same script as the rest of the profile (``EventStream.interests``).
- ``hid:{<impression>}:<sku>``  the first answer for one product of one impression; lives until the
                               token could no longer be used, so a replayed token counts once.
- ``hides:{advertiser}:<day>``  ZSET sku -> "not this product" answers that UTC day, kept 8 days:
                               every visitor's recent answers lower a product's rank for everyone
                               (``models.feedback``).

Only products and stores named by a token we signed reach these keys, so a visitor's hides and an
advertiser's daily counts hold at most what ads really showed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

from tracker.partitions import Partitions
from tracker.popularity import POPULAR_DAYS
from tracker.stream import HIDES_MAX, utc_day

REASONS = ("product", "store")
HIDE_COUNT_DAYS = POPULAR_DAYS  # days of answers that lower a product's rank

# A visitor's answer, in one call on their own key (Redis Cluster: one slot per script). KEYS: the
# visitor's hide set. ARGV: member, until, now, max members. The TTL follows the latest end.
_HIDE = """
local ends, now = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not old or tonumber(old) < ends then redis.call('ZADD', KEYS[1], ends, ARGV[1]) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last > 0 then redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(last[2]))) end
return 1
"""


def hide_key(partitions: Partitions, uid: str) -> str:
    return f"{partitions.profile(uid)}:hide"


def store_member(advertiser: str) -> str:
    return f"s:{advertiser}"


def product_member(advertiser: str, sku: str) -> str:
    return f"p:{advertiser}:{sku}"


def member(reason: str, advertiser: str, sku: str) -> str:
    """The hide set's member for an answer: the store, or the product."""
    return store_member(advertiser) if reason == "store" else product_member(advertiser, sku)


def counts_key(advertiser: str, day: str) -> str:
    return "hides:{%s}:%s" % (advertiser, day)


def store_hidden(hidden: Iterable[str], advertiser: str) -> bool:
    """Whether the visitor's live hides (``Frequency.hidden``) include the whole store."""
    return store_member(advertiser) in hidden


def hidden_skus(hidden: Iterable[str], advertiser: str) -> set[str]:
    """The advertiser's products among the visitor's live hides."""
    prefix = f"p:{advertiser}:"
    return {m[len(prefix):] for m in hidden if m.startswith(prefix)}


class Hides:
    """Records answers and reads how often products were dismissed lately."""

    def __init__(self, client: redis.Redis, partitions: Partitions | None = None) -> None:
        """``partitions``: the stream's (``EventStream.partitions``), where visitors' keys live; only
        ``counts`` works without them."""
        self.client = client
        self.partitions = partitions
        self._hide = client.register_script(_HIDE)

    def record(self, impression_id: str, sku: str, advertiser: str, reason: str, uid: str | None,
               days: int, token_expires: float, count: bool, now: float | None = None) -> bool:
        """Hide the product or store from ``uid`` (if any) for ``days`` and, the first time this product
        of this impression is answered, add a "not this product" to the product's daily count when
        ``count``. Returns whether it was the first answer (a replay is not counted again, but still
        hides: a reader may answer "not this store" after "not this product")."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        now = time.time() if now is None else now
        answer = member(reason, advertiser, sku)
        if uid:
            self._hide(keys=[hide_key(self._layout(), uid)], args=[answer, int(now + days * 86400), int(now), HIDES_MAX])
        marker = "hid:{%s}:%s" % (impression_id, sku)
        if not self.client.set(marker, reason, nx=True, ex=max(60, int(token_expires - now) + 60)):
            return False
        if count and reason == "product":
            key = counts_key(advertiser, utc_day(now))
            pipe = self.client.pipeline(transaction=False)
            pipe.zincrby(key, 1, sku).expire(key, (HIDE_COUNT_DAYS + 1) * 86400)
            pipe.execute()
        return True

    def visitor(self, uid: str, now: float | None = None) -> dict[str, float]:
        """The visitor's live hides: member -> until (unix s)."""
        now = time.time() if now is None else now
        rows = self.client.zrangebyscore(hide_key(self._layout(), uid), now, "+inf", start=0, num=HIDES_MAX, withscores=True)
        return {m.decode(): float(until) for m, until in rows}

    def _layout(self) -> Partitions:
        if self.partitions is None:
            raise ValueError("a visitor's hides need the stream's partitions")
        return self.partitions

    def counts(self, advertiser: str, limit: int = 500, now: float | None = None) -> dict[str, float]:
        """The "not this product" answers per sku over the last ``HIDE_COUNT_DAYS`` days (every visitor)."""
        now = time.time() if now is None else now
        pipe = self.client.pipeline(transaction=False)
        for d in range(HIDE_COUNT_DAYS):
            pipe.zrevrange(counts_key(advertiser, utc_day(now - d * 86400)), 0, limit - 1, withscores=True)
        totals: dict[str, float] = {}
        for rows in pipe.execute():
            for sku, n in rows:
                totals[sku.decode()] = totals.get(sku.decode(), 0.0) + float(n)
        return totals
