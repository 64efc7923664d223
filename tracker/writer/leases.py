"""Partitions shared by writer processes through leases in Redis (``python -m tracker.writer --partitions auto``).

Each writer process runs a ``LeaseManager``. It holds a lease per partition it drains and runs that
partition's ``BatchWriter`` (with ``partition_writers``) only while it holds the lease, so starting a
writer adds throughput and a dead writer's partitions move to the others, each stored exactly once.

Keys (single-key commands and scripts only, so any slot of a Redis Cluster serves them):

- ``adserver:lease:<partition's stream key>``: the lease, a plain key with a TTL (``PX``); it shares
  its partition's hash tag. Its value is the holder, ``<ADSERVER_WRITER_NAME>/<token>`` with a token
  drawn at each process start, or ``released``: the holder let it go cleanly (see below).
- ``adserver:writers:<stream key>``: a sorted set of the live writers, member ``<name>/<token>``,
  score the time (ms, the writer host's clock) its heartbeat expires. It serves balancing only,
  never safety, so clocks that disagree by less than a lease only delay a rebalance.
- ``adserver:writer-name:<stream key>:<name>``: the name's claim, value the holder, with a TTL (``PX``) of a
  lease, renewed with the leases. It is taken with ``SET NX`` before the writer does anything else, so of
  two namesakes started at the same moment exactly one runs; reading the registry first could not tell
  (each would read it before the other had written it).

Every third of a lease (``ADSERVER_WRITER_LEASE_SECONDS``) a manager heartbeats, renews its leases
(a compare-and-``PEXPIRE`` script) and balances: its share is ceil(partitions / live writers); above
it, it releases the surplus (the partition's writer flushes and acknowledges what it read, then the
lease is marked ``released``); below it, it acquires free leases (a script: set if missing or
``released``). A namesake of a live writer refuses to start (its name's claim is held): two processes
on one consumer name would recover each other's pending entries. A writer that finds its name's claim
taken by another (it was paused for longer than a lease) stops, and its writers with it.

Taking a partition: every entry pending in its consumer group, under any consumer name (a dead
writer, an older static-mode one), is claimed into this writer's name (``XAUTOCLAIM`` from ``0-0``
until the cursor comes back to ``0-0``), then the usual recovery (``BatchWriter.recover``) inserts
what ClickHouse does not hold yet. Entries a lapsed holder reads after the claim are pending under its
name: the owner sees them in ``XPENDING`` and claims them the same way (its writer restarts).

Why an entry is stored once (fencing). The new owner's recovery check must not run while the old
owner can still land an insert of the same entries, or the check misses rows that land just after it.
- The holder measures its lease with the monotonic clock from the moment it *sent* the last
  successful renewal: Redis started the key's TTL later, so the key outlives that local estimate
  (assuming both clocks run at the same rate; a lease of seconds makes small drifts irrelevant).
- It starts an insert only while the estimate has ``ADSERVER_CLICKHOUSE_TIMEOUT`` left
  (``BatchWriter.may_insert``), so an insert that returns or fails within that timeout is over before
  the key expires. A renewal that finds the key gone or held by another, or an estimate that runs
  out, stops the partition's writer at once: what it read stays pending, unacknowledged, for the
  next owner.
- The key can also vanish early: a failover to a replica that missed the last renewal (Redis
  replicates asynchronously), or a Redis restarted without its data. So whoever takes a lease that
  was missing (rather than ``released``) waits one lease length before claiming and recovering: by
  then the previous holder's estimate has run out in every case, and in the ordinary case (the key
  expired) an insert of the old holder has had a whole extra lease beyond its timeout to finish. A
  lease marked ``released`` needs no wait: its holder's writer had stopped (inserted, acknowledged
  or left pending) before marking it.
What remains assumed: Redis's and the writer's clocks run at the same rate, and an insert that did
not return within its timeout lands, if at all, within the margin left: a lease more when the key
expired (a timed-out insert can land a moment later: ClickHouse applies what it fully received),
less when it vanished early; the same bounds a pause of the process between check and insert.
``ADSERVER_WRITER_LEASE_SECONDS`` is at least twice the timeout (``tracker.settings``), so a writer
renewing every third of a lease always has an insert's worth of it left.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable

import redis

from tracker.partitions import Partitions
from tracker.writer.fleet import run_all, stop_all
from tracker.writer.lease_keys import (
    ACQUIRE,
    CLAIM_NAME,
    RELEASE,
    RELEASE_NAME,
    RELEASED,
    RENEW,
    lease_key,
    name_key,
    registry_key,
)
from tracker.writer.pipeline import BatchWriter
from tracker.writer.stream_io import GROUP

log = logging.getLogger("tracker.writer")

CLAIM_CHUNK = 1000  # entries per XAUTOCLAIM: each command stays short for the pixels sharing the primary

WritersFor = Callable[[int, Callable[[], bool]], list[BatchWriter]]


class NameInUse(RuntimeError):
    """Another live writer runs under the same ``ADSERVER_WRITER_NAME``."""


def claim_pending(client: redis.Redis, stream_key: str, consumer: str) -> int:
    """Move every entry pending in the writer group of ``stream_key``, whoever read it, to ``consumer``."""
    cursor: bytes | str = "0-0"
    claimed = 0
    while True:
        reply = client.xautoclaim(stream_key, GROUP, consumer, 0, start_id=cursor, count=CLAIM_CHUNK)
        cursor, entries = reply[0], reply[1]
        claimed += len(entries)
        if cursor in (b"0-0", "0-0"):
            return claimed


class _Held:
    """One partition this writer holds a lease on, and the thread running its writers."""

    RUNNING, RELEASING, LOST, DONE = "running", "releasing", "lost", "done"

    def __init__(self, partition: int, valid_until: float, grace: bool) -> None:
        self.partition = partition
        self.valid_until = valid_until  # monotonic: the lease surely lasts until then (see the module docstring)
        self.grace = grace  # taken while missing: wait one lease before claiming and inserting
        self.grace_done = not grace
        self.state = self.RUNNING
        self.restart = False  # entries pending under another consumer: stop, claim them, run again
        self.writers: list[BatchWriter] = []
        self.wake = threading.Event()  # set to end the grace wait early (released or lost meanwhile)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def stop_writers(self) -> None:
        with self.lock:
            self.wake.set()
            stop_all(self.writers)


class LeaseManager:
    """Holds this writer's share of the partitions' leases and runs a writer for each; see the module docstring."""

    def __init__(self, client: redis.Redis, partitions: Partitions, name: str, lease_seconds: float,
                 insert_seconds: float, writers_for: WritersFor) -> None:
        """``insert_seconds``: the longest an insert may take (``ADSERVER_CLICKHOUSE_TIMEOUT``); ``writers_for(p,
        may_insert)`` builds partition ``p``'s writers (``partition_writers``) with that fence."""
        if lease_seconds < 2 * insert_seconds:
            raise ValueError("a lease must last at least twice an insert's timeout (see tracker.settings)")
        self.client = client
        self.partitions = partitions
        self.name = name
        self.holder = f"{name}/{secrets.token_hex(8)}"
        self.lease_seconds = lease_seconds
        self.insert_seconds = insert_seconds
        self.renew_every = lease_seconds / 3
        self.writers_for = writers_for
        self.stop_event = threading.Event()
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._written = 0  # rows of the partitions' writers that have finished
        self._offset = random.randrange(partitions.count)  # writers starting together try different ones first
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._claim_name = client.register_script(CLAIM_NAME)
        self._release_name = client.register_script(RELEASE_NAME)
        self._name_lost = False
        self._ttl_ms = int(lease_seconds * 1000)

    # --- membership ------------------------------------------------------------------------------

    def wait_for_namesakes(self) -> None:
        """Return once this writer holds its name's claim; raise ``NameInUse`` if a namesake keeps renewing it.

        A namesake that died (a restart of this writer) leaves a claim that expires within a lease; one
        still held after that has been renewed, so its holder is alive.
        """
        deadline = time.monotonic() + self.lease_seconds + 0.5
        while True:
            try:
                if self._claim():
                    return
            except redis.RedisError as exc:  # cannot tell: ask again later, with the whole wait ahead
                log.warning("claiming the writer name failed (%s)", exc)
                deadline = time.monotonic() + self.lease_seconds + 0.5
                if self.stop_event.wait(1.0):
                    return
                continue
            if time.monotonic() > deadline:
                raise NameInUse(f"another writer named {self.name!r} is running: give each writer process its own "
                                "ADSERVER_WRITER_NAME")
            if self.stop_event.wait(0.2):
                return

    def _claim(self) -> bool:
        """Take or renew this writer's name's claim; False if another holder has it."""
        return self._claim_name(keys=[name_key(self.partitions, self.name)], args=[self.holder, self._ttl_ms]) == 1

    def _renew_name(self) -> None:
        """Renew the name's claim; stop this writer if a namesake has taken it (the claim ran out meanwhile)."""
        try:
            if self._claim():
                return
        except redis.RedisError as exc:  # the leases' own renewals decide what may still be inserted
            log.warning("renewing the writer name failed (%s)", exc)
            return
        log.error("another writer named %r holds the name now: stopping", self.name)
        self._name_lost = True
        self.stop_event.set()

    def _heartbeat(self) -> list[str] | None:
        """Announce this writer for a lease more and list the live writers; None if Redis did not answer."""
        key = registry_key(self.partitions)
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(key, {self.holder: now_ms + self._ttl_ms})
        pipe.zremrangebyscore(key, "-inf", now_ms)
        pipe.zrange(key, 0, -1)
        pipe.pexpire(key, 3 * self._ttl_ms)  # gone a while after the last writer stops
        try:
            _, _, members, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("writer heartbeat failed (%s)", exc)
            return None
        return [m.decode() for m in members]

    # --- leases ----------------------------------------------------------------------------------

    def held(self) -> list[int]:
        """The partitions this writer drains (or is about to, or is flushing before releasing)."""
        with self._lock:
            return sorted(p for p, h in self._held.items() if h.state in (_Held.RUNNING, _Held.RELEASING))

    def _may_insert(self, held: _Held) -> Callable[[], bool]:
        return lambda: held.state in (_Held.RUNNING, _Held.RELEASING) and \
            time.monotonic() + self.insert_seconds <= held.valid_until

    def _renew_all(self) -> None:
        with self._lock:
            holding = [h for h in self._held.values() if h.state in (_Held.RUNNING, _Held.RELEASING)]
        for held in holding:
            sent = time.monotonic()
            try:
                renewed = self._renew(keys=[lease_key(self.partitions, held.partition)],
                                      args=[self.holder, self._ttl_ms])
            except redis.RedisError as exc:
                log.warning("renewing the lease of partition %d failed (%s)", held.partition, exc)
            else:
                if renewed:
                    held.valid_until = sent + self.lease_seconds
                else:
                    self._lose(held, "its lease is gone or held by another writer")
                    continue
            if time.monotonic() >= held.valid_until:
                self._lose(held, "its lease ran out before it could be renewed")

    def _lose(self, held: _Held, why: str) -> None:
        held.state = _Held.LOST  # closes the fence first: nothing more is inserted ...
        held.stop_writers()  # ... then the writers stop, leaving what they read pending
        log.warning("lost partition %d: %s; what its writer held stays pending for the next owner", held.partition, why)

    def _take(self, partition: int) -> bool:
        sent = time.monotonic()
        try:
            taken = self._acquire(keys=[lease_key(self.partitions, partition)],
                                  args=[self.holder, self._ttl_ms, RELEASED])
        except redis.RedisError as exc:
            log.warning("acquiring the lease of partition %d failed (%s)", partition, exc)
            return False
        if not taken:
            return False
        held = _Held(partition, sent + self.lease_seconds, grace=taken == 1)
        held.thread = threading.Thread(target=self._run_partition, args=(held,), name=f"partition-{partition}",
                                       daemon=True)
        with self._lock:
            self._held[partition] = held
        if held.grace:
            log.info("took partition %d; waiting %.1f s for any insert of its previous holder", partition,
                     self.lease_seconds)
        else:
            log.info("took partition %d", partition)
        held.thread.start()
        return True

    def _let_go(self, held: _Held) -> None:
        """Stop the partition's writers (they flush and acknowledge); its thread then releases the lease."""
        held.state = _Held.RELEASING
        held.stop_writers()

    def _finish_release(self, held: _Held) -> None:
        # A clean mark only if no earlier holder's insert can still land (our grace, if any, is over).
        try:
            self._release(keys=[lease_key(self.partitions, held.partition)],
                          args=[self.holder, "1" if held.grace_done else "0", RELEASED, self._ttl_ms])
        except redis.RedisError as exc:  # it expires by itself; the next owner then waits a lease
            log.warning("releasing the lease of partition %d failed (%s)", held.partition, exc)
        log.info("released partition %d", held.partition)

    # --- a partition's thread --------------------------------------------------------------------

    def _run_partition(self, held: _Held) -> None:
        try:
            if held.grace and not held.wake.wait(self.lease_seconds):
                held.grace_done = True
            backoff = 0.2
            while held.state == _Held.RUNNING and held.grace_done:
                writers = self.writers_for(held.partition, self._may_insert(held))
                try:
                    for writer in writers:
                        writer.ensure_group()
                        claimed = claim_pending(self.client, writer.stream_key, self.name)
                        if claimed:
                            log.info("partition %d: claimed %d pending entries of %s", held.partition, claimed,
                                     writer.stream_key)
                except redis.RedisError as exc:
                    log.warning("partition %d: claiming its pending entries failed (%s)", held.partition, exc)
                    held.wake.wait(backoff)
                    backoff = min(backoff * 2, self.renew_every)
                    continue
                with held.lock:
                    held.writers = writers
                    held.restart = False
                    if held.state != _Held.RUNNING:
                        stop_all(writers)
                run_all(writers)  # recovers what it claimed, then drains until stopped
                with self._lock:
                    self._written += sum(w.written for w in writers)
                    held.writers = []
                with held.lock:
                    if not held.restart or held.state != _Held.RUNNING:
                        break
                    held.wake.clear()
        except Exception:  # noqa: BLE001 - the partition is let go; another writer (or this one) takes it
            log.exception("partition %d: its writer failed", held.partition)
            if held.state == _Held.RUNNING:
                held.state = _Held.RELEASING
        finally:
            if held.state == _Held.RELEASING:
                self._finish_release(held)
            held.state = _Held.DONE

    # --- the loop --------------------------------------------------------------------------------

    def _reap(self) -> None:
        with self._lock:
            for partition in [p for p, h in self._held.items() if h.state == _Held.DONE]:
                del self._held[partition]

    def _balance(self, live: list[str]) -> None:
        share = math.ceil(self.partitions.count / max(1, len(live)))
        with self._lock:
            running = sorted(p for p, h in self._held.items() if h.state == _Held.RUNNING)
            busy = set(self._held)
        if len(running) > share:
            for partition in running[share:]:
                self._let_go(self._held[partition])
            return
        count = self.partitions.count
        for n in range(count):
            if len(running) >= share:
                break
            partition = (self._offset + n) % count
            if partition not in busy and self._take(partition):
                running.append(partition)

    def _sweep(self) -> None:
        """Restart a partition whose group holds entries pending under another consumer (read by a
        holder after it lost the lease): its writer stops, claims them and recovers them."""
        with self._lock:
            running = [h for h in self._held.values() if h.state == _Held.RUNNING and h.writers and not h.restart]
        for held in running:
            try:
                foreign = sum(c["pending"] for w in held.writers
                              for c in self.client.xpending(w.stream_key, GROUP).get("consumers") or ()
                              if _text(c["name"]) != self.name)
            except redis.RedisError as exc:
                log.warning("partition %d: reading its pending entries failed (%s)", held.partition, exc)
                continue
            if foreign:
                log.info("partition %d: %d entries pending under another consumer; claiming them", held.partition,
                         foreign)
                held.restart = True
                held.stop_writers()

    def tick(self) -> None:
        """One round: heartbeat, renew, balance (take or let go), claim strays."""
        self._reap()
        self._renew_name()
        live = self._heartbeat()
        self._renew_all()
        if live is not None and not self.stop_event.is_set():
            self._balance(live)
            self._sweep()

    def run(self) -> None:
        """Tick every third of a lease until ``stop``; then let every partition go and leave the registry."""
        self.wait_for_namesakes()
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a failed round is retried at the next; leases run out by themselves
                log.exception("lease round failed")
            self.stop_event.wait(max(0.0, self.renew_every - (time.monotonic() - started)))
        self._shut_down()
        if self._name_lost:
            raise NameInUse(f"another writer named {self.name!r} took the name over while this one was stalled: "
                            "give each writer process its own ADSERVER_WRITER_NAME")

    def _shut_down(self) -> None:
        with self._lock:
            holding = list(self._held.values())
        for held in holding:
            if held.state == _Held.RUNNING:
                self._let_go(held)
        # Keep renewing while the writers flush: their last inserts stay fenced in.
        while any(h.thread is not None and h.thread.is_alive() for h in holding):
            self._renew_all()
            next_renewal = time.monotonic() + self.renew_every
            for held in holding:
                if held.thread is not None:
                    held.thread.join(timeout=max(0.0, next_renewal - time.monotonic()))
        self._reap()
        try:
            self.client.zrem(registry_key(self.partitions), self.holder)
        except redis.RedisError as exc:
            log.warning("leaving the writers' registry failed (%s); the entry expires by itself", exc)
        try:
            self._release_name(keys=[name_key(self.partitions, self.name)], args=[self.holder])
        except redis.RedisError as exc:
            log.warning("releasing the writer name failed (%s); the claim expires by itself", exc)

    def stop(self) -> None:
        """Ask ``run`` to return (safe from a signal handler)."""
        self.stop_event.set()

    def written(self) -> int:
        """Rows this writer has stored so far."""
        with self._lock:
            return self._written + sum(w.written for h in self._held.values() for w in h.writers)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
