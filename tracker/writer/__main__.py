"""``python -m tracker.writer [--partitions 0-3 | --partitions auto]``: drain the stream until SIGTERM or SIGINT.

It refuses to start (exit status 3) while a migration is pending (run ``python -m adserver migrate``
first), or while ClickHouse cannot be reached to tell.

``--partitions`` names the stream partitions this process drains (``3``, ``0-3``, ``0-1,4-5``; all of
``ADSERVER_STREAM_PARTITIONS`` by default): run one process per range, the ranges disjoint and
covering every partition; each partition's entries are then stored exactly once (``tracker.partitions``).
``--partitions auto`` shares the partitions with the other ``auto`` writers through leases in Redis
(``tracker.writer.leases``): start or stop writers at will, a dead writer's partitions move to the
others after one to two ``ADSERVER_WRITER_LEASE_SECONDS``. Each process needs its own
``ADSERVER_WRITER_NAME``: a writer refuses to start (exit status 2) while a namesake is alive.

Beside the stream, it runs the forget job every ``ADSERVER_FORGET_INTERVAL`` seconds (tracker/forget.py).

Settings come from the environment (``tracker.settings.load_settings``); ``ADSERVER_WRITER_CRASH_AT``
names a point where the process kills itself, for the fault-injection tests of exactly-once.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import threading

from tracker import forget, schema
from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError
from tracker.partitions import Partitions, parse_range
from tracker.settings import Settings, SettingsError, load_settings
from tracker.stores import Stores
from tracker.writer.fleet import insert_together, partition_writers, run_all, stop_all
from tracker.writer.leases import LeaseManager, NameInUse
from tracker.writer.pipeline import BatchWriter

log = logging.getLogger("tracker.writer")

FULL_COLLECTION_SECONDS = 30.0  # cyclic garbage (threads, sockets, exceptions) waits at most this long


def main(argv: list[str] | None = None) -> int:
    """Run one writer process; returns its exit status (2: invalid settings or arguments; 3: schema not current)."""
    parser = argparse.ArgumentParser(prog="python -m tracker.writer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", metavar="FIRST-LAST",
                        help="stream partitions to drain, like 0-3 or 0-1,4-5 (default: all), or auto: shared "
                             "with the other auto writers through leases (each with its own ADSERVER_WRITER_NAME)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        partitions = Partitions(settings.stream_key, settings.stream_partitions)
    except (SettingsError, ValueError) as exc:
        log.error("invalid settings: %s", exc)
        return 2
    auto = args.partitions == "auto"
    try:
        owned = (parse_range(args.partitions, partitions.count) if args.partitions and not auto
                 else list(range(partitions.count)))
    except ValueError as exc:
        log.error("invalid --partitions: %s, or auto", exc)
        return 2
    stores = Stores(settings)
    ch = stores.clickhouse()
    try:  # only `python -m adserver migrate` changes the schema: a writer never runs on an older one
        schema.require_current(ch)
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return 3
    # The forget job gets a connection of its own on a server (chdb has one per process).
    forget_ch = Stores(settings).clickhouse() if settings.clickhouse_url else ch
    if auto:
        return _run_auto(settings, stores, ch, forget_ch, partitions)
    # One ClickHouse connection per partition on a server, as with leases: a connection serves one query
    # at a time, and partitions sharing one would insert in turn, each batch's rows waiting for the others'.
    # Their batches still go into one insert per table and round (tracker/writer/insert_group.py).
    client = stores.redis("writer")
    writers = [
        writer
        for n, partition in enumerate(owned)
        for writer in partition_writers(
            client, (Stores(settings).clickhouse() if settings.clickhouse_url and n else ch), partitions,
            [partition], settings.writer_name, settings.writer_batch_size, settings.writer_batch_seconds,
            crash_at=settings.writer_crash_at, forget_interval=settings.forget_interval if n == 0 else 0.0,
            forget_ch=forget_ch,
        )
    ]
    insert_together(writers)
    signal.signal(signal.SIGTERM, lambda *_: stop_all(writers))
    signal.signal(signal.SIGINT, lambda *_: stop_all(writers))
    _tune_gc()
    log.info("writer %s draining %s", settings.writer_name, ", ".join(w.stream_key for w in writers))
    run_all(writers)
    log.info("writer stopped after %d rows", sum(w.written for w in writers))
    return 0


def _tune_gc(every: float = FULL_COLLECTION_SECONDS, stop: threading.Event | None = None) -> threading.Thread:
    """Automatic collection off, a full collection every ``every`` seconds from a thread of its own.

    A batch allocates hundreds of thousands of small containers that live until its insert: the
    collector's automatic passes walk them again and again (with the default thresholds they
    doubled the cost of reading and building; with thresholds raised to 100,000 they still took
    ~9 % of the writer's CPU). They hold no cycles. Start-up's objects are frozen out of every
    pass; the timed collection bounds how long real cyclic garbage waits, whether or not the
    process holds partitions (a writer under leases may hold none for hours).
    """
    gc.freeze()
    gc.disable()
    stop = stop or threading.Event()

    def collect() -> None:
        while not stop.wait(every):
            gc.collect()

    thread = threading.Thread(target=collect, name="writer-gc", daemon=True)
    thread.start()
    return thread


def _run_auto(settings: Settings, stores: Stores, ch: ClickHouse, forget_ch: ClickHouse,
              partitions: Partitions) -> int:
    """``--partitions auto``: the partitions this process drains come and go with its leases."""
    client = stores.redis("writer")
    # One ClickHouse connection per partition on a server: an insert never waits behind another
    # partition's, so the time it may take is the ClickHouse timeout the lease is checked against.
    connections: dict[int, ClickHouse] = {}

    def writers_for(partition: int, may_insert) -> list[BatchWriter]:
        if partition not in connections:
            connections[partition] = Stores(settings).clickhouse() if settings.clickhouse_url else ch
        return partition_writers(client, connections[partition], partitions, [partition], settings.writer_name,
                                 settings.writer_batch_size, settings.writer_batch_seconds,
                                 crash_at=settings.writer_crash_at, may_insert=may_insert)

    manager = LeaseManager(client, partitions, settings.writer_name, settings.writer_lease_seconds,
                           settings.clickhouse_timeout, writers_for)
    signal.signal(signal.SIGTERM, lambda *_: manager.stop())
    signal.signal(signal.SIGINT, lambda *_: manager.stop())
    if settings.forget_interval > 0:
        forget.start_periodic(forget_ch, client, settings.forget_interval, manager.stop_event)
    _tune_gc()
    log.info("writer %s sharing the %d partitions of %s (leases of %g s)", settings.writer_name, partitions.count,
             partitions.stream_key, settings.writer_lease_seconds)
    try:
        manager.run()
    except NameInUse as exc:
        log.error("cannot start: %s", exc)
        return 2
    finally:
        for connection in connections.values():
            if connection is not ch:
                connection.close()
    log.info("writer stopped after %d rows", manager.written())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
