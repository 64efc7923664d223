"""The writers of one process: one ``BatchWriter`` per owned partition, inserting together, run side by side.

``python -m tracker.writer`` (static partitions or leases) and the embedded mode compose writers
from here; ``tracker.writer.pipeline`` holds the loop of one.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

import redis

from tracker.clickhouse import ClickHouse
from tracker.partitions import Partitions
from tracker.writer.insert_group import InsertGroup
from tracker.writer.pipeline import BatchWriter

log = logging.getLogger(__name__)


def partition_writers(client: redis.Redis, ch: ClickHouse, partitions: Partitions, owned: list[int], consumer: str,
                      batch_size: int = 5000, batch_seconds: float = 1.0, crash_at: str = "",
                      forget_interval: float = 0.0, forget_ch: ClickHouse | None = None,
                      may_insert: Callable[[], bool] | None = None,
                      insert_group: InsertGroup | None = None) -> list[BatchWriter]:
    """One ``BatchWriter`` per owned partition, each on the partition's stream and consumer group.

    Exactly-once holds per partition as for a single stream: a partition's entries are acknowledged
    only after their insert, and recovered under the same consumer name; their rows' ``stream_id``
    is ``<partition>/<id>`` (a bare id with one partition), unique across partitions. The forget job runs beside
    the first of them only. The owner of partition 0 of a partitioned stream also drains the
    unpartitioned stream an earlier single-partition deployment left (empty, it costs a blocked read).
    ``may_insert``: see ``BatchWriter``. Without it, several writers insert their batches together
    (``tracker.writer.insert_group``): in ``insert_group`` if given, else in a group of their own
    (``insert_together``).
    """
    streams = [(partitions.stream(p), f"{p}/" if partitions.count > 1 else "") for p in owned]
    if partitions.count > 1 and 0 in owned and _exists(client, partitions.stream_key):
        streams.append((partitions.stream_key, ""))
    writers = [BatchWriter(client, ch, stream, consumer, batch_size, batch_seconds, crash_at=crash_at,
                           forget_interval=forget_interval if n == 0 else 0.0, forget_ch=forget_ch, id_prefix=prefix,
                           may_insert=may_insert, insert_group=insert_group if may_insert is None else None)
               for n, (stream, prefix) in enumerate(streams)]
    if insert_group is None and may_insert is None:
        insert_together(writers)
    return writers


def insert_together(writers: list[BatchWriter]) -> None:
    """Make ``writers`` (none under a lease) insert their batches in one ``InsertGroup``; one alone needs none."""
    group = InsertGroup(len(writers)) if len(writers) > 1 else None
    for writer in writers:
        writer.insert_group = group


def _exists(client: redis.Redis, key: str) -> bool:
    try:
        return bool(client.exists(key))
    except redis.RedisError as exc:
        log.warning("could not look for an unpartitioned stream %s (%s): not drained by this run", key, exc)
        return False


def run_all(writers: list[BatchWriter]) -> None:
    """Run the writers side by side until every one is stopped (``stop_all``) and has flushed."""
    if len(writers) == 1:
        writers[0].run()
        return
    threads = [threading.Thread(target=w.run, name=f"event-writer-{n}", daemon=True) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stop_all(writers: list[BatchWriter]) -> None:
    for writer in writers:
        writer.stop()


def start_thread(writer: BatchWriter) -> threading.Thread:
    """Run a writer in a daemon thread (embedded mode); at exit it is stopped and flushed first."""
    thread = threading.Thread(target=writer.run, name="event-writer", daemon=True)
    thread.start()

    def stop() -> None:
        writer.stop()
        thread.join(timeout=10)

    atexit.register(stop)  # registered after the embedded stores' exit hook, so it runs before it
    return thread
