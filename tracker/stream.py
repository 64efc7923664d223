"""The Redis side of tracking: the event stream and each visitor's profile.

A pixel hit costs one Redis round trip: the event is appended to the stream (which the writer
drains into ClickHouse) and the visitor's profile is updated in the same call (one script). An ad decision
also costs one round trip: a server-side script reads the advertisers the visitor engaged with most
recently, their recently viewed products and purchases there, and what they were shown (``interests``).

Key layout (``{uid}`` and ``{advertiser}`` are Redis Cluster hash tags, so a visitor's keys live
on one shard and a script may read them together):

- ``p:{uid}:adv``             ZSET advertiser -> last interest time (µs)
- ``p:{uid}:rv:<advertiser>`` ZSET sku -> last view time (µs), newest ``profile_size`` kept
- ``p:{uid}:buy:<advertiser>`` SET skus bought (not advertised again)
- ``p:{uid}:advbuy``          ZSET advertiser -> last purchase time (µs), for "exclude recent buyers"
- ``p:{uid}:fq``              HASH ``t:<campaign>`` last impression (unix s), ``u:<advertiser>`` impressions
                              since the last click (fatigue)
- ``p:{uid}:fq:<day>``        HASH campaign -> impressions that UTC day (frequency cap), kept 2 days
- ``pop:{advertiser}:<day>``  ZSET sku -> interest weight that day, kept 8 days
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import redis

from tracker.events import INTEREST_EVENTS, INTEREST_WEIGHTS

try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - pinned in requirements.txt; json is the fallback
    _orjson_dumps = None

METRICS_KEY = "adserver:metrics"
POPULAR_DAYS = 7

# Everything an auction needs about a visitor, in one round trip: the advertisers they engaged
# with most recently (with the time, their recent products there, how many, what they bought and
# when) and their frequency state.
_READ_INTERESTS = """
local prefix = ARGV[1]
local advs = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #advs, 2 do
  local adv = advs[i]
  local rv = prefix .. ':rv:' .. adv
  out[#out + 1] = {adv, advs[i + 1], redis.call('ZREVRANGE', rv, 0, tonumber(ARGV[2]) - 1),
                   redis.call('ZCARD', rv), redis.call('SMEMBERS', prefix .. ':buy:' .. adv),
                   redis.call('ZSCORE', prefix .. ':advbuy', adv) or '0'}
end
return {out, redis.call('HGETALL', prefix .. ':fq'), redis.call('HGETALL', prefix .. ':fq:' .. ARGV[4])}
"""


# A hit's writes (stream entry, counter, profile, popularity, frequency) in one call: ARGV holds
# each command as its argument count followed by its arguments. A pipeline of the same ~10
# commands cost the client ~150 µs per hit (packing each command, parsing each reply) against
# ~30 µs for this one call, and the writes now apply atomically. Keys are named in ARGV, not
# KEYS: every key a visitor hit touches is computed here, as ``_READ_INTERESTS`` does.
# ``replicate_commands`` (a no-op from Redis 7) lets Redis 5 and 6 run XADD's generated id.
_RUN = """
if redis.replicate_commands then redis.replicate_commands() end
local i, n = 1, #ARGV
while i <= n do
  local c = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + c))
  i = i + c + 1
end
return n
"""


def encode_row(row: dict) -> bytes | str:
    """A stream entry's JSON (compact, UTF-8): orjson, ~10x faster than ``json`` on a pixel's row.

    orjson writes NaN and infinities as ``null`` and refuses integers beyond 64 bits; rows holding
    either go through ``json``, so the writer reads exactly what it always read.
    """
    if _orjson_dumps is not None:
        for value in row.values():
            if isinstance(value, float) and not math.isfinite(value):
                break
        else:
            try:
                return _orjson_dumps(row)
            except TypeError:  # an integer beyond 64 bits, or a type orjson does not know
                pass
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def profile_prefix(uid: str) -> str:
    return "p:{%s}" % uid


def popular_key(advertiser: str, day: str) -> str:
    return "pop:{%s}:%s" % (advertiser, day)


def utc_day(ts: float) -> str:
    """``YYYYMMDD`` of the UTC day of ``ts`` (every hit and ad asks; formatting is cached per day)."""
    return _utc_day(int(ts // 86400))


@lru_cache(maxsize=64)
def _utc_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y%m%d")


@dataclass
class Interest:
    """A visitor's interest in one advertiser."""

    advertiser: str
    last_seen: float  # unix seconds of the latest product view or cart
    recent: list[str] = field(default_factory=list)  # newest first
    views: int = 0  # distinct products viewed recently (at most the profile size)
    bought: set[str] = field(default_factory=set)
    last_purchase: float = 0.0  # unix seconds, 0 = never


@dataclass
class Frequency:
    """What the visitor was shown: per campaign today and when last, per advertiser unclicked."""

    today: dict[str, int] = field(default_factory=dict)  # campaign -> impressions this UTC day
    last_shown: dict[str, float] = field(default_factory=dict)  # campaign -> unix seconds
    unclicked: dict[str, int] = field(default_factory=dict)  # advertiser -> impressions since last click


class EventStream:
    """Appends events to the stream and keeps visitor profiles, in one round trip per hit."""

    def __init__(self, client: redis.Redis, stream_key: str, profile_size: int = 50, profile_ttl_days: int = 30) -> None:
        self.client = client
        self.stream_key = stream_key
        self.profile_size = profile_size
        self.profile_ttl = profile_ttl_days * 86400
        self._read_interests = client.register_script(_READ_INTERESTS)
        self._run = client.register_script(_RUN)

    def record(self, row: dict, uid: str | None = None, counter: str | None = None) -> None:
        """Append an accepted event and, for a known visitor, fold it into their profile.

        ``counter`` names a shared metric incremented in the same round trip (see ``counters``).
        """
        cmds: list = []
        if counter:
            cmds += (4, "HINCRBY", METRICS_KEY, counter, 1)
        cmds += (7, "XADD", self.stream_key, "*", "t", "ev", "d", encode_row(row))
        event, advertiser, skus = row["event"], row["advertiser"], row.get("skus") or []
        now = row.get("ts") or time.time()
        if uid and skus and (event in INTEREST_EVENTS or event == "purchase"):
            prefix = profile_prefix(uid)
            ttl = self.profile_ttl
            if event in INTEREST_EVENTS:
                us = int(now * 1_000_000)  # microseconds: two hits in the same millisecond keep their order
                rv = f"{prefix}:rv:{advertiser}"
                cmds.append(2 + 2 * len(skus))
                cmds += ("ZADD", rv)
                for sku in skus:
                    cmds += (us, sku)
                cmds += (4, "ZREMRANGEBYRANK", rv, 0, -self.profile_size - 1, 3, "EXPIRE", rv, ttl,
                         4, "ZADD", f"{prefix}:adv", us, advertiser, 3, "EXPIRE", f"{prefix}:adv", ttl)
            else:
                buy = f"{prefix}:buy:{advertiser}"
                cmds += (2 + len(skus), "SADD", buy, *skus, 3, "EXPIRE", buy, ttl,
                         4, "ZADD", f"{prefix}:advbuy", int(now * 1_000_000), advertiser,
                         3, "EXPIRE", f"{prefix}:advbuy", ttl)
            pop = popular_key(advertiser, utc_day(now))
            weight = INTEREST_WEIGHTS[event]
            for sku in skus:
                cmds += (4, "ZINCRBY", pop, weight, sku)
            cmds += (3, "EXPIRE", pop, (POPULAR_DAYS + 1) * 86400)
        if uid and event in ("impression", "click") and not row.get("invalid"):
            self._frequency(cmds, profile_prefix(uid), row, now)
        self._run(args=cmds)

    def _frequency(self, cmds: list, prefix: str, row: dict, now: float) -> None:
        """Frequency caps and fatigue: count the impression, or reset the streak on a click."""
        fq = f"{prefix}:fq"
        if row["event"] == "click":
            cmds += (4, "HSET", fq, f"u:{row['advertiser']}", 0)
            return
        campaign = row.get("campaign") or ""
        if campaign:
            day = f"{fq}:{utc_day(now)}"
            cmds += (4, "HINCRBY", day, campaign, 1, 3, "EXPIRE", day, 2 * 86400,
                     4, "HSET", fq, f"t:{campaign}", repr(round(now, 3)))
        cmds += (4, "HINCRBY", fq, f"u:{row['advertiser']}", 1, 3, "EXPIRE", fq, self.profile_ttl)

    def record_bad(self, row: dict, counter: str | None = None) -> None:
        """Append a rejected hit; the writer stores it in ``bad_events``."""
        cmds: list = []
        if counter:
            cmds += (4, "HINCRBY", METRICS_KEY, counter, 1)
        cmds += (7, "XADD", self.stream_key, "*", "t", "bad", "d", encode_row(row))
        self._run(args=cmds)

    def counters(self) -> dict[str, int]:
        """Counters shared by every process (kept in Redis, so gunicorn workers add up)."""
        return {k.decode(): int(v) for k, v in self.client.hgetall(METRICS_KEY).items()}

    def interests(self, uid: str, advertisers: int = 5, limit: int = 20,
                  now: float | None = None) -> tuple[list[Interest], Frequency]:
        """The visitor's latest advertisers (most recent first) and frequency state, in one round trip."""
        prefix = profile_prefix(uid)
        day = utc_day(now or time.time())
        rows, fq, today = self._read_interests(keys=[f"{prefix}:adv"], args=[prefix, limit, advertisers, day])
        interests = [
            Interest(adv.decode(), int(score) / 1e6, [s.decode() for s in recent], int(count),
                     {s.decode() for s in bought}, int(float(last_buy)) / 1e6)
            for adv, score, recent, count, bought, last_buy in rows
        ]
        frequency = Frequency(today={k.decode(): int(v) for k, v in zip(today[::2], today[1::2])})
        for key, value in zip(fq[::2], fq[1::2]):
            kind, _, name = key.decode().partition(":")
            if kind == "t":
                frequency.last_shown[name] = float(value)
            elif kind == "u":
                frequency.unclicked[name] = int(value)
        return interests, frequency

    def forget(self, uid: str) -> int:
        """Delete everything kept about a visitor in Redis; returns the number of keys removed."""
        prefix = profile_prefix(uid)
        advertisers = [a.decode() for a in self.client.zrange(f"{prefix}:adv", 0, -1)]
        keys = [f"{prefix}:adv", f"{prefix}:advbuy", f"{prefix}:fq"]
        keys += [f"{prefix}:fq:{utc_day(time.time() - d * 86400)}" for d in range(2)]
        for adv in advertisers:
            keys += [f"{prefix}:rv:{adv}", f"{prefix}:buy:{adv}"]
        return int(self.client.delete(*keys))

    def popular(self, advertiser: str, limit: int = 50, now: float | None = None) -> list[str]:
        """The advertiser's most wanted skus over the last days (views, carts, purchases weighted)."""
        now = now or time.time()
        keys = [popular_key(advertiser, utc_day(now - d * 86400)) for d in range(POPULAR_DAYS)]
        scores: dict[str, float] = {}
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zrevrange(key, 0, 200, withscores=True)
        for rows in pipe.execute():
            for sku, score in rows:
                scores[sku.decode()] = scores.get(sku.decode(), 0.0) + score
        return [s for s, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]

    def backlog(self, group: str) -> dict:
        """Stream length, the writer group's pending count and the age of the oldest entry (writer lag)."""
        length = self.client.xlen(self.stream_key)
        oldest = self.client.xrange(self.stream_key, count=1)
        age = round(max(0.0, time.time() - int(oldest[0][0].split(b"-")[0]) / 1000), 3) if oldest else 0.0
        pending = 0
        lag = None
        try:
            for g in self.client.xinfo_groups(self.stream_key):
                if g["name"].decode() == group:
                    pending = int(g["pending"])
                    lag = g.get("lag")
        except redis.ResponseError:  # no stream yet
            pass
        return {"length": int(length), "pending": pending, "lag": lag, "oldest_age_seconds": age}
