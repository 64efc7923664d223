"""The batch writer: drains the Redis event stream into ClickHouse.

It reads with a consumer group, gathers a batch bounded by size and time, inserts it, and only
then acknowledges (and deletes) the entries. A failed insert is retried with back-off and never
acknowledged, so nothing accepted is lost; entries left pending by a crash are read again at
start-up, and those ClickHouse already holds (rows carry their stream id) are not inserted twice.

Throughput (``docs/benchmarks.md``, "Writer profile"): the work is Python per event, so the path
avoids per-event Python wherever it can. Stream replies are taken raw from hiredis (no dict per
entry), JSON is parsed by orjson, rows are built a column at a time with C-level checks of the
common well-formed case (``event_columns``) and sent as one columnar native block. While one batch
is inserted and acknowledged by a second thread, the next one is read and built: both wait on
servers much of the time, so the waits overlap. Several writer processes may share the stream,
each under its own consumer name (``ADSERVER_WRITER_NAME``).

Run it as its own process in production (``python -m tracker.writer``); the embedded single-process
mode runs it as a thread of the web app. SIGTERM makes it flush what it holds and exit.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import math
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from operator import itemgetter
from typing import Any

import redis

from tracker import schema
from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError

try:  # several times faster than json; ``_decode`` falls back to json for what orjson refuses
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in requirements.txt
    _fast_loads = None

log = logging.getLogger(__name__)

GROUP = "writer"
RECOVERY_WINDOW = 3600  # seconds around a pending batch searched for rows already stored
# Entries per XREADGROUP and ids per XACK/XDEL command. Redis runs one command at a time, so a
# command over 50,000 entries would stall every pixel for tens of milliseconds; commands of this
# size keep each stall to a few milliseconds and cost nothing measurable in throughput.
COMMAND_CHUNK = 10_000
RECOVERY_CHUNK = 5_000  # stream ids per "already stored?" query (about 100 KB of SQL)
FULL_COLLECTION_SECONDS = 30.0  # cyclic garbage (threads, queues, sockets) waits at most this long
READ_PAUSE = 0.05  # after a read that drained the stream: at most ~20 reads/s under a trickle (see _gather)

_EPOCH = datetime(1970, 1, 1)
_TS_MAX = 0xFFFFFFFF  # ClickHouse DateTime is unsigned 32-bit: anything outside would fail the whole block


def _unix(value: Any) -> int:
    """Unix seconds of an event's ``ts``; now if it is missing, malformed or outside DateTime's range."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return int(time.time())
    return seconds if 0 <= seconds <= _TS_MAX else int(time.time())


def _ts(value: Any) -> datetime:
    """A naive UTC datetime from unix seconds (arithmetic on a naive epoch: no time-zone work per row)."""
    return _EPOCH + timedelta(seconds=_unix(value))


def _str(value: Any, limit: int = 2048) -> str:
    if type(value) is str:  # the common case, kept cheap
        return value if len(value) <= limit else value[:limit]
    return "" if value is None else str(value)[:limit]


def _strs(value: Any) -> list[str]:
    return [_str(v, 200) for v in value] if isinstance(value, list) else []


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _num(value: Any) -> float:
    number = _float(value)
    return number if number == number and abs(number) < 1e15 else 0.0  # no NaN or infinities


def _uint(value: Any, limit: int) -> int:
    try:
        return min(max(int(value or 0), 0), limit)
    except (TypeError, ValueError, OverflowError):
        return 0


def event_row(d: dict, stream_id: str) -> tuple:
    """An ``events`` row from a stream entry's JSON (column order of ``schema.EVENTS_COLUMNS``).

    The reference for one entry; the writer builds whole batches with ``event_columns``, which
    yields the same values (``ts`` as unix seconds rather than a datetime).
    """
    skus = _strs(d.get("skus"))
    return (
        _ts(d.get("ts")), _str(d.get("advertiser"), 64), _str(d.get("event"), 32), _str(d.get("uid"), 64),
        skus[0] if skus else "", skus, _strs(d.get("reasons")), _str(d.get("order_id"), 100),
        _float(d.get("value")), _str(d.get("currency"), 3), _str(d.get("placement"), 64),
        _str(d.get("impression_id"), 64), _str(d.get("size"), 16), 1 if d.get("addressable") else 0,
        _str(d.get("device"), 16), _str(d.get("url")), _str(d.get("ref")), stream_id,
        _str(d.get("campaign"), 64), _num(d.get("cost")), _num(d.get("pctr")),
        _uint(d.get("interest_age"), 0xFFFFFFFF), _uint(d.get("interest_views"), 0xFFFF),
        1 if d.get("invalid") else 0, _str(d.get("invalid_reason"), 64),
    )


def bad_row(d: dict, stream_id: str) -> tuple:
    """A ``bad_events`` row (column order of ``schema.BAD_EVENTS_COLUMNS``)."""
    errors = _strs(d.get("errors")) or ["unknown"]
    return (
        _ts(d.get("ts")), _str(d.get("advertiser"), 64), _str(d.get("event"), 32), _str(d.get("uid"), 64),
        errors[0].split(":", 1)[0], errors, _str(d.get("raw"), 8192), stream_id,
    )


# --- Columns for a whole batch ------------------------------------------------------------------
# Each column is first taken as it is and checked with C-level passes (the set of value types, the
# longest string); only a column that fails the check is cleaned value by value with the functions
# ``event_row`` uses. A key no entry of the batch has costs a constant.

_NO_STRS: list = []  # default of list columns; shared, never mutated
_HEAD = itemgetter(0, 1, 2)  # b"t", kind, b"d" of an entry's flat field list
_PAYLOAD = itemgetter(3)


def _types(values: list) -> set:
    return set(map(type, values))


def _ts_column(datas: list[dict], present: set, n: int) -> list[int]:
    if "ts" not in present:
        return [int(time.time())] * n
    values = [d.get("ts") for d in datas]
    if _types(values) <= {int, float}:
        try:
            out = list(map(int, values))
            if min(out) >= 0 and max(out) <= _TS_MAX:
                return out
        except (ValueError, OverflowError):  # NaN, infinities
            pass
    return [_unix(v) for v in values]


def _str_column(datas: list[dict], key: str, limit: int, present: set, n: int) -> list[str]:
    if key not in present:
        return [""] * n
    values = [d.get(key, "") for d in datas]
    if _types(values) == {str} and max(map(len, values)) <= limit:
        return values
    return [_str(v, limit) for v in values]


def _strs_column(datas: list[dict], key: str, present: set, n: int) -> list[list[str]]:
    if key not in present:
        return [_NO_STRS] * n
    values = [d.get(key, _NO_STRS) for d in datas]
    if _types(values) == {list}:
        flat = list(chain.from_iterable(values))
        if not flat or (_types(flat) == {str} and max(map(len, flat)) <= 200):
            return values
    return [_strs(v) for v in values]


def _float_column(datas: list[dict], key: str, finite: bool, present: set, n: int) -> list[float]:
    if key not in present:
        return [0.0] * n
    values = [d.get(key, 0.0) for d in datas]
    if _types(values) <= {int, float}:
        try:
            out = [v + 0.0 for v in map(float, values)]  # + 0.0: -0.0 becomes 0.0, as event_row gives
            if not finite or (not any(map(math.isnan, out)) and max(map(abs, out)) < 1e15):
                return out
        except OverflowError:  # an integer beyond float
            pass
    return [(_num if finite else _float)(v) for v in values]


def _uint_column(datas: list[dict], key: str, limit: int, present: set, n: int) -> list[int]:
    if key not in present:
        return [0] * n
    values = [d.get(key, 0) for d in datas]
    if _types(values) == {int} and min(values) >= 0 and max(values) <= limit:
        return values
    return [_uint(v, limit) for v in values]


def _flag_column(datas: list[dict], key: str, present: set, n: int) -> list[int]:
    if key not in present:
        return [0] * n
    return list(map(int, map(bool, (d.get(key) for d in datas))))


# The entry key each column comes from; ``ts`` (now when missing) and ``stream_id`` always carry values.
_SOURCE_KEY = {"sku": "skus", "ts": None, "stream_id": None}


def event_block(datas: list[dict], stream_ids: list[str]) -> tuple[tuple[str, ...], list[list]]:
    """The ``events`` columns worth sending for these entries, with their names.

    A column whose key no entry has holds only its default ('', 0, []), which is what ClickHouse
    fills in for a column left out of an INSERT (the table's defaults are the same values). Pixel
    events carry a handful of the 25 columns: leaving out the others saves most of the encoding
    in the driver and most of the parsing in the server.
    """
    present: set = set().union(*datas) if datas else set()
    columns = event_columns(datas, stream_ids, present)
    keep = [n for n, name in enumerate(schema.EVENTS_COLUMNS)
            if _SOURCE_KEY.get(name, name) is None or _SOURCE_KEY.get(name, name) in present]
    return tuple(schema.EVENTS_COLUMNS[n] for n in keep), [columns[n] for n in keep]


def event_columns(datas: list[dict], stream_ids: list[str], present: set | None = None) -> list[list]:
    """The ``events`` columns (order of ``schema.EVENTS_COLUMNS``) for many entries at once.

    Same values as ``event_row`` applied to each entry, except ``ts``: unix seconds, which the
    native protocol sends without per-value date arithmetic. ``present``: the keys of all entries.
    """
    n = len(datas)
    if present is None:
        present = set().union(*datas) if n else set()
    skus = _strs_column(datas, "skus", present, n)
    return [
        _ts_column(datas, present, n),
        _str_column(datas, "advertiser", 64, present, n),
        _str_column(datas, "event", 32, present, n),
        _str_column(datas, "uid", 64, present, n),
        [s[0] if s else "" for s in skus],
        skus,
        _strs_column(datas, "reasons", present, n),
        _str_column(datas, "order_id", 100, present, n),
        _float_column(datas, "value", False, present, n),
        _str_column(datas, "currency", 3, present, n),
        _str_column(datas, "placement", 64, present, n),
        _str_column(datas, "impression_id", 64, present, n),
        _str_column(datas, "size", 16, present, n),
        _flag_column(datas, "addressable", present, n),
        _str_column(datas, "device", 16, present, n),
        _str_column(datas, "url", 2048, present, n),
        _str_column(datas, "ref", 2048, present, n),
        list(stream_ids),
        _str_column(datas, "campaign", 64, present, n),
        _float_column(datas, "cost", True, present, n),
        _float_column(datas, "pctr", True, present, n),
        _uint_column(datas, "interest_age", 0xFFFFFFFF, present, n),
        _uint_column(datas, "interest_views", 0xFFFF, present, n),
        _flag_column(datas, "invalid", present, n),
        _str_column(datas, "invalid_reason", 64, present, n),
    ]


def _decode(payload: bytes) -> Any:
    """One entry's JSON; orjson first, json for what it refuses (NaN, huge integers): same acceptance as json."""
    if _fast_loads is not None:
        try:
            return _fast_loads(payload)
        except ValueError:
            pass
    return json.loads(payload.decode())


def _transpose(rows: list[tuple], width: int) -> list[list]:
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]


@dataclass
class _Batch:
    """Entries of one or more reads, as Redis returned them, and the columns built from them.

    ``fields`` holds each entry's flat ``[name, value, ...]`` reply, ``None`` for an entry deleted
    while pending (acknowledged, not inserted). Every id is acknowledged together, after the insert.
    """

    ids: list[bytes] = field(default_factory=list)
    fields: list[list | None] = field(default_factory=list)
    events: list[list] | None = None
    event_names: tuple[str, ...] = schema.EVENTS_COLUMNS
    bad: list[list] | None = None
    rows: int = 0
    skipped: int = 0
    ordered: bool = True  # ids ascending, as every read returns them


    def __len__(self) -> int:
        return len(self.ids)


class BatchWriter:
    """Moves events from the stream to ClickHouse in batches; see the module docstring."""

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
    ) -> None:
        self.client = client
        # The same connections, but XREADGROUP replies left as hiredis built them: redis-py would
        # otherwise turn every entry into a dict, a fifth of the writer's time before this change.
        self._raw = redis.Redis(connection_pool=client.connection_pool)
        self._raw.set_response_callback("XREADGROUP", lambda response, **_: response)
        self.ch = ch
        self.stream_key = stream_key
        self.consumer = consumer
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.max_backoff = max_backoff
        self.stop_event = threading.Event()
        self.written = 0
        self.failures = 0
        self.last_flush: float | None = None
        self.crash_at = crash_at

    def _crash_point(self, name: str) -> None:
        """Die like a killed process at a named point (fault-injection tests of exactly-once)."""
        if self.crash_at == name:
            os.kill(os.getpid(), signal.SIGKILL)

    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream_key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- reading ----------------------------------------------------------------------------------

    def _read_into(self, batch: _Batch, last_id: str, count: int, block_ms: int | None) -> int:
        """One XREADGROUP of at most ``count`` entries appended to ``batch``; returns how many came."""
        reply = self._raw.xreadgroup(GROUP, self.consumer, {self.stream_key: last_id}, count=count, block=block_ms)
        got = 0
        streams = reply.values() if isinstance(reply, dict) else (items for _stream, items in reply or ())  # RESP3, RESP2
        for items in streams:
            for entry_id, fields in items:
                batch.ids.append(entry_id)
                batch.fields.append(fields)
                got += 1
        return got

    def _read(self, last_id: str, count: int, block_ms: int | None) -> list[tuple[str, dict]]:
        """Entries as ``(id, {field: value})`` (entries deleted while pending left out)."""
        batch = _Batch()
        self._read_into(batch, last_id, count, block_ms)
        return [(i.decode(), _pairs(f)) for i, f in zip(batch.ids, batch.fields) if f is not None]

    def _gather(self) -> _Batch:
        """Read one batch: up to ``batch_size`` new entries, waiting at most ``batch_seconds`` for them."""
        batch = _Batch()
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            count = min(self.batch_size - len(batch), COMMAND_CHUNK)
            if self._read_into(batch, ">", count, max(1, int(remaining * 1000))) < count:
                # The stream is drained: a blocking read would come back with the next single entry.
                # Let entries gather first, so a steady trickle costs a few reads a second, not one each.
                self.stop_event.wait(min(READ_PAUSE, max(0.0, deadline - time.monotonic())))
        return batch

    # --- building ---------------------------------------------------------------------------------

    def _already_stored(self, entries: list[tuple[str, Any]]) -> set[str]:
        """Stream ids of a recovered batch that ClickHouse already has (crash after insert, before ack)."""
        ids = [entry_id for entry_id, _ in entries]
        if not ids:
            return set()
        ms = [int(i.split("-")[0]) / 1000 for i in ids]
        lo, hi = _ts(min(ms) - RECOVERY_WINDOW), _ts(max(ms) + RECOVERY_WINDOW)
        found = set()
        # In chunks: a retried batch of 50,000 ids would be ~1 MB of SQL, over ClickHouse's max_query_size.
        for start in range(0, len(ids), RECOVERY_CHUNK):
            chunk = tuple(ids[start:start + RECOVERY_CHUNK])
            for table in ("events", "bad_events"):
                rows = self.ch.execute(
                    f"SELECT stream_id FROM {table} WHERE inserted_at >= %(lo)s AND inserted_at <= %(hi)s "
                    "AND stream_id IN %(ids)s",
                    {"lo": lo, "hi": hi, "ids": chunk},
                )
                found.update(r[0] for r in rows)
        return found

    def _build(self, batch: _Batch, recovered: bool = False) -> _Batch:
        """Fill the batch's columns; a recovered batch leaves out what ClickHouse already holds."""
        stream_ids = list(map(bytes.decode, batch.ids))
        skip: set[str] = set()
        if recovered:
            skip = self._already_stored([(i, None) for i, f in zip(stream_ids, batch.fields) if f is not None])
        ev_ids: list[str] = []
        ev_payloads: list[bytes] = []
        ev_fields: list[list] = []
        bad: list[tuple] = []
        every = batch.fields
        if (not skip and every and None not in every and set(map(len, every)) == {4}
                and set(map(_HEAD, every)) == {(b"t", b"ev", b"d")}):
            every = []  # all are events as EventStream writes them: checked in C-level passes above
            ev_ids, ev_payloads, ev_fields = stream_ids, list(map(_PAYLOAD, batch.fields)), batch.fields
        for entry_id, fields in zip(stream_ids, every):
            if fields is None or entry_id in skip:
                continue
            if len(fields) == 4 and fields[0] == b"t" and fields[2] == b"d":  # what EventStream writes
                kind, payload = fields[1], fields[3]
            else:
                pairs = _pairs(fields)
                kind, payload = pairs.get(b"t", b""), pairs.get(b"d", b"{}")
            if kind == b"ev":
                ev_ids.append(entry_id)
                ev_payloads.append(payload)
                ev_fields.append(fields)
            else:
                bad.append(self._bad_entry(entry_id, fields, payload))
        datas: list = []
        if ev_payloads:
            try:  # the whole batch in one C-level pass; entry by entry only if something is off
                datas = list(map(_fast_loads, ev_payloads)) if _fast_loads else []
                if _types(datas) != {dict}:
                    datas = []
            except ValueError:
                datas = []
            if not datas:
                datas, ids_ok = [], []
                for entry_id, payload, fields in zip(ev_ids, ev_payloads, ev_fields):
                    try:
                        data = _decode(payload)
                    except ValueError:
                        data = None
                    if isinstance(data, dict):
                        datas.append(data)
                        ids_ok.append(entry_id)
                    else:
                        bad.append(_undecodable(entry_id, fields))
                ev_ids = ids_ok
        batch.event_names, batch.events = event_block(datas, ev_ids)
        batch.bad = _transpose(bad, len(schema.BAD_EVENTS_COLUMNS))
        batch.rows = len(ev_ids) + len(bad)
        batch.skipped = len(skip)
        return batch

    @staticmethod
    def _bad_entry(entry_id: str, fields: list, payload: bytes) -> tuple:
        try:
            data = _decode(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _undecodable(entry_id, fields)
        return bad_row(data, entry_id)

    # --- writing ----------------------------------------------------------------------------------

    def _insert(self, table: str, columns: tuple[str, ...], data: list[list]) -> None:
        if not data or not data[0]:
            return
        insert_columns = getattr(self.ch, "insert_columns", None)
        if insert_columns is not None:
            insert_columns(table, columns, data)
        else:  # a backend without columnar inserts
            self.ch.insert(table, columns, zip(*data))

    def _ack(self, ids: list[bytes], ordered: bool = True) -> None:
        """Acknowledge every id, then remove from the stream what the group has fully processed.

        XDEL costs Redis about a microsecond per id, more than any other step on its side, while
        ``XTRIM MINID`` drops whole nodes of the stream at once. Everything below the group's
        low-water mark is processed: delivered (below the last delivered id, read first) and no
        longer pending (below the oldest pending id, read after), so acknowledged, so stored.
        The ids of this batch above the mark (another consumer holds older entries pending, e.g.
        one that crashed and was not restarted yet) are deleted one by one as before.
        """
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(ids), COMMAND_CHUNK):
            pipe.xack(self.stream_key, GROUP, *ids[start:start + COMMAND_CHUNK])
        pipe.xinfo_groups(self.stream_key)  # last delivered id first, oldest pending id second: see above
        pipe.xpending(self.stream_key, GROUP)
        *_, groups, pending = pipe.execute()
        low = _low_water(groups, pending)
        left = ids
        pipe = self.client.pipeline(transaction=False)
        if low is not None:
            top = _id_key(ids[-1]) if ordered else max(map(_id_key, ids))
            left = [] if top < low else [i for i in ids if _id_key(i) >= low]
            pipe.xtrim(self.stream_key, minid=f"{low[0]}-{low[1]}", approximate=False)
        for start in range(0, len(left), COMMAND_CHUNK):
            pipe.xdel(self.stream_key, *left[start:start + COMMAND_CHUNK])
        try:
            pipe.execute()
        except redis.ResponseError:  # XTRIM MINID needs Redis 6.2: delete one by one
            for start in range(0, len(ids), COMMAND_CHUNK):
                self.client.xdel(self.stream_key, *ids[start:start + COMMAND_CHUNK])

    def _write(self, batch: _Batch) -> int:
        """Insert a built batch, then acknowledge it; raises on failure (nothing acknowledged)."""
        self._crash_point("before_insert")
        self._insert("events", batch.event_names, batch.events)
        self._crash_point("between_inserts")
        self._insert("bad_events", schema.BAD_EVENTS_COLUMNS, batch.bad)
        self._crash_point("after_insert")
        self._ack(batch.ids, batch.ordered)
        self.written += batch.rows
        self.last_flush = time.time()
        if batch.skipped:
            log.info("skipped %d recovered entries already in ClickHouse", batch.skipped)
        return batch.rows

    def flush(self, entries: list[tuple[str, dict]] | _Batch, recovered: bool = False) -> int:
        """Insert one batch, then acknowledge it; raises on failure (nothing acknowledged)."""
        batch = entries if isinstance(entries, _Batch) else _batch_of(entries)
        if not batch.ids:
            return 0
        if batch.events is None or recovered:
            self._build(batch, recovered)
        return self._write(batch)

    def _flush_with_retry(self, entries: list[tuple[str, dict]] | _Batch, recovered: bool = False) -> None:
        """Flush until it succeeds; if asked to stop meanwhile, leave the batch pending and raise."""
        backoff = 0.2
        while True:
            try:
                self.flush(entries, recovered)
                return
            except (StoreError, redis.RedisError) as exc:
                self.failures += 1
                log.warning("flush of %d entries failed (%s); retrying in %.1fs", len(entries), exc, backoff)
                if self.stop_event.wait(backoff):
                    raise  # still pending in the group: the next start recovers it
                backoff = min(backoff * 2, self.max_backoff)
                recovered = True  # the insert may have landed before the error

    # --- loops ------------------------------------------------------------------------------------

    def recover(self) -> int:
        """Re-process entries this consumer read but never acknowledged (a previous crash)."""
        total = 0
        while not self.stop_event.is_set():
            batch = _Batch()
            self._read_into(batch, "0", min(self.batch_size, COMMAND_CHUNK), None)
            if not batch.ids:
                break
            self._flush_with_retry(batch, recovered=True)
            total += len(batch)
        return total

    def run_once(self) -> int:
        """Gather one batch (bounded by size and time) and write it; returns its size."""
        batch = self._gather()
        if batch.ids:
            self._flush_with_retry(self._build(batch))
        return len(batch)

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
        """
        self._start()
        last_full_collection = time.monotonic()
        built: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        inserter = threading.Thread(target=self._insert_loop, args=(built,), name="event-writer-insert", daemon=True)
        inserter.start()
        try:
            while not self.stop_event.is_set() and inserter.is_alive():
                try:
                    batch = self._gather()
                    if time.monotonic() - last_full_collection > FULL_COLLECTION_SECONDS:
                        gc.collect()  # the raised thresholds make full passes rare: bound what waits for one
                        last_full_collection = time.monotonic()
                    if batch.ids:
                        self._build(batch)
                        _hand_over(built, batch, inserter)
                except Exception as exc:  # noqa: BLE001 - the writer must outlive any single failure
                    if self.stop_event.is_set():
                        break
                    self._loop_error(exc)
        finally:
            _hand_over(built, None, inserter)
            inserter.join()

    def _insert_loop(self, built: queue.Queue) -> None:
        while True:
            batch = built.get()
            if batch is None:
                return
            try:
                self._flush_with_retry(batch)
            except Exception as exc:  # noqa: BLE001 - the batch stays pending; the next start recovers it
                if self.stop_event.is_set():
                    continue  # stopping: later batches are tried once more each, then left pending
                self._loop_error(exc)

    def stop(self) -> None:
        self.stop_event.set()


def _hand_over(built: queue.Queue, item: _Batch | None, inserter: threading.Thread) -> None:
    """Queue ``item`` for the inserter, waiting while it is busy; give up if it has died."""
    while inserter.is_alive():
        try:
            built.put(item, timeout=0.5)
            return
        except queue.Full:
            continue


def _pairs(fields: list) -> dict:
    """``{name: value}`` of a flat stream entry reply (a repeated name keeps its last value, as redis-py)."""
    return dict(zip(fields[::2], fields[1::2]))


def _undecodable(entry_id: str, fields: list) -> tuple:
    return bad_row({"errors": ["undecodable: stream entry is not JSON"], "raw": repr(_pairs(fields))[:8192]},
                   entry_id)


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def _low_water(groups: list[dict], pending: dict) -> tuple[int, int] | None:
    """The id below which the writer group has acknowledged every entry; None if unknown."""
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) != GROUP:
            continue
        ms, seq = _id_key(group["last-delivered-id"])
        low = (ms, seq + 1)
        if pending.get("pending") and pending.get("min"):
            low = min(low, _id_key(pending["min"]))
        return low
    return None


def _batch_of(entries: list[tuple[str, dict]]) -> _Batch:
    """A batch from ``(id, {field: value})`` entries, as ``_read`` returns them."""
    batch = _Batch(ordered=False)
    for entry_id, fields in entries:
        batch.ids.append(entry_id.encode())
        batch.fields.append(list(chain.from_iterable(fields.items())))
    return batch


def start_thread(writer: BatchWriter) -> threading.Thread:
    """Run a writer in a daemon thread (embedded mode); at exit it is stopped and flushed first."""
    thread = threading.Thread(target=writer.run, name="event-writer", daemon=True)
    thread.start()

    def stop() -> None:
        writer.stop()
        thread.join(timeout=10)

    atexit.register(stop)  # registered after the embedded stores' exit hook, so it runs before it
    return thread


def main() -> int:
    """Entry point of ``python -m tracker.writer``: migrate, then drain until SIGTERM."""
    from tracker.settings import SettingsError, load_settings
    from tracker.stores import Stores

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    stores = Stores(settings)
    ch = stores.clickhouse()
    ch.create_database()
    schema.migrate(ch)
    writer = BatchWriter(
        stores.redis("writer"), ch, settings.stream_key, settings.writer_name,
        settings.writer_batch_size, settings.writer_batch_seconds, crash_at=settings.writer_crash_at,
    )
    signal.signal(signal.SIGTERM, lambda *_: writer.stop())
    signal.signal(signal.SIGINT, lambda *_: writer.stop())
    # A batch allocates hundreds of thousands of small containers that live until its insert: with
    # the default thresholds the collector runs thousands of times per batch and its full passes
    # walk every one of them, which doubled the cost of reading and building. They hold no cycles;
    # collect rarely, and never walk what start-up loaded.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # plus a full collection every FULL_COLLECTION_SECONDS in run()
    log.info("writer %s draining %s", settings.writer_name, settings.stream_key)
    writer.run()
    log.info("writer stopped after %d rows", writer.written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
