"""Lingering event writes: a web process's hits sent to Redis in batches, one call per hash slot.

Why: a pixel hit's own work is small, and writing it alone costs the web process more than the
rest of it: redis-py packing the script call and parsing its reply, the socket round trip, and the
thread switches around the wait (``docs/benchmarks.md``); Redis pays the script call's fixed cost
once per hit as well. Like a Kafka producer's ``linger.ms``, :meth:`Linger.offer` puts the hit, its
script arguments already encoded in Redis' wire protocol (RESP), on a bounded in-memory queue and
returns at once; one background thread wakes when the first hit arrives, waits ``linger`` seconds
for others (less if a batch fills up), and sends everything queued: one ``EVALSHA`` of the ``RUN``
script per hash slot holding every hit of that slot, their commands one after the other and their
events packed into one stream entry per partition (``tracker.stream_entries``), plus one
``POPULAR`` call per slot of the popularity keys with the batch's weights summed. On one server
that is two commands written in one go; on a Redis Cluster, the calls of the slots a primary owns
are written to it in one go. The connection is redis-py's (its pool, timeouts and reconnects);
only the packing is ours.

Order: a visitor's events go to one partition, so one slot and one call, in the order offered;
flushes run one at a time and take the queue from its head, so a later batch never overtakes an
earlier one. A full queue (``max_queue`` hits) makes the caller flush it itself: the request waits
for Redis as it would without lingering, and nothing is dropped.

Failures: nothing accepted is lost. While the circuit breaker is open, a batch goes to the spool
(``spill``, hit by hit, in order) without trying Redis. A ``MOVED``, ``ASK``, ``TRYAGAIN``,
``CLUSTERDOWN``, ``NOSCRIPT`` answer or a broken connection makes that slot's call go through
redis-py's own call (which follows redirections, reconnects and loads the script); if that fails
too, or a call times out or fails otherwise, its hits are spilled and the breaker opens. A failed
popularity call is a lost weight in a cache and is not retried (as without lingering). As for a
single hit, a call whose connection broke or timed out after it was sent may have run: its events
are then stored twice rather than lost (at least once).

Durability contract (README, "Pixel writes"):

- A graceful stop sends what is queued before the process exits: gunicorn's ``worker_exit`` hook
  (``deploy/gunicorn.conf.py``) and an ``atexit`` hook call :func:`flush_all`; if Redis does not
  take the batch it goes to the spool like any failed write.
- A process killed without running its exit hooks (SIGKILL, the OOM killer, a power cut) loses the
  hits it answered in its last ``linger`` seconds and the batch being sent: at the benchmark's
  pixel rate (about 2,500 hits/s per worker) and the default 2 ms, a handful per worker.
  ``ADSERVER_PIXEL_LINGER_MS=0`` writes every hit before its answer.
- A forked child starts with an empty queue: the parent sends its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

import redis
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, TryAgainError

from tracker.breaker import CircuitBreaker
from tracker.once import new_once
from tracker.popularity import add_popularity, popular_args
from tracker.stream import Call, EventStream

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000  # hits waiting at most (~20 MB); beyond, callers flush the queue themselves
MAX_BATCH = 1_000  # hits per flush round: bounds a script call's size and its time in Redis
# Answers after which redis-py's own call is tried: the script did not run, or the connection broke.
RETRY_WITH_REDIS_PY = (MovedError, AskError, TryAgainError, ClusterDownError, NoScriptError, redis.ConnectionError)


def bulk(value) -> bytes:
    """One argument as a RESP bulk string, encoded as redis-py's ``Encoder`` would (UTF-8, strict)."""
    kind = type(value)
    if kind is str:
        data = value.encode()
    elif kind is bytes:
        data = value
    elif kind is int:
        data = b"%d" % value
    elif kind is float:
        data = repr(value).encode()
    elif isinstance(value, (bytes, memoryview)):
        data = bytes(value)
    elif isinstance(value, bool):
        raise redis.DataError(f"Invalid input of type: {type(value).__name__!r}")
    elif isinstance(value, (int, float)):
        data = repr(value).encode()
    elif isinstance(value, str):
        data = value.encode()
    else:
        raise redis.DataError(f"Invalid input of type: {type(value).__name__!r}")
    return b"$%d\r\n%b\r\n" % (len(data), data)


# Encoded arguments that recur from hit to hit (command names, counts, TTLs, counters, catalog skus
# and advertisers): looked up instead of encoded, which halves the cost of encoding a hit. Bounded:
# once full, other values are encoded each time; long strings (visitors' keys) and large numbers
# (timestamps) never enter it. Those recur within one hit instead (a visitor's keys appear in several
# of its commands and among the call's KEYS, its timestamp in each of its ZADDs): ``encode`` keeps
# them in the hit's own ``memo``.
_COMMON: dict = {}
_COMMON_MAX = 4096


def encode(values: list, memo: dict | None = None) -> bytes:
    """``values`` as consecutive RESP bulk strings (see ``bulk``); ``memo`` collects the encodings of
    values too long or too large for the common table, for the caller to reuse."""
    out = []
    append = out.append
    common = _COMMON.get
    if memo is None:
        memo = {}
    mine = memo.get
    for value in values:
        kind = type(value)
        if kind is str:
            encoded = common(value) or mine(value)
            if encoded is None:
                data = value.encode()
                encoded = b"$%d\r\n%b\r\n" % (len(data), data)
                if len(value) <= 32 and len(_COMMON) < _COMMON_MAX:
                    _COMMON[value] = encoded
                else:
                    memo[value] = encoded
        elif kind is int:
            encoded = common(value) or mine(value)
            if encoded is None:
                data = b"%d" % value
                encoded = b"$%d\r\n%b\r\n" % (len(data), data)
                if -10**9 < value < 10**9 and len(_COMMON) < _COMMON_MAX:
                    _COMMON[value] = encoded
                else:
                    memo[value] = encoded
        else:
            encoded = bulk(value)
        append(encoded)
    return b"".join(out)


def encode_keys(keys: list[str], memo: dict) -> tuple[bytes, ...]:
    """A call's KEYS encoded, reusing what encoding its arguments put in ``memo``."""
    return tuple(memo.get(key) or _COMMON.get(key) or bulk(key) for key in keys)


class Pending(NamedTuple):
    """A hit waiting in the queue."""

    record: dict  # what the spool keeps if Redis cannot take it (see ``adserver.services``)
    call: Call | None  # None: no client could be made for it; spilled with its batch
    slot: int  # its hash slot on a Redis Cluster, else 0
    keys: tuple[bytes, ...]  # the call's KEYS and ARGV as RESP bulk strings
    args: bytes
    nargs: int


class _Script(NamedTuple):
    """One script call of a flush: where it goes, its packed bytes, and how else to make it."""

    slot: int
    packed: bytes
    keys: list
    args: list
    hits: list[Pending] | None  # a ``RUN`` call's hits; None for a popularity call
    once: tuple[str, int] | None = None  # a ``RUN`` call's id (``EventStream.send``)


def _spooled(call: _Script) -> dict:
    """What the spool keeps of a ``RUN`` call that failed: its hits, to be sent again as one call with the
    same id, so that if the failed try did run (its answer lost) the replay writes nothing."""
    return {"kind": "batch", "once": list(call.once), "partition": call.hits[0].call.partition,
            "records": [p.record for p in call.hits]}


class Linger:
    """The queue and flusher of one app (``adserver.services``); see the module's docstring."""

    def __init__(self, stream: Callable[[], EventStream], breaker: CircuitBreaker,
                 spill: Callable[[list[dict]], None], linger: float, max_queue: int = MAX_QUEUE,
                 max_batch: int = MAX_BATCH) -> None:
        self.stream = stream
        self.breaker = breaker
        self.spill = spill
        self.linger = linger
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.flushes = 0  # calls made to Redis (every ``RUN`` call counts one)
        self._slots: dict[str, int] = {}  # stream key -> its slot (a cluster's partitions)
        self._reset()
        _lingers.add(self)
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._reset())

    def _reset(self) -> None:
        self._queue: deque[Pending] = deque()
        self._lock = threading.Lock()  # the queue
        self._flushing = threading.Lock()  # one flush at a time: batches reach Redis in order
        self._wake = threading.Event()  # set while the queue holds hits
        self._full = threading.Event()  # set while it holds a batch's worth
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Hits waiting to be sent."""
        return len(self._queue)

    def offer(self, record: dict, stream: EventStream | None, call: Call | None) -> None:
        """Queue a hit (``call``, prepared by ``stream``; its spool ``record`` if Redis cannot take it).

        Encoding errors are raised here, to the caller, as redis-py would raise them.
        """
        if call is None or stream is None:
            pending = Pending(record, None, 0, (), b"", 0)
        else:
            slot = 0
            if stream.cluster:
                slot = self._slots.get(call.keys[0])
                if slot is None:
                    slot = self._slots[call.keys[0]] = stream.client.keyslot(call.keys[0])
            memo: dict = {}
            args = encode(call.args, memo)
            pending = Pending(record, call, slot, encode_keys(call.keys, memo), args, len(call.args))
        with self._lock:
            self._queue.append(pending)
            waiting = len(self._queue)
            if waiting == 1:
                self._wake.set()
            if waiting >= self.max_batch:
                self._full.set()
            if self._thread is None and not self._closed:
                self._start()
        if waiting > self.max_queue or self._closed:
            self.flush()  # Redis is behind: this request waits, as it would without lingering

    def _start(self) -> None:
        if not _exit_hook:
            _exit_hook.append(atexit.register(flush_all))  # after the stores' own exit hooks: runs before them
        self._thread = threading.Thread(target=self._run, name="linger-flusher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            if self._closed:
                return
            self._full.wait(self.linger)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the flusher must outlive any one batch (flush spills what failed)
                log.exception("event batch not flushed")

    def flush(self) -> None:
        """Send everything queued now (in the caller's thread), in order; returns when it is sent or spilled."""
        with self._flushing:
            while True:
                with self._lock:
                    queue = self._queue
                    batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
                    if len(queue) < self.max_batch:
                        self._full.clear()
                    if not queue:
                        self._wake.clear()
                if not batch:
                    return
                self._send(batch)

    def close(self) -> None:
        """Stop the flusher after sending what is queued (later offers flush at once)."""
        self._closed = True
        self._wake.set()
        self._full.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()

    def _send(self, batch: list[Pending]) -> None:
        if not self.breaker.allow():
            self.spill([p.record for p in batch])
            return
        if any(p.call is None for p in batch):  # no client could be made a moment ago: the batch waits, in order
            self.breaker.failure()
            self.spill([p.record for p in batch])
            return
        try:
            stream = self.stream()
            failed = self._write(stream, batch)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the hits go to the spool
            log.warning("event batch not written (%s): spooling %d events", exc, len(batch), exc_info=True)
            failed = [p.record for p in batch]
        if failed:
            self.breaker.failure()
            self.spill(failed)
        else:
            self.breaker.success()

    def _write(self, stream: EventStream, batch: list[Pending]) -> list[dict]:
        """Write the batch; returns what the spool keeps of the hits that could not be written, in order."""
        client = stream.client
        by_slot: dict[int, list[Pending]] = {}
        weights: dict[str, dict[str, float]] = {}
        for pending in batch:
            by_slot.setdefault(pending.slot, []).append(pending)
            add_popularity(weights, pending.call)
        scripts = [self._run_call(stream, slot, hits) for slot, hits in by_slot.items()]
        if weights:
            if stream.cluster:
                pop_slots: dict[int, dict] = {}
                for key, skus in weights.items():
                    pop_slots.setdefault(client.keyslot(key), {})[key] = skus
                scripts += [self._popular_call(stream, slot, w) for slot, w in pop_slots.items()]
            else:
                scripts.append(self._popular_call(stream, 0, weights))
        failed: list[dict] = []
        for node, calls in self._targets(client, stream.cluster, scripts):
            failed += self._pipeline(stream, node, calls)
        self.flushes += len(by_slot)
        return failed

    @staticmethod
    def _run_call(stream: EventStream, slot: int, hits: list[Pending]) -> _Script:
        once = new_once(stream.partitions, hits[0].call.partition)
        head_keys, head_args = stream.call_head([p.call for p in hits], once)
        keys = list(dict.fromkeys([*(k for p in hits for k in p.keys), *map(bulk, head_keys)]))
        nargs = len(head_args) + sum(p.nargs for p in hits)
        head = b"*%d\r\n$7\r\nEVALSHA\r\n%b%b" % (3 + len(keys) + nargs, bulk(stream.run_script.sha), bulk(len(keys)))
        # the id is encoded apart: ``encode`` would keep each new one in its table of recurring values
        packed = b"".join([head, *keys, *map(bulk, head_args), *(p.args for p in hits)])
        return _Script(slot, packed, [*(k for p in hits for k in p.call.keys), *head_keys],
                       [*head_args, *(a for p in hits for a in p.call.args)], hits, once)

    @staticmethod
    def _popular_call(stream: EventStream, slot: int, weights: dict) -> _Script:
        keys, args = popular_args(weights)
        parts = [bulk("EVALSHA"), bulk(stream.popular_script.sha), bulk(len(keys)), *map(bulk, keys), *map(bulk, args)]
        return _Script(slot, b"*%d\r\n%b" % (len(parts), b"".join(parts)), keys, args, None)

    @staticmethod
    def _targets(client, cluster: bool, scripts: list[_Script]) -> list[tuple[redis.Redis | None, list[_Script]]]:
        """The calls grouped by the Redis server to write them to (None: redis-py's call decides)."""
        if not cluster:
            return [(client, scripts)]
        nodes: dict[str, tuple[redis.Redis | None, list[_Script]]] = {}
        for script in scripts:
            try:
                node = client.nodes_manager.get_node_from_slot(script.slot)
                name, conn = node.name, node.redis_connection
            except Exception:  # noqa: BLE001 - no owner known now (a failover): redis-py finds it or fails
                name, conn = "", None
            nodes.setdefault(name, (conn, []))[1].append(script)
        return list(nodes.values())

    def _pipeline(self, stream: EventStream, node: redis.Redis | None, calls: list[_Script]) -> list[dict]:
        """Write ``calls`` to ``node`` in one go and read their answers; what the spool keeps of those
        not written."""
        answers: list = [None] * len(calls)
        read = 0
        error: Exception = redis.ConnectionError("no node owns the slot now")
        if node is not None:
            pool = node.connection_pool
            conn = None
            try:
                conn = pool.get_connection("EVALSHA")
                conn.send_packed_command([b"".join(c.packed for c in calls)])
                while read < len(calls):
                    try:
                        answers[read] = conn.read_response()
                    except redis.ResponseError as exc:
                        answers[read] = exc
                    read += 1
            except (redis.ConnectionError, OSError) as exc:  # redis-py dropped the connection; its own call reconnects
                error = redis.ConnectionError(str(exc))
            except redis.RedisError as exc:  # a timeout: the calls may have run, so they are not sent again
                error = exc
            finally:
                if conn is not None:
                    pool.release(conn)
        answers[read:] = [error] * (len(calls) - read)
        failed: list[dict] = []
        for call, answer in zip(calls, answers):
            if isinstance(answer, RETRY_WITH_REDIS_PY):
                answer = self._redis_py(stream, call)
            if isinstance(answer, Exception) and call.hits is not None:
                log.warning("Redis did not take %d events (%s): spooling them", len(call.hits), answer)
                failed.append(_spooled(call))
        return failed

    @staticmethod
    def _redis_py(stream: EventStream, call: _Script):
        """The call through redis-py (redirections, reconnection, script loading); its answer or error."""
        script = stream.run_script if call.hits is not None else stream.popular_script
        try:
            return script(keys=call.keys, args=call.args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller as the call's answer
            return exc


_lingers: weakref.WeakSet[Linger] = weakref.WeakSet()
_exit_hook: list = []


def flush_all() -> None:
    """Send what every queue of this process holds (at exit; gunicorn's ``worker_exit`` hook)."""
    for linger in list(_lingers):
        try:
            linger.flush()
        except Exception:  # noqa: BLE001 - exiting: the other queues still get their turn
            log.exception("event batch not flushed at exit")
