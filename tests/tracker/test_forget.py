"""The forget queue and its job on both ClickHouse backends and both Redis flavours.

Requests only queue a visitor; one run of the job deletes the rows of every queued visitor (a batch)
with one mutation per table that holds any of them, and leaves everyone else's rows alone.
"""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from tests.waiting import poll
from tracker import schema
from tracker.forget import (
    BATCH,
    QUEUE_KEY,
    QUEUE_LIMIT,
    QueueFull,
    pending,
    request_forget,
    run_pending,
    unfinished_deletions,
)
from tracker.writer import BatchWriter


def _event(uid: str, n: int, event: str = "impression") -> tuple:
    return (datetime(2026, 11, 2, 10, n), "shop", event, uid, "A", ["A"], [], "", 0.0, "", "p1", f"imp-{uid}-{n}",
            "300x250", 1, "", "", "", f"{uid}-{n}", "", 0.0, 0.0, 0, 0, 0, "", 0)


def _bad(uid: str) -> tuple:
    return (datetime(2026, 11, 2), "shop", "bogus", uid, "invalid_event", ["invalid_event: bogus"], "e=bogus", f"b-{uid}")


def _fill(ch, uids: list[str]) -> None:
    ch.insert("events", schema.EVENTS_COLUMNS, [_event(uid, n) for uid in uids for n in range(3)])
    ch.insert("bad_events", schema.BAD_EVENTS_COLUMNS, [_bad(uids[0])])


def _left(ch) -> dict[str, dict[str, int]]:
    return {table: dict(ch.execute(f"SELECT uid, count() FROM {table} GROUP BY uid"))
            for table in ("events", "bad_events", "report_touchpoints")}


def _wait_until_gone(ch, uids: list[str]) -> None:
    """Until the rows are gone and the deletions done (mutations apply asynchronously on the server)."""
    poll(lambda: not any(set(uids) & set(rows) for rows in _left(ch).values()) and not unfinished_deletions(ch), 20)


def test_the_job_deletes_exactly_the_queued_visitors(any_ch, any_redis):
    _fill(any_ch, ["gone1", "kept", "gone2"])
    for uid in ("gone1", "gone2", "gone1", "gone2", "gone1"):  # repeated requests
        request_forget(any_redis, uid)
    assert pending(any_redis) == 2

    run = run_pending(any_ch, any_redis)
    assert run.visitors == 2 and run.remaining == 0 and not run.deferred
    filled = {"events": 6, "bad_events": 1, "report_touchpoints": 6}
    assert {table: run.rows[table] for table in filled} == filled
    assert {count for table, count in run.rows.items() if table not in filled} == {0}  # e.g. report_order_touches
    assert run.mutations == {"events": 1, "bad_events": 1, "report_touchpoints": 1}  # none where nothing matched
    _wait_until_gone(any_ch, ["gone1", "gone2"])
    assert _left(any_ch) == {"events": {"kept": 3}, "bad_events": {}, "report_touchpoints": {"kept": 3}}
    assert pending(any_redis) == 0
    again = run_pending(any_ch, any_redis)
    assert again.visitors == 0 and again.mutations == {}


def test_the_job_takes_one_batch_of_the_oldest_requests(any_ch, any_redis):
    uids = [f"v{i:05d}" for i in range(7)]
    _fill(any_ch, uids)
    for uid in uids:
        request_forget(any_redis, uid)
    first = run_pending(any_ch, any_redis, batch=5)
    assert first.visitors == 5 and first.remaining == 2
    assert first.mutations == {"events": 1, "bad_events": 1, "report_touchpoints": 1}
    _wait_until_gone(any_ch, uids[:5])
    assert set(_left(any_ch)["events"]) == set(uids[5:])
    second = run_pending(any_ch, any_redis, batch=5)
    assert second.visitors == 2 and second.remaining == 0
    _wait_until_gone(any_ch, uids)
    assert _left(any_ch)["events"] == {}


def test_a_full_batch_fits_in_one_statement(any_ch, any_redis):
    """``BATCH`` identifiers of the longest accepted shape in one ``IN`` list: under ClickHouse's
    default ``max_query_size`` (256 KiB) on both backends."""
    uids = [f"{i:032d}" for i in range(BATCH)]
    pipe = any_redis.pipeline(transaction=False)
    for uid in uids:
        pipe.zadd(QUEUE_KEY, {uid: 1}, nx=True)
    pipe.execute()
    _fill(any_ch, [uids[-1], "kept"])
    run = run_pending(any_ch, any_redis)
    assert run.visitors == BATCH and run.remaining == 0
    _wait_until_gone(any_ch, [uids[-1]])
    assert set(_left(any_ch)["events"]) == {"kept"}


def test_garbage_in_the_queue_never_reaches_clickhouse(any_ch, any_redis):
    _fill(any_ch, ["real", "kept"])
    any_redis.zadd(QUEUE_KEY, {"x" * 10_000: 1, "'); DROP TABLE events; --": 2, "\u00e9t\u00e9": 3, "": 4})
    request_forget(any_redis, "real")
    run = run_pending(any_ch, any_redis)
    assert run.visitors == 1 and run.discarded == 4 and run.remaining == 0
    _wait_until_gone(any_ch, ["real"])
    assert set(_left(any_ch)["events"]) == {"kept"}


@pytest.mark.parametrize("uid", ["", "x" * 33, "a b", "\u00e9", "a'b"])
def test_requests_take_only_identifiers(any_redis, uid):
    with pytest.raises(ValueError):
        request_forget(any_redis, uid)
    assert pending(any_redis) == 0


def test_the_queue_is_bounded(redis_client):
    redis_client.zadd(QUEUE_KEY, {f"q{i}": i for i in range(QUEUE_LIMIT)})
    with pytest.raises(QueueFull):
        request_forget(redis_client, "one-too-many")
    assert request_forget(redis_client, "q7") >= 0  # already queued: still accepted, nothing added
    assert pending(redis_client) == QUEUE_LIMIT


def test_the_job_waits_while_its_previous_deletion_runs(any_ch, any_redis):
    """One forget mutation at a time per table: while one has not finished, the run defers."""
    any_ch.execute("CREATE TABLE IF NOT EXISTS forget_stuck (ts DateTime, uid String) "
                   "ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY ts")
    try:
        any_ch.insert("forget_stuck", ("ts", "uid"), [(datetime(2026, 11, 2), "stuck")])
        try:  # a deletion that can never finish (chdb runs it at once and reports the failure)
            any_ch.execute("ALTER TABLE forget_stuck DELETE WHERE uid IN ('stuck') AND throwIf(uid = 'stuck') = 0")
        except Exception:  # noqa: BLE001
            pass
        _fill(any_ch, ["waits"])
        request_forget(any_redis, "waits")
        run = run_pending(any_ch, any_redis)
        assert "forget_stuck" in run.deferred and run.visitors == 0 and run.mutations == {}
        assert pending(any_redis) == 1
        assert _left(any_ch)["events"] == {"waits": 3}
    finally:
        any_ch.execute("DROP TABLE IF EXISTS forget_stuck")
    run = run_pending(any_ch, any_redis)
    assert run.visitors == 1 and not run.deferred


def test_the_writer_runs_the_job_periodically(settings, ch, redis_client):
    _fill(ch, ["by-writer", "kept"])
    request_forget(redis_client, "by-writer")
    writer = BatchWriter(redis_client, ch, settings.stream_key, "forget-test", batch_seconds=0.01,
                         forget_interval=0.05)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        poll(lambda: not pending(redis_client), 20)
        assert pending(redis_client) == 0
        _wait_until_gone(ch, ["by-writer"])
        assert set(_left(ch)["events"]) == {"kept"}
    finally:
        writer.stop()
        thread.join(timeout=10)


def test_forget_pending_cli(runner, ch, redis_client):
    _fill(ch, ["by-hand", "kept"])
    request_forget(redis_client, "by-hand")
    code, out = runner("forget-pending")
    assert code == 0, out
    assert "forgot 1 visitor(s)" in out
    assert "events: 3 row(s), deletion scheduled" in out
    assert "report_order_touches: 0 row(s)" in out
    assert "0 still queued" in out
    code, out = runner("forget-pending")
    assert code == 0 and "nobody is waiting" in out

