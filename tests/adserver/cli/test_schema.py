"""``migrate`` and ``purge-events`` (retention itself: tests/tracker/test_retention.py)."""

from __future__ import annotations

import pytest

from tracker import schema


def test_migrate_is_idempotent_and_says_so(runner, ch):
    for _ in range(2):
        code, out = runner("migrate")
        assert code == 0, out
        assert out.splitlines()[-1] == f"schema up to date ({len(schema.MIGRATIONS)} migrations, 0 applied now)"


@pytest.mark.parametrize("days,message", [
    ("0", "--older-than-days must be at least 1"),
    ("-30", "--older-than-days must be at least 1"),
    ("a month", "'a month' is not a valid integer"),
])
def test_purge_events_refuses_bad_retentions(runner, ch, days, message):
    code, out = runner("purge-events", "--older-than-days", days)
    assert code == 2 and message in out, out


def test_purge_events_needs_the_retention(runner):
    code, out = runner("purge-events")
    assert code == 2 and "Missing option '--older-than-days'" in out
