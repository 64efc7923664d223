"""Cleaning of one event value: whatever a stream entry holds becomes a value of its column's type.

A single value ClickHouse refuses (a string where a number goes, a date outside ``DateTime``, a
NaN in a cost) would fail the insert of the whole batch, and a batch that never inserts blocks the
stream. So nothing is rejected here: a malformed value becomes the column's default, an overlong
string is cut. The column builders (``columns.py``) fall back to these functions for any column
whose values are not all well formed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

TS_MAX = 0xFFFFFFFF  # ClickHouse DateTime is unsigned 32-bit: anything outside would fail the whole block
_EPOCH = datetime(1970, 1, 1)


def unix_seconds(value: Any) -> int:
    """Unix seconds of an event's ``ts``; now if it is missing, malformed or outside DateTime's range."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return int(time.time())
    return seconds if 0 <= seconds <= TS_MAX else int(time.time())


def utc_datetime(value: Any) -> datetime:
    """A naive UTC datetime from unix seconds (arithmetic on a naive epoch: no time-zone work per row)."""
    return _EPOCH + timedelta(seconds=unix_seconds(value))


def text(value: Any, limit: int = 2048) -> str:
    """A string of at most ``limit`` characters ('' for None)."""
    if type(value) is str:  # the common case, kept cheap
        return value if len(value) <= limit else value[:limit]
    return "" if value is None else str(value)[:limit]


def texts(value: Any) -> list[str]:
    """A list of strings of at most 200 characters each; [] for anything but a list."""
    return [text(v, 200) for v in value] if isinstance(value, list) else []


def number(value: Any) -> float:
    """A float; 0.0 for what is not a number."""
    try:
        return float(value or 0.0)
    except (TypeError, ValueError, OverflowError):
        return 0.0


def finite_number(value: Any) -> float:
    """A float that sums safely in reports: no NaN, no infinities, nothing beyond 1e15."""
    result = number(value)
    return result if result == result and abs(result) < 1e15 else 0.0


def bounded_uint(value: Any, limit: int) -> int:
    """An integer clamped to ``0..limit`` (the range of the column's UInt type)."""
    try:
        return min(max(int(value or 0), 0), limit)
    except (TypeError, ValueError, OverflowError):
        return 0


def bad_row(d: dict, stream_id: str) -> tuple:
    """A ``bad_events`` row (column order of ``schema.BAD_EVENTS_COLUMNS``) from an entry's JSON."""
    errors = texts(d.get("errors")) or ["unknown"]
    return (
        utc_datetime(d.get("ts")), text(d.get("advertiser"), 64), text(d.get("event"), 32), text(d.get("uid"), 64),
        errors[0].split(":", 1)[0], errors, text(d.get("raw"), 8192), stream_id,
    )
