"""The recovery check: which stream ids of a batch read again ClickHouse already holds.

A batch is read again after a crash between insert and acknowledgement, after an insert that failed
but may have landed, or when Redis delivers entries again (``BatchWriter._check_delivery``). Its
entries already stored are left out, so nothing is counted twice; the check must therefore never
miss a stored row.

On a single server it is exact: an insert that returned is visible to the next query.

On a cluster it reads ``events_local`` and ``bad_events_local`` on every replica of every shard, not
the ``Distributed`` tables: those read one replica per shard, and the replica they pick may not have
fetched yet the part its twin stored (replication is asynchronous). A row the writer inserted sits on
at least one replica (inserts are synchronous, ``insert_distributed_sync``, so nothing waits in a
node's send queue), and the union over all replicas is exactly what is stored.

A replica that cannot be reached is the case this module is about: it may hold a part nobody else has
yet. ReplicatedMergeTree commits every part in ZooKeeper together with a log entry telling the other
replicas to fetch it (a part written to disk but not committed is detached when its node starts
again, so it was never stored). A live twin of the same shard that has copied the whole log into its
queue (``log_pointer > log_max_index``, read from ZooKeeper) and has no fetch left in it
(``inserts_in_queue = 0``) holds every part committed on that shard up to that moment, whichever
replica wrote it; read *after* that check, it answers for the missing replica. Without such a twin
(the missing replica wrote parts its twin could not fetch yet, or the whole shard is down) the check
fails: the batch stays pending and is retried, rather than inserted a second time.
"""

from __future__ import annotations

import logging

from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError, StoreUnavailable
from tracker.writer.rows import utc_datetime

log = logging.getLogger(__name__)

RECOVERY_WINDOW = 3600  # seconds around a pending batch searched for rows already stored
RECOVERY_CHUNK = 5_000  # stream ids per "already stored?" query (about 100 KB of SQL)
STORED_TABLES = ("events", "bad_events")  # where a stream entry can land


def already_stored(ch: ClickHouse, ids: list[str]) -> set[str]:
    """Stream ids (``[<partition>/]<ms>-<seq>``) among ``ids`` that ClickHouse already has."""
    if not ids:
        return set()
    if not ch.cluster:
        return _stored_in([(ch, table) for table in STORED_TABLES], ids)
    replicas = ch.replicas()
    try:
        live = _answering(replicas)
        for missing in (r for r in replicas if r not in live):
            twins = [r for r in live if r.shard == missing.shard]
            if not any(_holds_every_committed_part(twin) for twin in twins):
                raise StoreUnavailable(
                    f"ClickHouse replica {missing.describe()} of shard {missing.shard} does not answer and no "
                    "replica of its shard has every part committed there: cannot tell what is stored yet")
            log.info("replica %s does not answer: its shard's caught-up twin answers for it", missing.describe())
        return _stored_in([(r, f"{table}_local") for r in live for table in STORED_TABLES], ids)
    finally:
        for replica in replicas:
            replica.close()


def _stored_in(sources: list[tuple[ClickHouse, str]], ids: list[str]) -> set[str]:
    ms = [int(i.rpartition("/")[2].split("-")[0]) / 1000 for i in ids]
    lo, hi = utc_datetime(min(ms) - RECOVERY_WINDOW), utc_datetime(max(ms) + RECOVERY_WINDOW)
    found: set[str] = set()
    # In chunks: a retried batch of 50,000 ids would be ~1 MB of SQL, over ClickHouse's max_query_size.
    for start in range(0, len(ids), RECOVERY_CHUNK):
        chunk = tuple(ids[start:start + RECOVERY_CHUNK])
        for source, table in sources:
            rows = source.execute(
                f"SELECT stream_id FROM {table} WHERE inserted_at >= %(lo)s AND inserted_at <= %(hi)s "
                "AND stream_id IN %(ids)s",
                {"lo": lo, "hi": hi, "ids": chunk},
            )
            found.update(r[0] for r in rows)
    return found


def _answering(replicas: list[ClickHouse]) -> list[ClickHouse]:
    live = []
    for replica in replicas:
        try:
            replica.ping()
            live.append(replica)
        except StoreError:
            pass
    return live


def _holds_every_committed_part(replica: ClickHouse) -> bool:
    """Whether ``replica`` has fetched every part its shard committed of the tables a batch lands in."""
    tables = tuple(f"{table}_local" for table in STORED_TABLES)
    rows = replica.execute(
        "SELECT table, log_max_index, log_pointer, inserts_in_queue, zookeeper_path FROM system.replicas "
        "WHERE database = %(db)s AND table IN %(tables)s", {"db": replica.database, "tables": tables})
    if len(rows) != len(tables):
        return False
    for _table, log_max_index, log_pointer, inserts_in_queue, path in rows:
        if inserts_in_queue:
            return False
        if log_pointer > log_max_index:
            continue
        # 0 and 0: either the log is empty (nothing ever committed: nothing to miss) or this replica has
        # not copied its first entry yet; ZooKeeper tells which.
        if log_pointer == log_max_index == 0:
            (entries,), = replica.execute("SELECT count() FROM system.zookeeper WHERE path = %(path)s",
                                          {"path": f"{path}/log"})
            if entries == 0:
                continue
        return False
    return True
