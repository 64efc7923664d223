"""The writer's side of the Redis stream: its consumer group, reads, acknowledgements, trimming.

Entries are read with ``XREADGROUP`` under the ``writer`` group, each writer process under its own
consumer name, so several writers share the stream and an entry read but never acknowledged stays
pending for the consumer that read it: its next start reads it again (id ``0``) and re-processes it.
"""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

GROUP = "writer"
# Entries per XREADGROUP and ids per XACK/XDEL command. Redis runs one command at a time, so a
# command over 50,000 entries would stall every pixel for tens of milliseconds; commands of this
# size keep each stall to a few milliseconds and cost nothing measurable in throughput.
COMMAND_CHUNK = 10_000


def ensure_group(client: redis.Redis, stream_key: str) -> None:
    """Create the consumer group (and the stream) unless it exists."""
    try:
        client.xgroup_create(stream_key, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def raw_client(client: redis.Redis) -> redis.Redis:
    """The same connections, but XREADGROUP replies left as hiredis built them.

    redis-py would otherwise turn every entry into a dict, a fifth of the writer's time when profiled.
    A Redis Cluster client is returned as it is: it finds the partition's primary (again after a
    failover) for each read, and ``read_into`` flattens its parsed entries.
    """
    if isinstance(client, RedisCluster):
        return client
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("XREADGROUP", lambda response, **_: response)
    return raw


def read_into(raw: redis.Redis, stream_key: str, consumer: str, ids: list[bytes], fields: list,
              last_id: str, count: int, block_ms: int | None) -> int:
    """One XREADGROUP of at most ``count`` entries appended to ``ids`` and ``fields``; returns how many came.

    ``last_id`` ``">"`` reads new entries, ``"0"`` this consumer's pending ones (deleted ones with
    ``None`` fields). ``raw`` is a ``raw_client``.
    """
    reply = raw.xreadgroup(GROUP, consumer, {stream_key: last_id}, count=count, block=block_ms)
    got = 0
    streams = reply.values() if isinstance(reply, dict) else (items for _stream, items in reply or ())  # RESP3, RESP2
    for items in streams:
        for entry_id, entry_fields in items:
            if isinstance(entry_fields, dict):  # parsed by redis-py (a cluster client)
                entry_fields = [part for pair in entry_fields.items() for part in pair]
            ids.append(entry_id)
            fields.append(entry_fields)
            got += 1
    return got


def acknowledge(client: redis.Redis, stream_key: str, ids: list[bytes], consumer: str | None = None) -> bool:
    """Acknowledge every id (ascending), then remove from the stream what the group has fully processed;
    returns whether ``consumer`` still holds entries pending below the first id (see ``stranded``).

    XDEL costs Redis about a microsecond per id, more than any other step on its side, while
    ``XTRIM MINID`` drops whole nodes of the stream at once. Everything below the group's
    low-water mark is processed: delivered (below the last delivered id, read first) and no
    longer pending (below the oldest pending id, read after), so acknowledged, so stored.
    The ids of this batch above the mark (another consumer holds older entries pending, e.g.
    one that crashed and was not restarted yet) are deleted one by one.
    """
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(ids), COMMAND_CHUNK):
        pipe.xack(stream_key, GROUP, *ids[start:start + COMMAND_CHUNK])
    pipe.xinfo_groups(stream_key)  # last delivered id first, oldest pending id second: see above
    pipe.xpending(stream_key, GROUP)
    below = _id_before(ids[0]) if consumer is not None else None
    if below is not None:
        pipe.xpending_range(stream_key, GROUP, "-", below, 1, consumername=consumer)
    replies = pipe.execute()
    older = replies.pop() if below is not None else []
    groups, pending = replies[-2:]
    low = _low_water(groups, pending)
    left = ids
    pipe = client.pipeline(transaction=False)
    if low is not None:
        left = [] if id_key(ids[-1]) < low else [i for i in ids if id_key(i) >= low]
        pipe.xtrim(stream_key, minid=f"{low[0]}-{low[1]}", approximate=False)
    for start in range(0, len(left), COMMAND_CHUNK):
        pipe.xdel(stream_key, *left[start:start + COMMAND_CHUNK])
    try:
        pipe.execute()
    except redis.ResponseError:  # XTRIM MINID needs Redis 6.2: delete one by one
        for start in range(0, len(ids), COMMAND_CHUNK):
            client.xdel(stream_key, *ids[start:start + COMMAND_CHUNK])
    return bool(older)


def stranded(client: redis.Redis, stream_key: str, consumer: str) -> bool:
    """Whether ``consumer`` holds any entry pending: asked while it holds none in hand, each one is stranded.

    A read of new entries moves them into the consumer's pending list in Redis as it runs. If its
    answer is lost (a connection reset by a failover, a timeout), redis-py's cluster client sends the
    read again, and the second answer carries the entries after them: nothing raises, and the
    entries of the first stay pending, delivered to a consumer that never saw them, until it reads
    its pending list again (``BatchWriter.recover``). Reads only move forward, so after a batch is
    acknowledged, entries still pending below its first id are such strays (``acknowledge`` asks
    that in its round trip); an idle writer asks for any entry at all.
    """
    return bool(client.xpending_range(stream_key, GROUP, "-", "+", 1, consumername=consumer))


def _id_before(entry_id: bytes | str) -> str | None:
    """The stream id just below ``entry_id`` (None below ``0-0``), for an inclusive range end."""
    ms, seq = id_key(entry_id)
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{2**64 - 1}" if ms else None


def pairs(fields: list) -> dict:
    """``{name: value}`` of a flat stream entry reply (a repeated name keeps its last value, as redis-py)."""
    return dict(zip(fields[::2], fields[1::2]))


def id_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def _low_water(groups: list[dict], pending: dict) -> tuple[int, int] | None:
    """The id below which the writer group has acknowledged every entry; None if unknown."""
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) != GROUP:
            continue
        ms, seq = id_key(group["last-delivered-id"])
        low = (ms, seq + 1)
        if pending.get("pending") and pending.get("min"):
            low = min(low, id_key(pending["min"]))
        return low
    return None
