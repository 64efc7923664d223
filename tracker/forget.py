"""Forgetting visitors in ClickHouse as a queue: requests are recorded, a periodic job deletes them in batches.

Deleting rows in ClickHouse is a mutation that rewrites the parts of a table, and finding a
visitor's rows scans it (``uid`` leads no sorting key of ``events``, and ClickHouse 18.16 has no
data-skipping indices). Done per request, any page could make its visitors' browsers pile up
mutations. So a request only adds the visitor's id to a Redis sorted set (``request_forget``:
``ZADD NX``, a repeated id keeps its place; at most ``QUEUE_LIMIT`` ids), and ``run_pending``, run by
the writer every ``ADSERVER_FORGET_INTERVAL`` seconds and by ``python -m adserver forget-pending``,
deletes the oldest ``BATCH`` queued visitors with one ``ALTER TABLE ... DELETE WHERE uid IN
%(uids)s`` per table holding any of their rows (``tracker.retention.forget_visitors``), then takes
them off the queue. A run fails or is interrupted: they stay queued and the next run does them.

While a previous deletion has not finished on some table, a run defers: mutations never pile up,
however many requests arrive. The queue lives in the Redis that already holds accepted events on
their way to ClickHouse (with its append-only file), so it is as durable as the rows it will delete;
like the stream, its key has no expiry, which an eviction policy of expiring keys (``volatile-lru``)
never drops.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from tracker.clickhouse import ClickHouse
from tracker.retention import forget_visitors

log = logging.getLogger(__name__)

QUEUE_KEY = "adserver:forget"
# Visitors per run, and so per ``IN`` list: 5,000 ids of at most 32 characters, quoted, are ~180 KB
# of SQL, under ClickHouse's default ``max_query_size`` (256 KiB) on both backends.
BATCH = 5_000
# Queued visitors at most (~2 MB of Redis); a request beyond is refused until the job catches up.
QUEUE_LIMIT = 50_000
# Visitor ids are 22 base64url characters (tracker/identity.py); anything else in the queue is dropped.
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")

# Adds the id unless the queue is full (an id already queued is always accepted, and keeps its
# place); answers the id's rank from the oldest, or -1 when full. One script: check and add are atomic.
_ENQUEUE = """
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
if rank then return rank end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return redis.call('ZRANK', KEYS[1], ARGV[1])
"""


class QueueFull(Exception):
    """The queue holds ``QUEUE_LIMIT`` visitors: the request must be tried again later."""


@dataclass
class ForgetRun:
    """What one run of the job did."""

    visitors: int = 0  # visitors whose rows were scheduled for deletion
    rows: dict[str, int] = field(default_factory=dict)  # rows found per table
    mutations: dict[str, int] = field(default_factory=dict)  # deletions scheduled per table (0 or 1)
    remaining: int = 0  # visitors still queued after the run
    discarded: int = 0  # queue entries that were not visitor ids
    deferred: str = ""  # why the run did nothing while visitors wait


def request_forget(client: redis.Redis, uid: str, now: float | None = None) -> int:
    """Queue ``uid`` for deletion; returns its rank (0: next). Raises ``QueueFull`` or ``ValueError``."""
    if not _ID.match(uid):
        raise ValueError("not a visitor id")
    rank = int(client.register_script(_ENQUEUE)(keys=[QUEUE_KEY], args=[uid, time.time() if now is None else now, QUEUE_LIMIT]))
    if rank < 0:
        raise QueueFull(f"{QUEUE_LIMIT} visitors are already waiting to be forgotten")
    return rank


def pending(client: redis.Redis) -> int:
    """Visitors waiting to be forgotten."""
    return int(client.zcard(QUEUE_KEY))


def runs_until_done(rank: int) -> int:
    """Runs of the job until the visitor at ``rank`` is forgotten (1: the next one)."""
    return rank // BATCH + 1


def unfinished_deletions(ch: ClickHouse) -> dict[str, int]:
    """Forget deletions (``uid IN`` mutations) not finished yet, per table."""
    rows = ch.execute(
        "SELECT table, count() FROM system.mutations WHERE database = %(db)s AND is_done = 0 "
        "AND command LIKE '%%uid IN%%' GROUP BY table ORDER BY table",
        {"db": ch.database},
    )
    return {table: int(count) for table, count in rows}


def run_pending(ch: ClickHouse, client: redis.Redis, batch: int = BATCH) -> ForgetRun:
    """Delete the rows of the oldest ``batch`` queued visitors: one mutation per table that has any."""
    run = ForgetRun()
    queued: Sequence[bytes] = client.zrange(QUEUE_KEY, 0, batch - 1)
    uids, garbage = [], []
    for raw in queued:
        text = raw.decode("utf-8", "replace")
        (uids if _ID.match(text) else garbage).append(raw)
    if garbage:
        client.zrem(QUEUE_KEY, *garbage)
        run.discarded = len(garbage)
        log.warning("forget queue: dropped %d entries that are not visitor ids", len(garbage))
    if uids:
        busy = unfinished_deletions(ch)
        if busy:
            run.deferred = "a previous deletion is still running on " + ", ".join(sorted(busy))
            log.warning("forget job deferred: %s; %d visitor(s) wait", run.deferred, pending(client))
        else:
            run.rows = forget_visitors(ch, sorted(u.decode() for u in uids))
            run.mutations = {table: 1 for table, count in run.rows.items() if count}
            client.zrem(QUEUE_KEY, *uids)
            run.visitors = len(uids)
    run.remaining = pending(client)
    return run


def run_periodically(ch: ClickHouse, client: redis.Redis, interval: float, stop: threading.Event) -> None:
    """Run the job now and then every ``interval`` seconds until ``stop`` is set; failures are retried."""
    while not stop.is_set():
        try:
            run = run_pending(ch, client)
            if run.visitors:
                log.info("forgot %d visitor(s): deletions scheduled on %s; %d still queued",
                         run.visitors, ", ".join(run.mutations) or "no table", run.remaining)
        except Exception as exc:  # noqa: BLE001 - the queue keeps the visitors; the next run retries
            log.warning("forget job failed (%s); retrying in %.0fs", exc, interval)
        stop.wait(interval)


def start_periodic(ch: ClickHouse, client: redis.Redis, interval: float, stop: threading.Event) -> threading.Thread:
    """``run_periodically`` in a daemon thread (the writer's companion)."""
    thread = threading.Thread(target=run_periodically, args=(ch, client, interval, stop), name="forget-job",
                              daemon=True)
    thread.start()
    return thread
