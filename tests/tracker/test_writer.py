"""The batch writer on real servers: nothing accepted is lost, nothing is stored twice."""

from __future__ import annotations

import gc
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import weakref
from datetime import UTC, datetime

import pytest
import redis
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from tests.cluster.conftest import cluster, cluster_settings, cluster_stores  # noqa: F401 - fixtures
from tests.conftest import SECRET, drain
from tests.waiting import poll, wait_for
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.errors import StoreUnavailable
from tracker.partitions import parse_range
from tracker.settings import parse_clickhouse_url
from tracker.stream import EventStream
from tracker.stream_entries import PACK_MAX
from tracker.writer import GROUP, BatchWriter, bad_row, event_block, event_columns
from tracker.writer import __main__ as writer_main
from tracker.writer.fleet import partition_writers, stop_all
from tracker.writer.insert_group import InsertGroup
from tracker.writer.pipeline import TAIL_SPREADS


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
    batch = writer._gather()
    assert len(batch) == 10
    writer.ch = DriverClickHouse(parse_clickhouse_url("clickhouse://127.0.0.1:1/adserver_test"), 0.2, 0.5, retries=0)
    writer.stop_event.set()  # so the retry loop gives up after the first failure instead of waiting
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
    batch = writer._build(writer._gather())
    assert len(batch) == 12
    writer._insert("events", batch.event_names, batch.events)  # then the writer died before acknowledging
    _push(stream, 3)
    again = BatchWriter(stream.client, ch, settings.stream_key, writer.consumer, batch_seconds=0.05)
    again.recover()
    drain(again)
    assert _count(ch) == 15
    assert ch.execute("SELECT count(DISTINCT stream_id) FROM events")[0][0] == 15


def test_recovering_a_big_batch_already_stored_inserts_nothing(stream, writer, ch):
    """The "already stored?" check of a 12,000-entry batch stays within ClickHouse's query size."""
    payload = json.dumps({"ts": time.time(), "advertiser": "shop", "event": "view_item", "uid": "u"})
    pipe = stream.client.pipeline(transaction=False)
    for _ in range(12_000):
        pipe.xadd(stream.stream_key, {"t": "ev", "d": payload})
    pipe.execute()
    writer.batch_size, writer.batch_seconds = 12_000, 30.0
    batch = writer._gather()
    assert len(batch) == 12_000
    writer._build(batch)
    writer._insert("events", batch.event_names, batch.events)  # stored, then the writer died before the ack
    assert writer.flush(batch, recovered=True) == 0
    assert _count(ch) == 12_000 and stream.client.xlen(stream.stream_key) == 0



def _lose_group_progress(client: redis.Redis, key: str, entries: list) -> None:
    """What a promoted replica that missed the last reads, acknowledgements and deletions holds: the
    stored entries still in the stream, under their ids, and the group back before them."""
    client.delete(key)
    for entry_id, fields in entries:
        client.xadd(key, fields, id=entry_id)
    client.xgroup_create(key, GROUP, id="0")


def test_entries_delivered_again_after_redis_lost_the_groups_progress_are_stored_once(stream, writer, ch):
    _push(stream, 10)
    entries = stream.client.xrange(stream.stream_key)
    assert drain(writer) == 10 and _count(ch) == 10
    _lose_group_progress(stream.client, stream.stream_key, entries)
    _push(stream, 4)
    batch = writer._gather()
    assert len(batch) == 14 and batch.redelivered
    writer.flush(writer._build(batch, recovered=batch.redelivered))
    assert _count(ch) == 14
    assert ch.execute("SELECT count(DISTINCT stream_id) FROM events")[0][0] == 14
    _push(stream, 3)
    batch = writer._gather()
    assert len(batch) == 3 and not batch.redelivered  # new entries only: no check against ClickHouse


def _lose_the_answer_of_the_first_read(writer: BatchWriter) -> list[bytes]:
    """Make the writer's first read of new entries that gets some lose its answer, as a connection reset
    by a failover does: Redis delivered the entries (they are pending for the writer), then
    redis-py's cluster client sent the read again and returned the second answer, the entries after
    them. Returns the ids of the entries whose answer was lost, once that read happened."""
    read = writer._read_into
    lost: list[bytes] = []

    def read_with_a_lost_answer(batch, last_id: str, count: int, block_ms):
        got = read(batch, last_id, count, block_ms)
        if got and last_id == ">" and not lost:
            lost.extend(batch.ids[-got:])
            del batch.ids[-got:], batch.fields[-got:]
            return read(batch, last_id, count, block_ms)
        return got

    writer._read_into = read_with_a_lost_answer
    return lost


def test_entries_of_a_read_whose_answer_was_lost_are_stored_after_the_next_batch(stream, writer, ch):
    _push(stream, 5)
    lost = _lose_the_answer_of_the_first_read(writer)
    assert writer.run_once() == 0 and len(lost) == 5
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 5  # delivered, never received
    _push(stream, 3)
    assert drain(writer) == 8
    assert _count(ch) == 8
    assert ch.execute("SELECT count(DISTINCT stream_id) FROM events")[0][0] == 8


def test_an_idle_writer_stores_the_entries_of_a_read_whose_answer_was_lost(stream, writer, ch, monkeypatch):
    """No batch follows to reveal them: the writer looks for them while it has nothing in hand."""
    monkeypatch.setattr("tracker.writer.pipeline.IDLE_CHECK_SECONDS", 0.05)
    _push(stream, 4)
    lost = _lose_the_answer_of_the_first_read(writer)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: _count(ch) == 4, 10, "the lost read's entries stored")
    finally:
        writer.stop()
        thread.join(timeout=10)
    assert len(lost) == 4 and stream.client.xlen(stream.stream_key) == 0


def test_a_new_writer_does_not_check_what_it_reads_first(stream, writer, ch):
    """Without a previous delivery there is nothing to compare: a batch is checked only if it goes back."""
    _push(stream, 5)
    batch = writer._gather()
    assert len(batch) == 5 and not batch.redelivered

def test_batches_are_bounded_by_size(stream, ch, settings, redis_client):
    small = BatchWriter(redis_client, ch, settings.stream_key, "w-small", batch_size=4, batch_seconds=5)
    small.ensure_group()
    _push(stream, 10)
    assert small.run_once() == 4
    assert _count(ch) == 4


def _push_packed(stream: EventStream, n: int, uid: str = "u-packed") -> None:
    """``n`` events sent as one batch of ``tracker.linger`` sends them: packed entries of one partition."""
    calls = [stream.prepare({"ts": time.time(), "advertiser": "shop", "event": "view_item", "skus": [f"S{i}"],
                             "uid": uid}, uid=uid) for i in range(n)]
    assert stream.send_all(calls, stream.once(calls[0].partition))


def test_each_event_of_a_packed_entry_is_stored_once_under_an_id_of_its_own(stream, writer, ch, settings):
    _push_packed(stream, 2 * PACK_MAX + 8)
    _push(stream, 2)
    assert stream.client.xlen(stream.stream_key) == 5
    batch = writer._build(writer._gather())
    assert (len(batch), batch.events_read, batch.rows) == (5, 2 * PACK_MAX + 10, 2 * PACK_MAX + 10)
    # Part of the batch landed (a shard took its share, another failed), then the writer died before the ack.
    writer._insert("events", batch.event_names, [column[:PACK_MAX + 3] for column in batch.events])
    again = BatchWriter(stream.client, ch, settings.stream_key, writer.consumer, batch_seconds=0.05)
    again.recover()
    assert _count(ch) == 2 * PACK_MAX + 10 and stream.client.xlen(stream.stream_key) == 0
    ids = [row[0] for row in ch.execute("SELECT stream_id FROM events")]
    assert len(set(ids)) == len(ids) == 2 * PACK_MAX + 10
    packed = sorted(i for i in ids if "." in i)
    assert len(packed) == 2 * PACK_MAX + 8 and {i.rpartition(".")[2] for i in packed} == {str(n) for n in range(PACK_MAX)}


def test_hostile_packed_entries_become_bad_rows_and_their_valid_events_are_stored(stream, writer, ch):
    client, key = stream.client, stream.stream_key
    good = b'{"ts": 1700000000, "advertiser": "shop", "event": "view_item", "uid": "a"}'
    client.xadd(key, {"t": "evs", "n": "3", "d": b"[" + good + b', 5, "x"]'})
    client.xadd(key, {"t": "evs", "n": "2", "d": b"\xff not json"})
    client.xadd(key, {"t": "evs", "n": "2", "d": b"[]"})
    client.xadd(key, {"t": "evs", "n": "not a count", "d": b"[" + good + b"]"})
    client.xadd(key, {"t": "evs", "n": "99999999999", "d": b"[" + good + b"," + good + b"]"})
    drain(writer)
    assert _count(ch) == 4
    bad = sorted((reason, stream_id.rpartition(".")[2]) for reason, stream_id in
                 ch.execute("SELECT reason, stream_id FROM bad_events"))
    assert bad == [("undecodable", "0"), ("undecodable", "0"), ("undecodable", "1"), ("undecodable", "2")]
    assert client.xlen(key) == 0
    _push_packed(stream, 3)  # the lying count sized one read, not the next batches
    assert writer.run_once() == 1 and _count(ch) == 7


def test_a_batch_is_sized_by_the_events_its_entries_hold(stream, ch, settings, redis_client):
    small = BatchWriter(redis_client, ch, settings.stream_key, "w-packed", batch_size=2 * PACK_MAX, batch_seconds=5)
    small.ensure_group()
    _push(stream, 1)
    assert small.run_once() == 1  # entries of one event each so far
    for n in range(4):
        _push_packed(stream, PACK_MAX, uid=f"u{n}")
    assert small.run_once() == 4  # a read sized by the last packing: more events than asked, PACK_MAX times at most
    for n in range(4):
        _push_packed(stream, PACK_MAX, uid=f"u{n}")
    assert small.run_once() == 2  # now sized by what the entries hold
    assert _count(ch) == 1 + 6 * PACK_MAX


def test_entries_deleted_while_pending_are_acknowledged_and_the_writer_reads_on(stream, writer, ch, settings):
    _push(stream, 3)
    held = writer._gather()  # pending for this consumer, then deleted (trimmed by an operator, say)
    stream.client.xdel(stream.stream_key, *held.ids)
    again = BatchWriter(stream.client, ch, settings.stream_key, writer.consumer, batch_seconds=0.05)
    assert again.recover() == 3  # read back without their fields (they hold no event), acknowledged
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 0
    _push(stream, 2)
    assert drain(again) == 2 and _count(ch) == 2


def _row(data: dict, stream_id: str = "1-1") -> dict:
    """The ``events`` values of one entry, by column name."""
    return {name: column[0] for name, column in zip(schema.EVENTS_COLUMNS, event_columns([data], [stream_id]))}


def test_rows_are_cleaned_of_hostile_shapes():
    row = _row({"ts": "nonsense", "advertiser": 7, "skus": "not-a-list", "value": "x", "url": "u" * 5000,
                "cost": float("nan"), "pctr": 1e300, "interest_age": -5, "interest_views": 70_000,
                "addressable": "yes", "invalid": 0, "currency": "EURO"})
    assert abs(row["ts"] - time.time()) < 60  # a malformed time is the time of writing
    assert (row["advertiser"], row["skus"], row["sku"], row["value"], len(row["url"])) == ("7", [], "", 0.0, 2048)
    assert (row["cost"], row["pctr"], row["interest_age"], row["interest_views"]) == (0.0, 0.0, 0, 0xFFFF)
    assert (row["addressable"], row["invalid"], row["currency"], row["stream_id"]) == (1, 0, "EUR", "1-1")
    for outside_datetime in (-1, 2**40, float("inf")):
        assert abs(_row({"ts": outside_datetime})["ts"] - time.time()) < 60
    bad = bad_row({"errors": "not a list", "raw": "r" * 10000}, "1-2")
    assert bad[4] == "unknown" and len(bad[6]) == 8192


@pytest.mark.slow
def test_writer_process_flushes_and_exits_on_sigterm(stream, ch, settings, redis_url, clickhouse_url):
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url,
           "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_STREAM_KEY": settings.stream_key,
           "ADSERVER_WRITER_NAME": "proc-writer", "ADSERVER_WRITER_BATCH_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "tracker.writer"], env=env, cwd=os.getcwd(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _push(stream, 50)
        poll(lambda: _count(ch) >= 50, 20)
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


@pytest.mark.slow
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
        poll(lambda: not stream.client.xlen(stream.stream_key), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert _count(ch) == 40 and _count(ch, "later") == 10
    assert ch.execute("SELECT count() FROM bad_events")[0][0] == 5
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (50, 50)


# --- The batch path: columns, columnar inserts, trimming, several writers -----------------------

_HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=70),
                     st.lists(st.one_of(st.text(max_size=210), st.integers(), st.none()), max_size=3))
_KEYS = ("ts", "advertiser", "event", "uid", "skus", "reasons", "order_id", "value", "currency", "placement",
         "impression_id", "size", "addressable", "device", "url", "ref", "campaign", "cost", "pctr",
         "interest_age", "interest_views", "invalid", "invalid_reason", "consent")


_STRING_LIMITS = {"advertiser": 64, "event": 32, "uid": 64, "sku": 200, "order_id": 100, "currency": 3,
                  "placement": 64, "impression_id": 64, "size": 16, "device": 16, "url": 2048, "ref": 2048,
                  "campaign": 64, "invalid_reason": 64}
_UINT_LIMITS = {"ts": 0xFFFFFFFF, "interest_age": 0xFFFFFFFF, "interest_views": 0xFFFF, "addressable": 1, "invalid": 1,
                "consent": 2}


def _assert_fits_its_column(row: dict) -> None:
    """Every value is of its ClickHouse column's type and range: no value can fail an insert."""
    for name, value in row.items():
        if name in _STRING_LIMITS:
            assert type(value) is str and len(value) <= _STRING_LIMITS[name], (name, value)
        elif name in _UINT_LIMITS:
            assert type(value) is int and 0 <= value <= _UINT_LIMITS[name], (name, value)
        elif name in ("skus", "reasons"):
            assert type(value) is list and all(type(v) is str and len(v) <= 200 for v in value), (name, value)
        elif name == "value":
            assert type(value) is float, (name, value)
        elif name == "stream_id":
            assert type(value) is str, (name, value)
        else:  # cost, pctr: summed by reports
            assert name in ("cost", "pctr") and type(value) is float and abs(value) < 1e15, (name, value)


@settings_(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(_KEYS), _HOSTILE), min_size=1, max_size=6), st.booleans())
def test_an_entry_gets_the_same_values_in_any_batch_and_each_fits_its_column(datas, well_formed_ts):
    """Whatever the entries hold, the checked fast path and the value-by-value cleaning agree.

    Alone, an entry's column takes the fast path when its value is well formed; among malformed
    batch-mates the whole column is cleaned value by value. Both must store the same values.
    """
    if well_formed_ts:
        for d in datas:
            d["ts"] = 1_790_000_000.5
    ids = [f"{n}-0" for n in range(len(datas))]
    columns = event_columns(datas, ids)
    assert len(columns) == len(schema.EVENTS_COLUMNS) and {len(c) for c in columns} == {len(datas)}
    for n, (data, stream_id) in enumerate(zip(datas, ids)):
        got = [column[n] for column in columns]
        alone = list(_row(data, stream_id).values())
        assert abs(got[0] - alone[0]) <= 2  # "now" for a malformed ts is read twice
        assert [repr(v) for v in got[1:]] == [repr(v) for v in alone[1:]]  # repr: NaN equals itself, 1 != 1.0
        _assert_fits_its_column(dict(zip(schema.EVENTS_COLUMNS, got)))
        assert got[schema.EVENTS_COLUMNS.index("stream_id")] == stream_id


def test_columnar_insert_on_both_backends(any_ch):
    ts = int(datetime(2026, 11, 27, 8, 30, 1, tzinfo=UTC).timestamp())
    datas = [{"ts": ts, "advertiser": "shop", "event": "view_item", "skus": ["A1", "B2"], "value": 12.5,
              "addressable": True, "url": "https://shop.example/p/A1"},
             {"ts": ts, "advertiser": "x' OR 1=1 --", "event": "impression", "campaign": "c1", "cost": 0.02,
              "pctr": 0.003, "interest_age": 60, "interest_views": 3, "invalid": 1, "invalid_reason": "bot"}]
    assert any_ch.insert_columns("events", schema.EVENTS_COLUMNS, event_columns(datas, ["1-0", "2-0"])) == 2
    assert any_ch.insert_columns("events", schema.EVENTS_COLUMNS, event_columns([], [])) == 0
    rows = any_ch.execute("SELECT ts, advertiser, sku, skus, value, addressable, stream_id, campaign, cost, "
                          "interest_views, invalid, invalid_reason FROM events ORDER BY stream_id")
    assert rows == [
        (datetime(2026, 11, 27, 8, 30, 1), "shop", "A1", ["A1", "B2"], 12.5, 1, "1-0", "", 0.0, 0, 0, ""),
        (datetime(2026, 11, 27, 8, 30, 1), "x' OR 1=1 --", "", [], 0.0, 0, "2-0", "c1", 0.02, 3, 1, "bot"),
    ]
    bad = [bad_row({"ts": ts, "errors": ["invalid_event: x"], "raw": "a=1"}, "3-0")]
    assert any_ch.insert_columns("bad_events", schema.BAD_EVENTS_COLUMNS, [list(c) for c in zip(*bad)]) == 1
    assert any_ch.execute("SELECT reason, raw, stream_id FROM bad_events") == [("invalid_event", "a=1", "3-0")]


def test_columns_left_out_of_the_insert_are_stored_as_the_rows_would_be(any_ch):
    """``event_block`` sends only the columns some entry has; ClickHouse's defaults fill the rest alike."""
    datas = [{"ts": 1_790_000_000, "advertiser": "shop", "event": "view_item", "uid": "u1", "skus": ["A1"]},
             {"ts": 1_790_000_001, "advertiser": "shop", "event": "view_home"}]
    names, data = event_block(datas, ["b-1", "b-2"])
    assert names == ("ts", "advertiser", "event", "uid", "sku", "skus", "stream_id")
    any_ch.insert_columns("events", names, data)
    any_ch.insert_columns("events", schema.EVENTS_COLUMNS, event_columns(datas, ["r-1", "r-2"]))  # every column
    columns = ", ".join(c for c in schema.EVENTS_COLUMNS if c != "stream_id")
    stored = {prefix: any_ch.execute(f"SELECT date, {columns} FROM events WHERE stream_id LIKE %(p)s "
                                     "ORDER BY stream_id", {"p": prefix + "-%"}) for prefix in ("b", "r")}
    assert stored["b"] == stored["r"] and len(stored["b"]) == 2


def test_stored_entries_leave_the_stream_even_behind_a_stuck_consumer(stream, ch, settings, redis_client):
    """Trimming stops at entries another consumer holds pending; what is stored above them is deleted."""
    _push(stream, 5, advertiser="stuck")
    stuck = BatchWriter(redis_client, ch, settings.stream_key, "stuck", batch_size=5, batch_seconds=0.05)
    stuck.ensure_group()
    assert len(stuck._gather()) == 5  # read, never written: pending, as after a crash
    _push(stream, 700)
    busy = BatchWriter(redis_client, ch, settings.stream_key, "busy", batch_size=300, batch_seconds=0.05)
    assert drain_until(busy, lambda: _count(ch) == 700) >= 700
    assert stream.client.xlen(stream.stream_key) == 5  # only the stuck consumer's entries are left
    assert stuck.recover() == 5  # its restart writes them
    assert _count(ch, "stuck") == 5 and stream.client.xlen(stream.stream_key) == 0


def _or_empty(read) -> set:
    """``read()``, or nothing while the consumer group does not exist yet."""
    try:
        return read()
    except redis.ResponseError:
        return set()


def drain_until(writer: BatchWriter, done, deadline: float = 20.0) -> int:
    total = 0
    end = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "the writer did not finish in time"
        total += writer.run_once()
    return total


@pytest.mark.slow
def test_several_writer_processes_store_each_event_once_even_when_one_is_killed(stream, ch, settings, redis_url,
                                                                               clickhouse_url):
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url,
           "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_STREAM_KEY": settings.stream_key,
           "ADSERVER_WRITER_BATCH_SECONDS": "0.05", "ADSERVER_WRITER_BATCH_SIZE": "200"}
    _push(stream, 3000)
    run = lambda name, **extra: subprocess.Popen(  # noqa: E731
        [sys.executable, "-m", "tracker.writer"], env={**env, "ADSERVER_WRITER_NAME": name, **extra},
        cwd=os.getcwd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # w3 starts first and the others once it has read: started together, w1 and w2 could drain the
    # stream before w3 read anything, and w3 would never reach its crash point.
    procs = [run("w3", ADSERVER_WRITER_CRASH_AT="after_insert")]
    consumers = lambda: {c["name"] for c in stream.client.xinfo_consumers(stream.stream_key, GROUP)}  # noqa: E731
    try:
        poll(lambda: procs[0].poll() is not None or b"w3" in _or_empty(consumers), 60, interval=0.02)
        procs[1:1] = [run("w1"), run("w2")]
        assert procs[0].wait(timeout=60) == -signal.SIGKILL  # inserted a batch, died before acknowledging it
        held = lambda: {c["name"]: c["pending"] for c in  # noqa: E731
                        stream.client.xinfo_consumers(stream.stream_key, GROUP)}.get(b"w3", 0)
        # the others store everything but what w3 held (one batch or more)
        poll(lambda: stream.client.xlen(stream.stream_key) == held(), 60)
        assert 0 < held() == stream.client.xlen(stream.stream_key) < 3000
        procs.append(run("w3"))  # its restart recovers what it held
        poll(lambda: not stream.client.xlen(stream.stream_key) and _count(ch) >= 3000, 60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (3000, 3000)
    assert stream.client.xlen(stream.stream_key) == 0
    assert stream.client.xpending(stream.stream_key, GROUP)["pending"] == 0


# --- A partitioned stream: one consumer group per partition, writers on disjoint partitions -----

PARTITIONS = 4


@pytest.fixture(params=["server", "cluster"])
def partitioned(request, redis_url) -> tuple[EventStream, str]:
    """A stream of four partitions of the test's own, and the Redis URL writer processes are given:
    on the Redis server and on the Redis Cluster (the same code path)."""
    key = f"t:parts:{secrets.token_hex(4)}"
    if request.param == "cluster":
        client = request.getfixturevalue("cluster_stores").redis("writer")
        url = request.getfixturevalue("cluster").redis_url
    else:
        client, url = request.getfixturevalue("redis_client"), redis_url
    return EventStream(client, key, partitions=PARTITIONS), url


def _left(stream: EventStream) -> int:
    return sum(stream.client.xlen(key) for key in stream.partitions.streams())


def test_writers_on_disjoint_partitions_store_each_event_once_even_with_equal_ids(partitioned, ch):
    stream, _ = partitioned
    payload = json.dumps({"ts": time.time(), "advertiser": "same-id", "event": "view_home"})
    same = f"{int(time.time() * 1000) - 1000}-7"
    for key in stream.partitions.streams():  # streams on different primaries issue the same ids
        stream.client.xadd(key, {"t": "ev", "d": payload}, id=same)
    _push(stream, 200)
    assert all(stream.client.xlen(key) > 1 for key in stream.partitions.streams())  # visitors spread
    first = partition_writers(stream.client, ch, stream.partitions, [0, 1], "wa", batch_seconds=0.05)
    second = partition_writers(stream.client, ch, stream.partitions, [2, 3], "wb", batch_seconds=0.05)
    assert [w.stream_key for w in first + second] == stream.partitions.streams()
    for w in first + second:
        w.ensure_group()
    crashed = first[0]
    batch = crashed._build(crashed._gather())
    crashed._insert("events", batch.event_names, batch.events)  # stored, then died before acknowledging
    for w in first[1:] + second:
        drain(w)
    restarted = partition_writers(stream.client, ch, stream.partitions, [0, 1], "wa", batch_seconds=0.05)[0]
    assert restarted.recover() == len(batch) > 0  # read again; what was stored is left out
    assert _left(stream) == 0
    assert _count(ch) == 200 and _count(ch, "same-id") == PARTITIONS
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (204, 204)
    assert {r[0] for r in ch.execute("SELECT stream_id FROM events WHERE advertiser = 'same-id'")} == \
        {f"{p}/{same}" for p in range(PARTITIONS)}


class _LandsThenFails:
    """A ClickHouse whose first ``events`` insert lands and then reports an error (a lost answer)."""

    def __init__(self, ch) -> None:
        self.ch, self.failed = ch, False

    def __getattr__(self, name):
        return getattr(self.ch, name)

    def insert_columns(self, table, columns, data):
        done = self.ch.insert_columns(table, columns, data)
        if table == "events" and not self.failed:
            self.failed = True
            raise StoreUnavailable("the answer to the insert was lost")
        return done


def _run_until_drained(stream: EventStream, writers: list[BatchWriter], ch, rows: int) -> None:
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for thread in threads:
        thread.start()
    try:
        poll(lambda: not _left(stream) and _count(ch) >= rows, 30, interval=0.02)
    finally:
        stop_all(writers)
        for thread in threads:
            thread.join(timeout=10)
    assert _left(stream) == 0


def test_the_partition_writers_of_one_process_insert_their_batches_together(partitioned, ch):
    """Their windows end together and one insert carries every partition's batch: ClickHouse pays per
    insert (a part per table, on a cluster per shard too), not per row. Each row keeps its partition's id."""
    stream, _ = partitioned
    _push(stream, 200)
    assert all(stream.client.xlen(key) > 1 for key in stream.partitions.streams())
    group = InsertGroup(PARTITIONS, gather_seconds=10.0)  # no member is late, however slow the machine
    writers = partition_writers(stream.client, ch, stream.partitions, list(range(PARTITIONS)), "wg",
                                batch_seconds=0.3, insert_group=group)
    assert {id(w.insert_group) for w in writers} == {id(group)}
    for w in writers:
        w.ensure_group()

    _run_until_drained(stream, writers, ch, 200)

    assert group.inserts == 1  # four partitions' batches, one insert
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (200, 200)
    assert {r[0].split("/")[0] for r in ch.execute("SELECT stream_id FROM events")} == {"0", "1", "2", "3"}
    assert sum(w.written for w in writers) == 200


def test_a_group_insert_that_failed_after_landing_is_stored_once(partitioned, ch):
    """A failed insert fails every batch in it; each writer retries its own as a recovered batch, so the
    rows that landed are left out and none is lost."""
    stream, _ = partitioned
    _push(stream, 120)
    flaky = _LandsThenFails(ch)
    writers = partition_writers(stream.client, flaky, stream.partitions, list(range(PARTITIONS)), "wf",
                                batch_seconds=0.2)
    assert writers[0].insert_group is not None and writers[0].insert_group.members == PARTITIONS
    for w in writers:
        w.ensure_group()

    _run_until_drained(stream, writers, ch, 120)

    assert flaky.failed and sum(w.failures for w in writers) >= 1
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (120, 120)


def test_writers_under_leases_are_not_grouped(partitioned, ch):
    stream, _ = partitioned
    writers = partition_writers(stream.client, ch, stream.partitions, [0, 1], "wl", may_insert=lambda: True)
    assert [w.insert_group for w in writers] == [None, None]


@pytest.mark.slow
def test_two_writer_processes_on_disjoint_partitions_one_killed_store_each_event_once(partitioned, ch,
                                                                                     clickhouse_url):
    stream, url = partitioned
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": url,
           "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_STREAM_KEY": stream.stream_key,
           "ADSERVER_STREAM_PARTITIONS": str(PARTITIONS), "ADSERVER_WRITER_BATCH_SECONDS": "0.05",
           "ADSERVER_WRITER_BATCH_SIZE": "100"}
    _push(stream, 1000)
    run = lambda name, partitions, **extra: subprocess.Popen(  # noqa: E731
        [sys.executable, "-m", "tracker.writer", "--partitions", partitions],
        env={**env, "ADSERVER_WRITER_NAME": name, **extra}, cwd=os.getcwd(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [run("wa", "0-1", ADSERVER_WRITER_CRASH_AT="after_insert"), run("wb", "2-3")]
    try:
        assert procs[0].wait(timeout=60) == -signal.SIGKILL  # inserted a batch, died before acknowledging it
        held = [stream.partitions.stream(p) for p in (0, 1)]
        # the other writer empties its partitions only
        poll(lambda: not sum(stream.client.xlen(k) for k in stream.partitions.streams()[2:]), 60)
        assert sum(stream.client.xlen(k) for k in held) > 0
        procs.append(run("wa", "0-1"))  # its restart recovers what it held
        poll(lambda: not _left(stream) and _count(ch) >= 1000, 60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (1000, 1000)
    assert _left(stream) == 0


def test_partitions_are_named_like_0_3():
    assert parse_range("0-3", 4) == [0, 1, 2, 3] and parse_range("1,3", 4) == [1, 3] and parse_range("2", 4) == [2]
    for bad in ("4", "0-4", "3-1", "a-b", "-1", "", "0-"):
        with pytest.raises(ValueError):
            parse_range(bad, 4)


def test_the_reading_window_leaves_room_for_the_insert_within_batch_seconds(stream, ch, settings, redis_client):
    """An entry read as a window opens is visible within ``batch_seconds``: the window is shortened by what
    building and inserting batches take, with room for their spread, but never below half (a slow
    ClickHouse must not get more, smaller batches)."""
    writer = BatchWriter(redis_client, ch, settings.stream_key, "w-window", batch_seconds=1.0)
    assert writer._window() == 1.0  # nothing measured yet
    writer.ensure_group()
    _push(stream, 50)
    assert writer.run_once() == 50
    tail = writer._build_seconds + writer._insert_seconds
    assert 0 < tail < 0.5  # measured on the real insert, weighted in
    assert writer._tail_spread > 0  # the first batch differs from the estimate of nothing
    assert writer._window() == pytest.approx(1.0 - tail - TAIL_SPREADS * writer._tail_spread)
    for _ in range(40):
        writer._note_tail(0.01, 0.02)  # steady batches: the spread fades, the room is the mean
    assert writer._window() == pytest.approx(0.97, abs=0.002)
    writer._note_tail(0.01, 0.12)  # one slow insert widens the room by more than its share of the mean
    assert writer._window() < 0.97 - 0.2 * 0.1
    for _ in range(40):
        writer._note_tail(0.0, 3.0)  # ClickHouse takes seconds per insert
    assert writer._window() == 0.5


class _AddingWhilePausing:
    """The writer's stop event, whose waits (the pauses between reads) see one more entry added."""

    def __init__(self, stream: EventStream) -> None:
        self.stream, self.event, self.pauses = stream, threading.Event(), 0

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        self.pauses += 1
        _push(self.stream, 1, advertiser=f"pause{self.pauses}")
        return self.event.wait(timeout)


def test_entries_added_during_the_windows_last_pause_are_in_its_batch(stream, ch, settings, redis_client):
    """The window ends with a read: an entry added while the writer paused before its end goes in this batch.
    Left for the next window, it would wait a whole window more than ``batch_seconds`` promises."""
    writer = BatchWriter(redis_client, ch, settings.stream_key, "w-last-read", batch_seconds=0.2)
    writer.ensure_group()
    writer.stop_event = pausing = _AddingWhilePausing(stream)
    _push(stream, 1)

    batch = writer._gather()

    assert pausing.pauses >= 2  # the window was read several times, pausing between reads
    assert len(batch) == 1 + pausing.pauses


def test_once_a_batch_holds_entries_its_reads_do_not_block(stream, ch, settings, redis_client):
    """Redis ends a blocked read at its next timer tick (100 ms at the default ``hz``), not at the timeout
    asked: a window whose batch has entries must pause on its own clock, or it closes late."""
    writer = BatchWriter(redis_client, ch, settings.stream_key, "w-no-block", batch_seconds=0.2)
    writer.ensure_group()
    writer.stop_event = pausing = _AddingWhilePausing(stream)
    reads: list[tuple[int, int | None]] = []
    read_into = writer._read_into

    def recording(batch, last_id, count, block_ms):
        reads.append((len(batch), block_ms))
        return read_into(batch, last_id, count, block_ms)

    writer._read_into = recording
    _push(stream, 1)

    batch = writer._gather()

    assert reads[0][0] == 0 and reads[0][1] is not None  # an empty batch waits for its first entry in Redis
    assert pausing.pauses >= 2 and len(batch) == 1 + pausing.pauses
    assert [block for held, block in reads if held] == [None] * sum(1 for held, _ in reads if held)


def test_entries_of_a_window_whose_later_read_failed_are_written_without_a_restart(stream, ch, settings,
                                                                                    redis_client):
    """A read that fails after an earlier one of the same window drops that window's batch: its entries are
    pending for this consumer, where new reads never look. The writer reads them again and writes them once."""
    writer = BatchWriter(redis_client, ch, settings.stream_key, "w-strand", batch_seconds=0.3)
    writer.ensure_group()
    _push(stream, 10)
    new_reads = []
    read_into = writer._read_into

    def second_new_read_fails(batch, last_id, count, block_ms):
        if last_id == ">":
            new_reads.append(len(batch))
            if len(new_reads) == 2:
                raise redis.ConnectionError("the primary went away")
        return read_into(batch, last_id, count, block_ms)

    writer._read_into = second_new_read_fails
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        poll(lambda: _count(ch) >= 10, 20, interval=0.02)
    finally:
        writer.stop()
        thread.join(timeout=10)

    assert new_reads[:2] == [0, 10]  # the first read took all ten, the second failed in the same window
    assert ch.execute("SELECT count(), count(DISTINCT stream_id) FROM events")[0] == (10, 10)
    assert redis_client.xpending(settings.stream_key, GROUP)["pending"] == 0



class _Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_the_writer_process_collects_cyclic_garbage_on_its_own_clock():
    """The writer process turns the automatic collector off (its batches hold no cycles, and the passes cost
    ~9 % of its CPU); a thread of its own still collects in full, so cycles are freed, partitions or none."""
    stop = threading.Event()
    try:
        collector = writer_main._tune_gc(every=0.05, stop=stop)
        assert not gc.isenabled()
        garbage = weakref.ref(_Cycle())
        wait_for(lambda: garbage() is None, 10, "the collector thread to free the cycle")
        assert garbage() is None
    finally:
        stop.set()
        gc.enable()
        gc.unfreeze()
    collector.join(timeout=5)
    assert not collector.is_alive()
