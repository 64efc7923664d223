"""Data removal on both ClickHouse backends: a visitor's rows, and partitions past retention."""

from __future__ import annotations

from datetime import datetime

from tests.waiting import poll
from tracker import schema
from tracker.forget import unfinished_deletions
from tracker.retention import drop_expired, expired_partitions, forget_visitors, visitor_tables


def _row(ts: datetime, uid: str) -> tuple:
    return (ts, "shop", "view_item", uid, "A", ["A"], [], "", 0.0, "", "", "", "", 1, "", "", "", f"{uid}-{ts}",
            "", 0.0, 0.0, 0, 0, 0, "", 0)


def _uids(ch) -> dict[str, int]:
    return dict(ch.execute("SELECT uid, count() FROM events GROUP BY uid"))


def test_forget_visitors_deletes_only_their_rows(any_ch):
    any_ch.insert("events", schema.EVENTS_COLUMNS, [_row(datetime(2026, 11, 1), "u1"), _row(datetime(2026, 11, 2), "u1"),
                                                    _row(datetime(2026, 11, 2), "u2"), _row(datetime(2026, 11, 3), "u3")])
    assert {"events", "bad_events", "report_touchpoints"} <= set(visitor_tables(any_ch))
    found = forget_visitors(any_ch, ["u1", "u3"])
    assert found["events"] == 3 and found["bad_events"] == 0
    assert forget_visitors(any_ch, []) == {}
    poll(lambda: _uids(any_ch) == {"u2": 1} and not unfinished_deletions(any_ch), 20)  # mutations apply asynchronously
    assert _uids(any_ch) == {"u2": 1}


def test_partitions_wholly_past_retention_are_dropped(any_ch):
    rows = [_row(datetime(2026, 8, 31, 23), "old"), _row(datetime(2026, 9, 15), "edge"), _row(datetime(2026, 11, 2), "new")]
    any_ch.insert("events", schema.EVENTS_COLUMNS, rows)
    now = datetime(2026, 10, 20)
    # 30 days before now is 2026-09-20: August is wholly older, September is not.
    assert expired_partitions(any_ch, "events", 30, now) == ["202608"]
    assert drop_expired(any_ch, 30, now) == {"events": ["202608"], "bad_events": [], "report_touchpoints": []}
    assert _uids(any_ch) == {"edge": 1, "new": 1}


def test_purge_events_cli(runner, ch):
    ch.insert("events", schema.EVENTS_COLUMNS, [_row(datetime(2020, 1, 5), "ancient"), _row(datetime.now(), "today")])
    code, out = runner("purge-events", "--older-than-days", "400")
    assert code == 0, out
    assert "events: dropped 1 partition(s) 202001" in out
    assert _uids(ch) == {"today": 1}
    code, out = runner("purge-events", "--older-than-days", "0")
    assert code == 2
