"""``BatchWriter``: the loop that reads batches, builds them, inserts them and acknowledges them.

One thread reads and builds batches while a second inserts and acknowledges them in order: both
wait on servers much of the time, so the waits overlap. A failed insert is retried with back-off
and never acknowledged; a batch read again after a crash leaves out what ClickHouse already holds.
A writer under a lease (``tracker.writer.leases``) asks its ``may_insert`` fence before each insert.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable

import redis

from tracker import forget, schema
from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError
from tracker.stream_entries import count_events
from tracker.writer import stream_io
from tracker.writer.batch import Batch, build
from tracker.writer.insert_group import InsertGroup, insert_batches
from tracker.writer.recovery import already_stored

log = logging.getLogger(__name__)

READ_PAUSE = 0.05  # after a read that drained the stream: at most ~20 reads/s under a trickle (see _gather)
IDLE_CHECK_SECONDS = 5.0  # an idle writer looks for entries delivered to it but never received this often
TAIL_WEIGHT = 0.2  # weight of the newest batch in the running estimate of building + inserting one
TAIL_SPREAD_WEIGHT = 0.25  # weight of the newest batch in the running estimate of its deviation
TAIL_SPREADS = 1  # the window leaves room for the mean tail plus this many deviations (as TCP's timeout does)
MIN_WINDOW_SHARE = 0.5  # a slow ClickHouse shortens the reading window to half of batch_seconds at most


class FencedOut(StoreError):
    """The writer may not insert now: its partition's lease is not known to outlast an insert
    (``tracker.writer.leases``). The batch stays pending, for this writer or the partition's next owner."""

    def __init__(self, stream_key: str) -> None:
        super().__init__(f"{stream_key}: the lease is not known valid for an insert; nothing inserted",
                         code="fenced_out", retryable=True)


class BatchWriter:
    """Moves events from the stream to ClickHouse in batches; see ``tracker.writer``."""

    def __init__(
        self,
        client: redis.Redis,
        ch: ClickHouse,
        stream_key: str,
        consumer: str,
        batch_size: int = 5000,
        batch_seconds: float = 1.0,
        max_backoff: float = 30.0,
        crash_at: str = "",
        forget_interval: float = 0.0,
        forget_ch: ClickHouse | None = None,
        id_prefix: str = "",
        may_insert: Callable[[], bool] | None = None,
        insert_group: InsertGroup | None = None,
    ) -> None:
        self.client = client
        self._raw = stream_io.raw_client(client)
        self.ch = ch
        self.stream_key = stream_key
        self.consumer = consumer
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.max_backoff = max_backoff
        self.stop_event = threading.Event()
        self.written = 0
        self.failures = 0
        self.crash_at = crash_at
        # The forget job (tracker/forget.py) runs beside the writer every ``forget_interval`` seconds
        # (0: never), on ``forget_ch`` if given: its scans then do not hold up the writer's inserts.
        self.forget_interval = forget_interval
        self.forget_ch = forget_ch
        # Stored before each stream id (``stream_id`` column): ids are unique within one stream only,
        # and two partitions' streams (on different Redis primaries) can issue the same id, which
        # the recovery check would otherwise take for this stream's row.
        self.id_prefix = id_prefix
        # Asked before every insert (a writer under a lease: ``tracker.writer.leases``); False leaves
        # the batch pending, unacknowledged, and raises ``FencedOut``.
        self.may_insert = may_insert
        # Writers of one process that insert their batches together (``tracker.writer.insert_group``).
        self.insert_group = insert_group
        # The highest stream id a read of new entries (">") has delivered to this writer, as (ms, seq).
        self._delivered_up_to = (0, 0)
        # Running estimates of the seconds a batch takes to build and to insert once its reading window
        # has closed: the window is shortened by them (see _gather).
        self._build_seconds = 0.0
        self._insert_seconds = 0.0
        self._tail_spread = 0.0  # running mean deviation of build + insert from their estimate
        self._recheck_pending = False  # an error may have left entries pending for this consumer (see run)
        self._idle_check_at = 0.0  # monotonic time of the next look for strays while idle (_check_idle)
        # Events per entry in the last read: a read asks for the entries that should hold what the batch
        # lacks (``batch_size`` counts events; an entry of ``tracker.linger``'s holds up to ``PACK_MAX``).
        self._packing = 1.0

    def _crash_point(self, name: str) -> None:
        """Die like a killed process at a named point (fault-injection tests of exactly-once)."""
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    def ensure_group(self) -> None:
        stream_io.ensure_group(self.client, self.stream_key)

    # --- reading ----------------------------------------------------------------------------------

    def _read_into(self, batch: Batch, last_id: str, count: int, block_ms: int | None) -> int:
        before = len(batch.fields)
        got = stream_io.read_into(self._raw, self.stream_key, self.consumer, batch.ids, batch.fields,
                                  last_id, count, block_ms)
        if got:
            events = count_events(batch.fields[before:])
            batch.events_read += events
            self._packing = max(1.0, events / got)  # deleted entries (None) hold none
        return got

    def _window(self) -> float:
        """Seconds to read entries for one batch: ``batch_seconds`` less what building and inserting the
        batch may take, so that an entry read at the window's start is visible in ClickHouse within
        ``batch_seconds`` (the lag from pixel to row at low traffic), not that plus the insert (with the
        report views, ~3 % of a 1 s window). The room kept is the running mean plus one mean deviation
        (TCP sizes its retransmission timeout the same way, with four): the lag that matters is the
        slower batches', not the average one's, but each millisecond kept is one more insert a minute
        for ClickHouse to merge (docs/soak.md). Never under half of ``batch_seconds``: a ClickHouse slow to insert must not
        multiply the batches it is sent."""
        tail = self._build_seconds + self._insert_seconds + TAIL_SPREADS * self._tail_spread
        return max(self.batch_seconds * MIN_WINDOW_SHARE, self.batch_seconds - tail)

    def _note(self, estimate: str, seconds: float) -> None:
        setattr(self, estimate, getattr(self, estimate) * (1 - TAIL_WEIGHT) + seconds * TAIL_WEIGHT)

    def _note_tail(self, build: float, insert: float) -> None:
        """Weigh one batch's build and insert seconds into the estimates ``_window`` leaves room for."""
        deviation = abs(build + insert - self._build_seconds - self._insert_seconds)
        self._tail_spread = self._tail_spread * (1 - TAIL_SPREAD_WEIGHT) + deviation * TAIL_SPREAD_WEIGHT
        self._note("_build_seconds", build)
        self._note("_insert_seconds", insert)

    def _gather(self) -> Batch:
        """Read one batch: new entries holding up to ``batch_size`` events (more only if the packing grew
        within the batch, by ``PACK_MAX`` times at most), waiting at most the window for them.

        The last read is made at the window's end, without blocking: entries added during the pause
        before it belong to this batch. Left to the next one they would wait a whole window more.
        Once the batch holds entries, reads do not block either and the pauses between them are this
        process's own: Redis ends a blocked read only at its next timer tick (``hz``, 100 ms by
        default), which made windows up to 100 ms longer than asked. An empty batch still waits in a
        blocking read, which returns as soon as an entry arrives.
        """
        batch = Batch()
        group = self.insert_group
        deadline = group.deadline(self._window()) if group is not None else time.monotonic() + self._window()
        batch.round = deadline
        while batch.events_read < self.batch_size and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            count = min(math.ceil((self.batch_size - batch.events_read) / self._packing), stream_io.COMMAND_CHUNK)
            before = len(batch)
            block = max(1, int(remaining * 1000)) if remaining > 0 and not before else None
            got = self._read_into(batch, ">", count, block)
            if got:
                self._check_delivery(batch, before)
            if remaining <= 0:
                break
            if got < count:
                # The stream is drained: a blocking read would come back with the next single entry.
                # Let entries gather first, so a steady trickle costs a few reads a second, not one each.
                self.stop_event.wait(min(READ_PAUSE, max(0.0, deadline - time.monotonic())))
        return batch

    def _check_delivery(self, batch: Batch, first: int) -> None:
        """Mark the batch if a read of new entries delivered an id at or below one delivered before.

        A read of new entries only ever moves forward, unless Redis lost the group's progress: a
        replica promoted after its primary died may not have received the last reads, acknowledgements
        and deletions (replication is asynchronous), and then delivers those entries again as new,
        though they may be stored already. Such a batch is checked against ClickHouse like one
        recovered after a crash. Two ids compared per read, not per entry.
        """
        head = stream_io.id_key(batch.ids[first])
        if head <= self._delivered_up_to:
            if not batch.redelivered:
                log.warning("%s delivered %s again after %s (Redis lost the group's progress): checking "
                            "the batch against ClickHouse", self.stream_key, batch.ids[first].decode(),
                            "%d-%d" % self._delivered_up_to)
            batch.redelivered = True
        self._delivered_up_to = max(self._delivered_up_to, stream_io.id_key(batch.ids[-1]))

    # --- building ---------------------------------------------------------------------------------

    def _already_stored(self, ids: list[str]) -> set[str]:
        """Stream ids of a recovered batch that ClickHouse already has (see ``tracker.writer.recovery``)."""
        prefix = self.id_prefix
        return {stored[len(prefix):] for stored in already_stored(self.ch, [prefix + i for i in ids])}

    def _build(self, batch: Batch, recovered: bool = False) -> Batch:
        """Fill the batch's columns; a recovered batch leaves out what ClickHouse already holds."""
        started = time.monotonic()
        build(batch, self._already_stored(batch.live_ids()) if recovered else set())
        if self.id_prefix:
            for columns, names in ((batch.events, batch.event_names), (batch.bad, schema.BAD_EVENTS_COLUMNS)):
                at = names.index("stream_id")
                columns[at] = [self.id_prefix + i for i in columns[at]]
        batch.build_seconds = time.monotonic() - started
        return batch

    # --- writing ----------------------------------------------------------------------------------

    def _insert(self, table: str, columns: tuple[str, ...], data: list[list]) -> None:
        if data and data[0]:
            if self.may_insert is not None and not self.may_insert():
                raise FencedOut(self.stream_key)
            self.ch.insert_columns(table, columns, data)

    def _write(self, batch: Batch) -> int:
        """Insert a built batch (with its insert group's, if any), then acknowledge it; raises on failure
        (nothing acknowledged)."""
        if self.insert_group is not None:
            self.insert_group.insert(batch, self.ch, self._crash_point)
        else:
            insert_batches([batch], self._insert, self._crash_point)
        if stream_io.acknowledge(self.client, self.stream_key, batch.ids, self.consumer):
            self._stray_reads()
        self.written += batch.rows
        if batch.skipped:
            log.info("skipped %d recovered entries already in ClickHouse", batch.skipped)
        return batch.rows

    def flush(self, batch: Batch, recovered: bool = False) -> int:
        """Insert one batch, then acknowledge it; raises on failure (nothing acknowledged).

        ``recovered``: the batch may be in ClickHouse already (read again after a crash, or an
        insert that failed after landing), so what is stored is left out first.
        """
        if not batch.ids:
            return 0
        if batch.events is None or recovered:
            self._build(batch, recovered)
        if recovered:
            batch.round = None  # read again: it does not wait for its group's round
        return self._write(batch)

    def _flush_with_retry(self, batch: Batch, recovered: bool = False) -> None:
        """Flush until it succeeds; if asked to stop meanwhile, leave the batch pending and raise."""
        backoff = 0.2
        while True:
            try:
                built_here = batch.events is None or recovered  # then ``flush`` builds it (again)
                started = time.monotonic()
                self.flush(batch, recovered)
                insert = time.monotonic() - started - (batch.build_seconds if built_here else 0.0)
                self._note_tail(batch.build_seconds, max(0.0, insert))
                return
            except (StoreError, redis.RedisError) as exc:
                self.failures += 1
                log.warning("flush of %d entries failed (%s); retrying in %.1fs", len(batch), exc, backoff)
                if self.stop_event.wait(backoff):
                    raise  # still pending in the group: the next start recovers it
                backoff = min(backoff * 2, self.max_backoff)
                recovered = True  # the insert may have landed before the error

    def _stray_reads(self) -> None:
        """Entries are pending for this consumer that it never received (``stream_io.stranded``): read
        them again once what is in hand is written (``run``)."""
        if not self._recheck_pending:
            log.warning("%s: entries delivered to %s were never received (a read's answer was lost); "
                        "reading them again", self.stream_key, self.consumer)
        self._recheck_pending = True

    def _check_idle(self) -> None:
        """While nothing is in hand, every entry pending for this consumer is a stray; asked at most
        every ``IDLE_CHECK_SECONDS``, so a stray read at the end of the traffic does not wait for more."""
        now = time.monotonic()
        if now >= self._idle_check_at:
            self._idle_check_at = now + IDLE_CHECK_SECONDS
            if stream_io.stranded(self.client, self.stream_key, self.consumer):
                self._stray_reads()

    # --- loops ------------------------------------------------------------------------------------

    def recover(self) -> int:
        """Re-process entries this consumer read but never acknowledged (a previous crash)."""
        total = 0
        while not self.stop_event.is_set():
            batch = Batch()
            self._read_into(batch, "0", min(math.ceil(self.batch_size / self._packing), stream_io.COMMAND_CHUNK), None)
            if not batch.ids:
                break
            self._flush_with_retry(batch, recovered=True)
            total += len(batch)
        return total

    def run_once(self) -> int:
        """Gather one batch (bounded by size and time) and write it; returns the entries written (strays
        found by an earlier batch are written first, see ``run``)."""
        recovered = 0
        if self._recheck_pending:
            recovered = self.recover()
            self._recheck_pending = False
        batch = self._gather()
        if batch.ids:
            self._flush_with_retry(self._build(batch, recovered=batch.redelivered))
        return recovered + len(batch)

    def _start(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                self.ensure_group()
                self.recover()
                return
            except (StoreError, redis.RedisError) as exc:
                log.warning("writer start-up failed (%s); retrying in %.1fs", exc, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _loop_error(self, exc: Exception) -> None:
        log.warning("writer loop error: %s", exc)
        if "NOGROUP" in str(exc):  # Redis restarted without its data: create the group again
            try:
                self.ensure_group()
                return
            except redis.RedisError:
                pass
        self.stop_event.wait(1.0)

    def run(self) -> None:
        """Loop until stopped; on stop, what was read is flushed before returning.

        This thread reads and builds batches; a second one inserts and acknowledges them in order,
        so reading the next batch overlaps the insert of the current one. At most one built batch
        waits for the inserter: memory stays bounded and a slow ClickHouse slows the reading.
        Each batch is still acknowledged only after its own insert.

        After an error in either thread, entries may be left pending for this consumer, read but
        never inserted (a window whose later read failed, a batch the inserter gave up), and so may
        a read whose answer was lost without an error (``stream_io.stranded``, found when the next
        batch is acknowledged or while idle): new reads (``>``) never return them. Once the
        inserter has finished what it was handed, they are read again and written as a recovered
        batch (what ClickHouse holds is left out), as at start-up.
        """
        self._start()
        if self.forget_interval > 0:
            forget.start_periodic(self.forget_ch or self.ch, self.client, self.forget_interval, self.stop_event)
        built: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        inserter = threading.Thread(target=self._insert_loop, args=(built,), name="event-writer-insert", daemon=True)
        inserter.start()
        try:
            while not self.stop_event.is_set() and inserter.is_alive():
                try:
                    if self._recheck_pending:
                        _wait_until_idle(built, inserter, self.stop_event)
                        self.recover()
                        self._recheck_pending = False
                    batch = self._gather()
                    if batch.ids:
                        self._build(batch, recovered=batch.redelivered)
                        _hand_over(built, batch, inserter)
                    else:
                        if self.insert_group is not None and batch.round is not None:
                            self.insert_group.empty(batch.round)
                        if not built.unfinished_tasks:
                            self._check_idle()
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any single failure
                    if self.stop_event.is_set():
                        break
                    self._recheck_pending = True
                    self._loop_error(exc)
        finally:
            _hand_over(built, None, inserter)
            inserter.join()

    def _insert_loop(self, built: queue.Queue) -> None:
        while True:
            batch = built.get()
            try:
                if batch is None:
                    return
                self._flush_with_retry(batch)
            except Exception as exc:  # noqa: BLE001 - the batch stays pending: read again (see run)
                if self.stop_event.is_set():
                    continue  # stopping: later batches are tried once more each, then left pending
                self._recheck_pending = True
                self._loop_error(exc)
            finally:
                built.task_done()

    def stop(self) -> None:
        self.stop_event.set()


def _wait_until_idle(built: queue.Queue, inserter: threading.Thread, stop: threading.Event) -> None:
    """Wait until the inserter has finished every batch handed to it (or has died, or we stop)."""
    while built.unfinished_tasks and inserter.is_alive() and not stop.is_set():
        stop.wait(0.01)


def _hand_over(built: queue.Queue, item: Batch | None, inserter: threading.Thread) -> None:
    """Queue ``item`` for the inserter, waiting while it is busy; give up if it has died."""
    while inserter.is_alive():
        try:
            built.put(item, timeout=0.5)
            return
        except queue.Full:
            continue
