"""Event logs for offline evaluation: the ``Event`` record and the CSV reader.

The reader is strict: the first bad row stops it with a ValueError naming the line and the problem. An
evaluation on a silently truncated or half-parsed log would report numbers for data nobody meant to use;
a log with known junk should be cleaned by its converter (as ``scripts/uci_to_events.py`` does).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

# Interest each event type shows, as used by the ad server's training job (view 1, cart 3, purchase 5).
EVENT_WEIGHTS = {"view": 1.0, "view_item": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
REQUIRED_COLUMNS = ("visitor", "item", "ts")
# Unix seconds beyond this (year 5138) are almost certainly milliseconds.
MAX_UNIX_SECONDS = 1e11
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class Event:
    """One interaction of a visitor with an item at ``ts`` (unix seconds)."""

    visitor: str
    item: str
    ts: float
    event: str = "view"
    title: str = ""


def parse_ts(text: str) -> float:
    """Unix seconds from either a number or an ISO-8601 date ("2010-12-01 08:26:00", "…T…Z", "…+08:00");
    dates without a zone are UTC. Raises ValueError."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value):
            raise ValueError(f"ts {text!r} is not a finite number")
        if abs(value) > MAX_UNIX_SECONDS:
            raise ValueError(f"ts {text!r} is too large for unix seconds (milliseconds?)")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"ts {text!r} is neither unix seconds nor an ISO-8601 date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@contextmanager
def _open_text(path_or_file: str | os.PathLike | IO) -> Iterator[IO[str]]:
    """A text stream over a path or an open file, gunzipping when the bytes start with the gzip magic."""
    if isinstance(path_or_file, (str, os.PathLike)):
        with open(path_or_file, "rb") as raw:
            with _open_text(raw) as text:
                yield text
        return
    if isinstance(path_or_file, io.TextIOBase):
        yield path_or_file
        return
    raw = path_or_file if hasattr(path_or_file, "peek") else io.BufferedReader(path_or_file)  # type: ignore[arg-type]
    binary = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == _GZIP_MAGIC else raw
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        yield text
    finally:
        text.detach()


def read_events_csv(path_or_file: str | os.PathLike | IO) -> list[Event]:
    """Events from a CSV file (path or open file, plain or gzip) with a header holding at least
    ``visitor,item,ts`` and optionally ``event`` (default "view") and ``title``; other columns are ignored.

    Raises ValueError on the first bad row, naming the line: empty visitor or item, unreadable ts, unknown
    event type, wrong number of fields. ``event`` must be one of EVENT_WEIGHTS.
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        name = os.fspath(path_or_file)
    else:
        name = str(getattr(path_or_file, "name", "<events>"))
    events: list[Event] = []
    with _open_text(path_or_file) as text:
        try:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{name}: empty file, expected a header with {','.join(REQUIRED_COLUMNS)}")
            columns = [c.strip().lower() for c in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ValueError(f"{name}: header lacks {', '.join(missing)} (found: {','.join(columns)})")
            at = {c: columns.index(c) for c in (*REQUIRED_COLUMNS, "event", "title") if c in columns}
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                try:
                    events.append(_event(row, at, len(columns)))
                except ValueError as exc:
                    raise ValueError(f"{name}: line {reader.line_num}: {exc}") from None
        except (csv.Error, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise ValueError(f"{name}: not a readable CSV file ({exc})") from None
    return events


def _event(row: list[str], at: dict[str, int], width: int) -> Event:
    if len(row) != width:
        raise ValueError(f"expected {width} fields, found {len(row)}")
    visitor, item = row[at["visitor"]].strip(), row[at["item"]].strip()
    if not visitor:
        raise ValueError("empty visitor")
    if not item:
        raise ValueError("empty item")
    event = row[at["event"]].strip() if "event" in at else ""
    event = event or "view"
    if event not in EVENT_WEIGHTS:
        raise ValueError(f"unknown event {event!r} (expected one of {', '.join(EVENT_WEIGHTS)})")
    title = row[at["title"]].strip() if "title" in at else ""
    return Event(visitor, item, parse_ts(row[at["ts"]]), event, title)
