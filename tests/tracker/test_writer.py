"""The batch writer on real servers: nothing accepted is lost, nothing is stored twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import SECRET, drain
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.settings import parse_clickhouse_url
from tracker.stream import EventStream
from tracker.writer import GROUP, BatchWriter, bad_row, event_row


def _push(stream: EventStream, n: int, advertiser: str = "shop") -> None:
    for i in range(n):
        stream.record({"ts": time.time(), "advertiser": advertiser, "event": "view_item", "skus": [f"S{i}"],
                       "uid": f"u{i}"}, uid=f"u{i}")


def _count(ch, advertiser: str = "shop") -> int:
    return ch.execute("SELECT count() FROM events WHERE advertiser = %(a)s", {"a": advertiser})[0][0]


def test_drains_events_and_bad_events(stream, writer, ch):
    _push(stream, 25)
    stream.record_bad({"ts": time.time(), "advertiser": "shop", "event": "", "errors": ["invalid_event: x"],
                       "raw": "a=shop&e=x"})
    stream.client.xadd(stream.stream_key, {"t": "ev", "d": b"\xff not json"})
    assert drain(writer) == 27
    assert _count(ch) == 25
    bad = sorted(ch.execute("SELECT reason, raw FROM bad_events"))
    assert bad[0] == ("invalid_event", "a=shop&e=x")
    assert bad[1][0] == "undecodable"
    assert stream.client.xlen(stream.stream_key) == 0
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 0


def test_failed_insert_is_not_acknowledged_and_is_retried(stream, writer, ch, settings):
    _push(stream, 10)
    dead = DriverClickHouse(parse_clickhouse_url("clickhouse://127.0.0.1:1/adserver_test"), 0.2, 0.5, retries=0)
    writer.ch = dead
    writer.stop_event.set()  # so the retry loop gives up after the first failure instead of waiting
    batch = writer._read(">", 100, None)
    assert len(batch) == 10
    try:
        writer._flush_with_retry(batch)
    except Exception as exc:  # noqa: BLE001 - the failure is expected
        assert exc.__class__.__name__ == "StoreUnavailable"
    else:
        raise AssertionError("the flush should have failed")
    assert writer.failures == 1
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 10
    assert stream.client.xlen(stream.stream_key) == 10
    assert _count(ch) == 0
    # ClickHouse is back: a restarted writer with the same name recovers the pending batch.
    again = BatchWriter(stream.client, ch, settings.stream_key, writer.consumer, batch_seconds=0.05)
    assert again.recover() == 10
    assert _count(ch) == 10
    assert stream.client.xlen(stream.stream_key) == 0


def test_crash_after_insert_before_ack_does_not_double_count(stream, writer, ch, settings):
    _push(stream, 12)
    batch = writer._read(">", 100, None)
    # The first writer inserted the batch and died before acknowledging it.
    ch.insert("events", schema.EVENTS_COLUMNS, [event_row(json.loads(f[b"d"]), i) for i, f in batch])
    _push(stream, 3)
    again = BatchWriter(stream.client, ch, settings.stream_key, writer.consumer, batch_seconds=0.05)
    again.recover()
    drain(again)
    assert _count(ch) == 15
    assert ch.execute("SELECT count(DISTINCT stream_id) FROM events")[0][0] == 15


def test_batches_are_bounded_by_size(stream, ch, settings, redis_client):
    small = BatchWriter(redis_client, ch, settings.stream_key, "w-small", batch_size=4, batch_seconds=5)
    small.ensure_group()
    _push(stream, 10)
    assert small.run_once() == 4
    assert _count(ch) == 4


def test_rows_are_cleaned_of_hostile_shapes():
    row = event_row({"ts": "nonsense", "advertiser": 7, "skus": "not-a-list", "value": "x", "url": "u" * 5000}, "1-1")
    assert row[1] == "7" and row[5] == [] and row[8] == 0.0 and len(row[15]) == 2048
    bad = bad_row({"errors": "not a list", "raw": "r" * 10000}, "1-2")
    assert bad[4] == "unknown" and len(bad[6]) == 8192


def test_writer_process_flushes_and_exits_on_sigterm(stream, ch, settings, redis_url, clickhouse_url):
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url,
           "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_STREAM_KEY": settings.stream_key,
           "ADSERVER_WRITER_NAME": "proc-writer", "ADSERVER_WRITER_BATCH_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "tracker.writer"], env=env, cwd=os.getcwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _push(stream, 50)
        deadline = time.monotonic() + 20
        while _count(ch) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(ch) == 50
        _push(stream, 7)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode()
    assert "writer stopped" in output
    # Stored rows leave the stream; whatever was not stored yet is still in it for the next start.
    assert _count(ch) + stream.client.xlen(stream.stream_key) == 57, output


@pytest.mark.parametrize("point", ["before_insert", "between_inserts", "after_insert"])
def test_writer_killed_at_any_point_loses_nothing_and_counts_nothing_twice(stream, ch, settings, redis_url,
                                                                          clickhouse_url, point):
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url,
           "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_STREAM_KEY": settings.stream_key,
           "ADSERVER_WRITER_NAME": "crashy", "ADSERVER_WRITER_BATCH_SECONDS": "0.3"}
    _push(stream, 40)
    for n in range(5):
        stream.record_bad({"ts": time.time(), "advertiser": "shop", "errors": ["invalid_event: x"], "raw": f"r{n}"})
    crashed = subprocess.run([sys.executable, "-m", "tracker.writer"], env={**env, "ADSERVER_WRITER_CRASH_AT": point},
                             cwd=os.getcwd(), capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 45  # nothing acknowledged
    _push(stream, 10, advertiser="later")

    proc = subprocess.Popen([sys.executable, "-m", "tracker.writer"], env=env, cwd=os.getcwd(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while stream.client.xlen(stream.stream_key) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert _count(ch) == 40 and _count(ch, "later") == 10
    assert ch.execute("SELECT count() FROM bad_events")[0][0] == 5
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (50, 50)
