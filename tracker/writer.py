"""The batch writer: drains the Redis event stream into ClickHouse.

It reads with a consumer group, gathers a batch bounded by size and time, inserts it, and only
then acknowledges (and deletes) the entries. A failed insert is retried with back-off and never
acknowledged, so nothing accepted is lost; entries left pending by a crash are read again at
start-up, and those ClickHouse already holds (rows carry their stream id) are not inserted twice.

Run it as its own process in production (``python -m tracker.writer``); the embedded single-process
mode runs it as a thread of the web app. SIGTERM makes it flush what it holds and exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from tracker import schema
from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError

log = logging.getLogger(__name__)

GROUP = "writer"
RECOVERY_WINDOW = 3600  # seconds around a pending batch searched for rows already stored


_EPOCH = datetime(1970, 1, 1)


def _ts(value: Any) -> datetime:
    """A naive UTC datetime from unix seconds (arithmetic on a naive epoch: no time-zone work per row)."""
    try:
        return _EPOCH + timedelta(seconds=int(float(value)))
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC).replace(tzinfo=None)


def _str(value: Any, limit: int = 2048) -> str:
    if type(value) is str:  # the common case, kept cheap: the writer handles every event
        return value if len(value) <= limit else value[:limit]
    return "" if value is None else str(value)[:limit]


def _strs(value: Any) -> list[str]:
    return [_str(v, 200) for v in value] if isinstance(value, list) else []


def event_row(d: dict, stream_id: str) -> tuple:
    """An ``events`` row from a stream entry's JSON (column order of ``schema.EVENTS_COLUMNS``)."""
    skus = _strs(d.get("skus"))
    try:
        value = float(d.get("value") or 0.0)
    except (TypeError, ValueError):
        value = 0.0
    return (
        _ts(d.get("ts")), _str(d.get("advertiser"), 64), _str(d.get("event"), 32), _str(d.get("uid"), 64),
        skus[0] if skus else "", skus, _strs(d.get("reasons")), _str(d.get("order_id"), 100), value,
        _str(d.get("currency"), 3), _str(d.get("placement"), 64), _str(d.get("impression_id"), 64),
        _str(d.get("size"), 16), 1 if d.get("addressable") else 0, _str(d.get("device"), 16),
        _str(d.get("url")), _str(d.get("ref")), stream_id,
        _str(d.get("campaign"), 64), _num(d.get("cost")), _num(d.get("pctr")),
        _uint(d.get("interest_age"), 0xFFFFFFFF), _uint(d.get("interest_views"), 0xFFFF),
        1 if d.get("invalid") else 0, _str(d.get("invalid_reason"), 64),
    )


def _num(value: Any) -> float:
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if number == number and abs(number) < 1e15 else 0.0  # no NaN or infinities


def _uint(value: Any, limit: int) -> int:
    try:
        return min(max(int(value or 0), 0), limit)
    except (TypeError, ValueError, OverflowError):
        return 0


def bad_row(d: dict, stream_id: str) -> tuple:
    """A ``bad_events`` row (column order of ``schema.BAD_EVENTS_COLUMNS``)."""
    errors = _strs(d.get("errors")) or ["unknown"]
    return (
        _ts(d.get("ts")), _str(d.get("advertiser"), 64), _str(d.get("event"), 32), _str(d.get("uid"), 64),
        errors[0].split(":", 1)[0], errors, _str(d.get("raw"), 8192), stream_id,
    )


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

    def _read(self, last_id: str, count: int, block_ms: int | None) -> list[tuple[str, dict]]:
        reply = self.client.xreadgroup(GROUP, self.consumer, {self.stream_key: last_id}, count=count, block=block_ms)
        entries = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                if fields is None:  # deleted while pending
                    continue
                entries.append((entry_id.decode(), fields))
        return entries

    def _already_stored(self, entries: list[tuple[str, dict]]) -> set[str]:
        """Stream ids of a recovered batch that ClickHouse already has (crash after insert, before ack)."""
        ids = [entry_id for entry_id, _ in entries]
        if not ids:
            return set()
        ms = [int(i.split("-")[0]) / 1000 for i in ids]
        lo, hi = _ts(min(ms) - RECOVERY_WINDOW), _ts(max(ms) + RECOVERY_WINDOW)
        found = set()
        for table in ("events", "bad_events"):
            rows = self.ch.execute(
                f"SELECT stream_id FROM {table} WHERE inserted_at >= %(lo)s AND inserted_at <= %(hi)s "
                "AND stream_id IN %(ids)s",
                {"lo": lo, "hi": hi, "ids": tuple(ids)},
            )
            found.update(r[0] for r in rows)
        return found

    def flush(self, entries: list[tuple[str, dict]], recovered: bool = False) -> int:
        """Insert one batch, then acknowledge it; raises on failure (nothing acknowledged)."""
        if not entries:
            return 0
        skip = self._already_stored(entries) if recovered else set()
        events, bad = [], []
        for entry_id, fields in entries:
            if entry_id in skip:
                continue
            kind = fields.get(b"t", b"").decode(errors="replace")
            try:
                data = json.loads(fields.get(b"d", b"{}").decode())
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            except ValueError:
                bad.append(bad_row({"errors": ["undecodable: stream entry is not JSON"],
                                    "raw": repr(fields)[:8192]}, entry_id))
                continue
            if kind == "ev":
                events.append(event_row(data, entry_id))
            else:
                bad.append(bad_row(data, entry_id))
        self._crash_point("before_insert")
        self.ch.insert("events", schema.EVENTS_COLUMNS, events)
        self._crash_point("between_inserts")
        self.ch.insert("bad_events", schema.BAD_EVENTS_COLUMNS, bad)
        self._crash_point("after_insert")
        ids = [entry_id for entry_id, _ in entries]
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.stream_key, GROUP, *ids)
        pipe.xdel(self.stream_key, *ids)
        pipe.execute()
        self.written += len(events) + len(bad)
        self.last_flush = time.time()
        if skip:
            log.info("skipped %d recovered entries already in ClickHouse", len(skip))
        return len(events) + len(bad)

    def _flush_with_retry(self, entries: list[tuple[str, dict]], recovered: bool = False) -> None:
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

    def recover(self) -> int:
        """Re-process entries this consumer read but never acknowledged (a previous crash)."""
        total = 0
        while not self.stop_event.is_set():
            entries = self._read("0", self.batch_size, None)
            if not entries:
                break
            self._flush_with_retry(entries, recovered=True)
            total += len(entries)
        return total

    def run_once(self) -> int:
        """Gather one batch (bounded by size and time) and write it; returns its size."""
        batch: list[tuple[str, dict]] = []
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            batch += self._read(">", self.batch_size - len(batch), max(1, int(remaining * 1000)))
        if batch:
            self._flush_with_retry(batch)
        return len(batch)

    def run(self) -> None:
        """Loop until stopped; on stop, what was read is flushed before returning."""
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                self.ensure_group()
                self.recover()
                break
            except (StoreError, redis.RedisError) as exc:
                log.warning("writer start-up failed (%s); retrying in %.1fs", exc, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any single failure
                if self.stop_event.is_set():
                    break
                log.warning("writer loop error: %s", exc)
                if "NOGROUP" in str(exc):  # Redis restarted without its data: create the group again
                    try:
                        self.ensure_group()
                        continue
                    except redis.RedisError:
                        pass
                self.stop_event.wait(1.0)

    def stop(self) -> None:
        self.stop_event.set()


def start_thread(writer: BatchWriter) -> threading.Thread:
    """Run a writer in a daemon thread (embedded mode); at exit it is stopped and flushed first."""
    thread = threading.Thread(target=writer.run, name="event-writer", daemon=True)
    thread.start()

    def stop() -> None:
        writer.stop()
        thread.join(timeout=10)

    atexit.register(stop)  # registered after the stores' close_all, so it runs before it
    return thread


def main() -> int:
    """Entry point of ``python -m tracker.writer``: migrate, then drain until SIGTERM."""
    from tracker.settings import SettingsError, get_settings
    from tracker.stores import get_clickhouse, get_redis

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings()
    except SettingsError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    ch = get_clickhouse()
    ch.create_database()
    schema.migrate(ch)
    writer = BatchWriter(
        get_redis("writer"), ch, settings.stream_key, settings.writer_name,
        settings.writer_batch_size, settings.writer_batch_seconds, crash_at=settings.writer_crash_at,
    )
    signal.signal(signal.SIGTERM, lambda *_: writer.stop())
    signal.signal(signal.SIGINT, lambda *_: writer.stop())
    log.info("writer %s draining %s", settings.writer_name, settings.stream_key)
    writer.run()
    log.info("writer stopped after %d rows", writer.written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
