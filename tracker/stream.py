"""The Redis side of tracking: the event stream and each visitor's profile.

A pixel hit costs one script call, or a share of one (``tracker.linger`` batches a web process's hits): the
event is appended to the stream (which the writer drains into ClickHouse) and the visitor's profile is
updated in the same call. An ad decision
also costs one round trip: a server-side script reads the advertisers the visitor engaged with most
recently, their recently viewed products and purchases there, and what they were shown (``interests``).

Key layout (``{T}`` is the hash tag of the visitor's stream partition, see ``tracker.partitions``:
the partition's stream, its counters and its visitors' profiles share one slot, so the hit's one
script and the ad's one read each run on the single Redis Cluster primary that owns it):

- ``p:{T}:<uid>:adv``             ZSET advertiser -> last interest time (µs), newest ``ADVERTISERS_MAX`` kept
- ``p:{T}:<uid>:rv:<advertiser>`` ZSET sku -> last view time (µs), newest ``profile_size`` kept
- ``p:{T}:<uid>:bought:<advertiser>`` ZSET sku -> purchase time (µs), newest ``BOUGHT_MAX`` kept (not advertised
                                  again)
- ``p:{T}:<uid>:advbuy``          ZSET advertiser -> last purchase time (µs), for "exclude recent buyers",
                                  newest ``ADVERTISERS_MAX`` kept
- ``p:{T}:<uid>:fq``              HASH ``t:<campaign>`` last impression (unix s), ``u:<advertiser>`` impressions
                                  since the last click (fatigue); at most ``FREQUENCY_FIELDS_MAX`` fields
- ``p:{T}:<uid>:fq:<day>``        HASH campaign -> impressions that UTC day (frequency cap), kept 2 days, same bound
- ``adserver:metrics:{T}``        HASH counter -> count: the partition's share, summed by ``counters``
                                  (with ``METRICS_KEY``, which single-key callers increment directly)
- ``pop:{advertiser}:<day>``      ZSET sku -> interest weight that day, kept 8 days; in the
                                  advertiser's own slot, so written by a second one-key script pipelined
                                  after the hit's (see ``EventStream.record``)

Upgrading from the layout keyed by ``p:{uid}`` (or changing the number of partitions) leaves the
old profile keys unread: they are caches with a TTL (``ADSERVER_PROFILE_TTL_DAYS``) and expire
by themselves, while visitors' profiles build up again from their next hits. Stream entries are
not caches: with one partition the stream keeps its name, and with more the writer that owns
partition 0 also drains the unpartitioned stream (``tracker.writer``). Lowering the number of
partitions strands the entries of the partitions dropped: drain them first (stop the web
processes, let the writers empty every stream, then restart with the new count).

Everything a visitor's hits can make Redis hold is bounded, because the pixel is public and a
cookie costs nothing:

- only skus of the advertiser's catalog enter a profile or popularity (``profile_skus``: the caller
  checks them, see ``adserver.services``); unknown skus stay in the event row, for reports. So
  ``pop:`` keys hold at most the catalog, and every member is at most ``MAX_SKU_LEN`` characters;
- a hit writes at most two profile keys (``rv`` and ``adv``, or ``bought`` and ``advbuy``; an
  impression ``fq`` and ``fq:<day>``), each capped as above; a visitor holds at most
  ``6 + 2 * ADVERTISERS_MAX`` keys (two days of ``fq:<day>``; ``hide``, see ``tracker.hides``).
  Dropping an advertiser from an index drops its per-advertiser key too, so ``forget`` finds every
  key from the two indexes;
- a first visit (a hit without a valid cookie: a new uid) writes its profile keys with the short
  ``new_visitor_ttl``, not the profile TTL: browsers that refuse our cookie make a new uid on every
  hit, and each would otherwise leave about 0.2-20 KB for 30 days. The next event recorded with that
  uid (its cookie came back) extends the whole profile to the profile TTL; a first visit's writes
  never shorten a TTL (a spooled first hit may be replayed after the second). Measured on Redis 7: a
  cookieless view of a catalog product leaves 2 keys, about 220 bytes, for ``new_visitor_ttl``; the
  most a hit can add is 2 keys of about 28 KB together (50 catalog skus of 100 four-byte characters;
  11 KB in ASCII), plus its stream entry until the writer has it;
- the ad's read is bounded by the same caps, whatever is in the keys: at most ``advertisers`` (5)
  advertisers, ``limit`` recent products, ``BOUGHT_MAX`` bought products each, and frequency hashes
  only when within ``FREQUENCY_FIELDS_MAX`` fields. (Redis' Lua interns every string a script reads,
  and crafted members of one hash value make that quadratic: 16,000 bought skus read whole cost
  0.62 s of Redis time per ad on Redis 6.2. The largest profile the caps allow, every string crafted
  to collide, costs 1.4 ms there and 0.4 ms on Redis 7.)

The stream itself has no TTL and no cap here: the writer removes what it has stored, and Redis'
``maxmemory-policy volatile-lru`` (``deploy/redis/redis.conf``) only ever evicts keys with a TTL,
that is the profiles, popularity and other cache-like keys, never an event not yet written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import redis
from redis.cluster import RedisCluster

from tracker.events import INTEREST_EVENTS, INTEREST_WEIGHTS
from tracker.once import new_once, once_args
from tracker.partitions import Partitions
from tracker.popularity import POPULAR_DAYS, add_popularity, popular_args, popular_key
from tracker.stream_entries import encode_row, entry_commands
from tracker.stream_scripts import POPULAR, READ_INTERESTS, RUN, RUN_CLUSTER

METRICS_KEY = "adserver:metrics"
BOUGHT_MAX = 50  # purchased products remembered per visitor and advertiser
ADVERTISERS_MAX = 20  # advertisers remembered per visitor (an ad reads the 5 most recent)
FREQUENCY_FIELDS_MAX = 256  # a frequency hash beyond this (more campaigns than any visitor sees) starts over
HIDES_MAX = 200  # products and stores a visitor dismissed, remembered at once (tracker/hides.py)
NEW_VISITOR_TTL = 3600  # seconds a first visit's profile lives until the cookie comes back
PROFILE_EVENTS = INTEREST_EVENTS | {"purchase"}  # events whose skus enter the profile and popularity
class Call(NamedTuple):
    """One event's writes, prepared: the ``RUN`` script's KEYS and ARGV in the partition's slot, its
    popularity (the day's key, the event's weight, the skus) for the ``POPULAR`` script, if any, its
    counter, and its stream payload."""

    partition: int
    keys: list
    args: list
    popular: tuple[str, float, list[str]] | None
    counter: str | None = None  # a shared metric it adds one to, summed per call (``counter_args``)
    # The event's JSON, appended to the stream with the call's other events (``entry_args``); None for
    # a rejected hit, whose ``XADD`` is in ``args``.
    row: bytes | None = None


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
    hidden: set[str] = field(default_factory=set)  # products and stores dismissed, see tracker.hides


class EventStream:
    """Appends events to the stream and keeps visitor profiles, in one round trip per hit."""

    def __init__(self, client: redis.Redis, stream_key: str, profile_size: int = 50, profile_ttl_days: int = 30,
                 new_visitor_ttl: int = NEW_VISITOR_TTL, partitions: int = 1) -> None:
        self.client = client
        self.stream_key = stream_key
        self.partitions = Partitions(stream_key, partitions)
        self.profile_size = profile_size
        self.profile_ttl = profile_ttl_days * 86400
        self.new_visitor_ttl = min(new_visitor_ttl, self.profile_ttl)
        self._read_interests = client.register_script(READ_INTERESTS)
        # asked once: ``RedisCluster`` is a typing Protocol, whose isinstance check costs ~1.3 µs a time
        self.cluster = isinstance(client, RedisCluster)
        self.run_script = client.register_script(RUN_CLUSTER if self.cluster else RUN)
        self.popular_script = client.register_script(POPULAR)

    def prefix(self, uid: str) -> str:
        """Prefix of the visitor's profile keys (see the module's docstring)."""
        return self.partitions.profile(uid)

    def record(self, row: dict, uid: str | None = None, counter: str | None = None,
               profile_skus: list[str] | None = None, first_visit: bool = False) -> None:
        """Append an accepted event and, for a known visitor, fold it into their profile.

        ``counter`` names a shared metric incremented in the same round trip (see ``counters``).
        ``profile_skus``: the row's skus that may enter the profile and popularity (those of the
        advertiser's catalog); None takes the row's. ``first_visit``: the uid was made for this hit,
        so its profile keys get the short ``new_visitor_ttl``; any other event of a uid extends them.
        """
        call = self.prepare(row, uid, counter, profile_skus, first_visit)
        self.send(call, self.once(call.partition))

    def prepare(self, row: dict, uid: str | None = None, counter: str | None = None,
                profile_skus: list[str] | None = None, first_visit: bool = False) -> Call:
        """The writes of ``record`` (same arguments), not sent: ``send`` sends one, ``tracker.linger`` several."""
        partition = self.partitions.of(uid or row.get("uid"))  # a visitor's events stay in order
        stream = self.partitions.stream(partition)
        keys = [stream]
        cmds: list = []
        event, advertiser = row["event"], row["advertiser"]
        skus = (row.get("skus") or []) if profile_skus is None else profile_skus
        now = row.get("ts") or time.time()
        prefix = self.partitions.profile(uid) if uid else ""
        popular: tuple | None = None
        ttl = self.new_visitor_ttl if first_visit else self.profile_ttl
        expire = "@EXPIREMAX" if first_visit else "EXPIRE"
        if uid and not first_visit and not row.get("invalid"):
            keys += (f"{prefix}:adv", f"{prefix}:advbuy")  # RUN: every key a step writes is named
            cmds += (4, "@PROMOTE", prefix, self.profile_ttl, self.new_visitor_ttl)
        if uid and skus and event in PROFILE_EVENTS:
            us = int(now * 1_000_000)  # microseconds: two hits in the same millisecond keep their order
            if event in INTEREST_EVENTS:
                index, kind, keep = f"{prefix}:adv", ":rv:", self.profile_size
            else:
                index, kind, keep = f"{prefix}:advbuy", ":bought:", BOUGHT_MAX
            key = f"{prefix}{kind}{advertiser}"
            keys += (key, index)
            cmds.append(2 + 2 * len(skus))
            cmds += ("ZADD", key)
            for sku in skus:
                cmds += (us, sku)
            cmds += (3, "@TRIM", key, keep, 3, expire, key, ttl,
                     4, "ZADD", index, us, advertiser, 5, "@CAPINDEX", index, ADVERTISERS_MAX, prefix, kind,
                     3, expire, index, ttl)
            popular = (popular_key(advertiser, utc_day(now)), INTEREST_WEIGHTS[event], skus)
        if uid and event in ("impression", "click") and not row.get("invalid"):
            keys += self._frequency(cmds, prefix, row, now)
        return Call(partition, keys, cmds, popular, counter or None, encode_row(row))

    def once(self, partition: int) -> tuple[str, int]:
        """A fresh call id for ``send`` (see ``@ONCE`` in tracker/stream_scripts.py)."""
        return new_once(self.partitions, partition)

    def send(self, call: Call, once: tuple[str, int]) -> bool:
        """Run one prepared event's writes (see ``_record_with_popularity``) as the call ``once``.

        A call sent again with the ``once`` of an earlier try that did run (its answer lost) writes
        nothing and returns False; True when it wrote now.
        """
        head_keys, head_args = self.call_head([call], once)
        keys, args = [*call.keys, *head_keys], [*head_args, *call.args]
        if call.popular is None:
            return self.run_script(keys=keys, args=args) != -1
        weights: dict[str, dict[str, float]] = {}
        add_popularity(weights, call)
        return self._record_with_popularity(keys, args, popular_args(weights))

    def send_all(self, calls: list[Call], once: tuple[str, int]) -> bool:
        """Run several prepared events' writes (all in one slot) as one atomic call ``once``, then their
        popularity if it wrote now: how a batch of ``tracker.linger`` that failed is replayed. Returns
        False if an earlier try of the same call had written it."""
        head_keys, head_args = self.call_head(calls, once)
        keys = list(dict.fromkeys([k for call in calls for k in call.keys] + head_keys))
        args = head_args + [a for call in calls for a in call.args]
        if self.run_script(keys=keys, args=args) == -1:
            return False
        weights: dict[str, dict[str, float]] = {}
        for call in calls:
            add_popularity(weights, call)
        if weights:
            try:
                for pop_keys, pop_args in self.popular_calls(weights):
                    self.popular_script(keys=pop_keys, args=pop_args)
            except redis.RedisError:  # a lost weight in a cache; the events themselves are written
                pass
        return True

    def call_head(self, calls: list[Call], once: tuple[str, int]) -> tuple[list, list]:
        """The KEYS and ARGV a ``RUN`` call of ``calls`` carries before their own: its id (``@ONCE``),
        their counters, summed (``counter_args``), and their stream entries (``entry_args``); for a
        single call, a replay and a lingered batch alike."""
        counter_keys, counter_args = self.counter_args(calls)
        return [once[0], *counter_keys], once_args(once) + counter_args + self.entry_args(calls)

    def entry_args(self, calls: list[Call]) -> list:
        """ARGV appending the calls' events to their partitions' streams, in order: one entry per
        partition where it can, not one per event (``tracker.stream_entries``: an entry costs Redis
        and the writer far more than its bytes)."""
        rows: dict[int, list[bytes]] = {}
        for call in calls:
            if call.row is not None:
                rows.setdefault(call.partition, []).append(call.row)
        args: list = []
        for partition, payloads in rows.items():
            args += entry_commands(self.partitions.stream(partition), payloads)
        return args

    def counter_args(self, calls: list[Call]) -> tuple[list, list]:
        """KEYS and ARGV adding the calls' counters, summed: one ``HINCRBY`` per partition and counter
        rather than one per event (each command costs Redis its Lua round more than the command itself)."""
        sums: dict[tuple[int, str], int] = {}
        for call in calls:
            if call.counter:
                sums[call.partition, call.counter] = sums.get((call.partition, call.counter), 0) + 1
        keys: list = []
        args: list = []
        for (partition, counter), count in sums.items():
            key = self.partitions.metrics(partition)
            keys.append(key)
            args += (4, "HINCRBY", key, counter, count)
        return keys, args

    def popular_calls(self, weights: dict[str, dict[str, float]]) -> list[tuple[list, list]]:
        """``POPULAR``'s KEYS and ARGV for ``weights``: one call, or one per slot on a cluster."""
        if not self.cluster:
            return [popular_args(weights)]
        by_slot: dict[int, dict] = {}
        for key, skus in weights.items():
            by_slot.setdefault(self.client.keyslot(key), {})[key] = skus
        return [popular_args(w) for w in by_slot.values()]

    def _record_with_popularity(self, keys: list, cmds: list, popular: tuple[list, list]) -> bool:
        """The hit's script, then its popularity script (``popular``: its KEYS and ARGV).

        Popularity is in the advertiser's slot, not the visitor's, so it cannot join the hit's
        atomic script on a cluster. Only the hit's script decides the outcome: if it failed, the
        caller spools the hit and replays it whole; a failed popularity write is a lost weight in
        a cache, never a reason to append the stream entry twice. So on a cluster, where the two
        may be on different primaries and one of them down, they are two calls; on one server
        they are pipelined (one round trip), called by hash (a pipeline given ``Script`` objects
        would ask the server for them on every call) and loaded on the rare ``NOSCRIPT``.
        """
        pop_keys, pop_args = popular
        if self.cluster:
            if self.run_script(keys=keys, args=cmds) == -1:
                return False  # written by an earlier try, its popularity with it
            try:
                self.popular_script(keys=pop_keys, args=pop_args)
            except redis.RedisError:  # see above: the hit itself is recorded
                pass
            return True
        pipe = self.client.pipeline(transaction=False)
        pipe.evalsha(self.run_script.sha, len(keys), *keys, *cmds)
        pipe.evalsha(self.popular_script.sha, len(pop_keys), *pop_keys, *pop_args)
        hit, pop = pipe.execute(raise_on_error=False)
        if isinstance(hit, redis.exceptions.NoScriptError):
            hit = self.run_script(keys=keys, args=cmds)
        elif isinstance(hit, Exception):
            raise hit
        if isinstance(pop, redis.exceptions.NoScriptError):
            try:
                self.popular_script(keys=pop_keys, args=pop_args)
            except redis.RedisError:  # see above: the hit itself is recorded
                pass
        return hit != -1

    def _frequency(self, cmds: list, prefix: str, row: dict, now: float) -> list[str]:
        """Frequency caps and fatigue: count the impression, or reset the streak on a click; returns the keys."""
        fq = f"{prefix}:fq"
        if row["event"] == "click":
            cmds += (3, "@CAPHASH", fq, FREQUENCY_FIELDS_MAX - 1, 4, "HSET", fq, f"u:{row['advertiser']}", 0)
            return [fq]
        cmds += (3, "@CAPHASH", fq, FREQUENCY_FIELDS_MAX - 2)  # room for the (at most) two fields added below
        campaign = row.get("campaign") or ""
        keys = [fq]
        if campaign:
            day = f"{fq}:{utc_day(now)}"
            keys.append(day)
            cmds += (3, "@CAPHASH", day, FREQUENCY_FIELDS_MAX - 1, 4, "HINCRBY", day, campaign, 1,
                     3, "EXPIRE", day, 2 * 86400, 4, "HSET", fq, f"t:{campaign}", repr(round(now, 3)))
        cmds += (4, "HINCRBY", fq, f"u:{row['advertiser']}", 1, 3, "EXPIRE", fq, self.profile_ttl)
        return keys

    def record_bad(self, row: dict, counter: str | None = None) -> None:
        """Append a rejected hit (to any partition); the writer stores it in ``bad_events``."""
        call = self.prepare_bad(row, counter)
        self.send(call, self.once(call.partition))

    def prepare_bad(self, row: dict, counter: str | None = None, partition: int | None = None) -> Call:
        """The writes of ``record_bad``, not sent (to ``partition``, or any)."""
        partition = self.partitions.of(None) if partition is None else partition
        keys = [self.partitions.stream(partition)]
        cmds = [7, "XADD", keys[0], "*", "t", "bad", "d", encode_row(row)]
        return Call(partition, keys, cmds, None, counter or None)

    def counters(self) -> dict[str, int]:
        """Counters shared by every process (kept in Redis, so gunicorn workers add up): every
        partition's share plus ``METRICS_KEY``, summed."""
        pipe = self.client.pipeline(transaction=False)
        for key in [METRICS_KEY, *(self.partitions.metrics(p) for p in range(self.partitions.count))]:
            pipe.hgetall(key)
        totals: dict[str, int] = {}
        for shares in pipe.execute():
            for k, v in shares.items():
                totals[k.decode()] = totals.get(k.decode(), 0) + int(v)
        return totals

    def interests(self, uid: str, advertisers: int = 5, limit: int = 20,
                  now: float | None = None) -> tuple[list[Interest], Frequency]:
        """The visitor's latest advertisers (most recent first) and frequency state, in one round trip."""
        prefix = self.prefix(uid)
        now = now or time.time()
        day = utc_day(now)
        rows, fq, today, hidden = self._read_interests(
            keys=[f"{prefix}:adv", f"{prefix}:advbuy", f"{prefix}:fq", f"{prefix}:fq:{day}", f"{prefix}:hide"],
            args=[prefix, limit, advertisers, day, BOUGHT_MAX, FREQUENCY_FIELDS_MAX, int(now), HIDES_MAX])
        interests = [
            Interest(adv.decode(), int(score) / 1e6, [s.decode() for s in recent], int(count),
                     {s.decode() for s in bought}, int(float(last_buy)) / 1e6)
            for adv, score, recent, count, bought, last_buy in rows
        ]
        frequency = Frequency(today={k.decode(): int(v) for k, v in zip(today[::2], today[1::2])},
                              hidden={m.decode() for m in hidden})
        for key, value in zip(fq[::2], fq[1::2]):
            kind, _, name = key.decode().partition(":")
            if kind == "t":
                frequency.last_shown[name] = float(value)
            elif kind == "u":
                frequency.unclicked[name] = int(value)
        return interests, frequency

    def forget(self, uid: str) -> int:
        """Delete everything kept about a visitor in Redis; returns the number of keys removed."""
        prefix = self.prefix(uid)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(f"{prefix}:adv", 0, -1).zrange(f"{prefix}:advbuy", 0, -1)
        viewed, bought = pipe.execute()
        keys = [f"{prefix}:adv", f"{prefix}:advbuy", f"{prefix}:fq", f"{prefix}:hide"]
        keys += [f"{prefix}:fq:{utc_day(time.time() - d * 86400)}" for d in range(2)]
        keys += [f"{prefix}:rv:{a.decode()}" for a in viewed]
        keys += [f"{prefix}:bought:{a.decode()}" for a in bought]
        # ``buy:`` sets (the uncapped layout of bought products before ``bought:``) live until their TTL.
        keys += [f"{prefix}:buy:{a.decode()}" for a in set(viewed) | set(bought)]
        return int(self.client.delete(*keys))  # one slot (one hash tag): one command on a cluster too

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
        """Over every partition: entries in the streams, the writer groups' pending and unread
        counts, and the age of the oldest entry (the writer lag)."""
        length = pending = 0
        lag: int | None = 0
        oldest_ms: int | None = None
        for stream in self.partitions.streams():
            length += int(self.client.xlen(stream))
            oldest = self.client.xrange(stream, count=1)
            if oldest:
                ms = int(oldest[0][0].split(b"-")[0])
                oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
            found = None
            try:
                for g in self.client.xinfo_groups(stream):
                    if g["name"].decode() == group:
                        found = g
            except redis.ResponseError:  # no stream yet
                pass
            if found is not None:
                pending += int(found["pending"])
            part_lag = found.get("lag") if found is not None else None
            lag = None if lag is None or part_lag is None else lag + int(part_lag)
        age = round(max(0.0, time.time() - oldest_ms / 1000), 3) if oldest_ms is not None else 0.0
        return {"length": length, "pending": pending, "lag": lag, "oldest_age_seconds": age}
