"""``InsertGroup``: the partition writers of one process insert their batches together.

Why: ClickHouse pays per insert, not per row. On a cluster each insert becomes a part per shard in
``events_local`` and in every report view's table, each committed through ZooKeeper and fetched by
the other replica (``docs/scaling.md``): a process draining six partitions made six inserts a second
where one carries the same rows, inserts of a few rows took 0.1-1 s on the loopback cluster, and the
lag from pixel to row followed them (``docs/benchmarks.md``, fourth round). On one server the parts
to merge are divided the same way.

How: the members' reading windows of a round end at one shared deadline (:meth:`deadline`). The
first built batch to arrive leads: it waits for the others of its round (each member answers with a
batch or :meth:`empty`), at most ``GATHER_SECONDS``, then inserts every waiting batch in one insert
per table and column set. Exactly-once is unchanged: a member acknowledges its own entries only
after the insert that carried them returned, and its rows keep their partition's stream ids, which
the recovery check reads. A failed insert fails every batch in it; each member retries its own as a
recovered batch (what landed is left out), alone or with the others of a later round.

Writers under leases (``tracker.writer.leases``) are not grouped: each insert there is fenced by its
own partition's lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain

from tracker import schema
from tracker.clickhouse import ClickHouse
from tracker.writer.batch import Batch

# How long a round's first batch waits for the other members' (they close the same window and build
# in milliseconds; a member that is late, e.g. retrying, goes with a later round).
GATHER_SECONDS = 0.05
ROUNDS_KEPT = 8  # answers are counted per round; older rounds are forgotten


Insert = Callable[[str, tuple[str, ...], list[list]], None]  # table, column names, columns


@dataclass
class _Waiting:
    batch: Batch
    done: bool = False
    error: BaseException | None = None


def insert_batches(batches: list[Batch], insert: Insert, crash_point: Callable[[str], None]) -> None:
    """One ``insert`` per table and column set for all of ``batches``: ``events``, then ``bad_events``.

    A single writer inserts its batch alone this way, a group its members' together; the crash points
    (fault-injection tests of exactly-once) sit between the same steps either way. ``insert`` skips
    empty columns. One batch's columns are passed as they are; several are concatenated.
    """
    crash_point("before_insert")
    by_names: dict[tuple[str, ...], list[list]] = {}
    for batch in batches:
        if not (batch.events and batch.events[0]):
            continue
        columns = by_names.get(batch.event_names)
        if columns is None:
            by_names[batch.event_names] = batch.events if len(batches) == 1 else [list(c) for c in batch.events]
        else:
            for column, more in zip(columns, batch.events, strict=True):
                column.extend(more)
    for names, columns in by_names.items():
        insert("events", names, columns)
    crash_point("between_inserts")
    bads = [b.bad for b in batches if b.bad and b.bad[0]]
    bad = bads[0] if len(bads) == 1 else [list(chain.from_iterable(parts)) for parts in zip(*bads, strict=True)]
    insert("bad_events", schema.BAD_EVENTS_COLUMNS, bad)
    crash_point("after_insert")


class InsertGroup:
    """Batches of several writers of one process, inserted together (see the module's docstring)."""

    def __init__(self, members: int, gather_seconds: float = GATHER_SECONDS) -> None:
        self.members = members
        self.gather_seconds = gather_seconds
        self.inserts = 0  # inserts into ``events`` made for the group (what the grouping saves is visible)
        self._cond = threading.Condition()
        self._deadline = 0.0
        self._answers: dict[float, int] = {}
        self._waiting: list[_Waiting] = []
        self._leading = False

    def deadline(self, window: float) -> float:
        """The end of the reading window a member begins now: the open round's, or a new one ``window`` long."""
        with self._cond:
            now = time.monotonic()
            if now >= self._deadline:
                self._deadline = now + window
            return self._deadline

    def empty(self, round_: float) -> None:
        """A member's window of ``round_`` closed with nothing to insert: the round need not wait for it."""
        with self._cond:
            self._answer(round_)

    def insert(self, batch: Batch, ch: ClickHouse, crash_point: Callable[[str], None]) -> None:
        """Insert ``batch`` with the other members' of its round; raises what the insert raised.

        Its round is ``batch.round``, the deadline of the window it was read in (None: a batch read
        again, which does not wait for others). ``ch`` and ``crash_point`` serve if it leads the insert."""
        round_ = batch.round
        me = _Waiting(batch)
        with self._cond:
            self._waiting.append(me)
            if round_ is not None:
                self._answer(round_)
            while not me.done and self._leading:
                self._cond.wait()
            if me.done:
                if me.error is not None:
                    raise me.error
                return
            self._leading = True
        taken: list[_Waiting] = []
        try:
            with self._cond:
                if round_ is not None:
                    until = time.monotonic() + self.gather_seconds
                    while self._answers.get(round_, 0) < self.members and time.monotonic() < until:
                        self._cond.wait(until - time.monotonic())
                taken, self._waiting = self._waiting, []
            try:
                insert_batches([w.batch for w in taken], self._inserter(ch), crash_point)
            except BaseException as exc:  # noqa: BLE001 - every batch of the insert fails with it
                for waiting in taken:
                    waiting.error = exc
        finally:
            with self._cond:
                for waiting in taken:
                    waiting.done = True
                self._leading = False
                self._cond.notify_all()
        if me.error is not None:
            raise me.error

    def _answer(self, round_: float) -> None:
        self._answers[round_] = self._answers.get(round_, 0) + 1
        if len(self._answers) > ROUNDS_KEPT:
            del self._answers[min(self._answers)]
        self._cond.notify_all()

    def _inserter(self, ch: ClickHouse) -> Insert:
        def insert(table: str, columns: tuple[str, ...], data: list[list]) -> None:
            if data and data[0]:
                ch.insert_columns(table, columns, data)
                if table == "events":
                    self.inserts += 1

        return insert
