"""The format of the event stream's entries, which the web processes write and the writer reads.

Three kinds, each a flat list of fields:

- ``t ev d <json>``: one accepted event, a JSON object (``encode_row``);
- ``t evs n <count> d <json>``: several accepted events of one partition, a JSON array of ``count``
  objects (at most ``PACK_MAX``), written by a batch of ``tracker.linger``;
- ``t bad d <json>``: a rejected hit, stored in ``bad_events``.

Each entry costs far more than its bytes: the ``XADD`` inside the hit's script, the consumer group's
pending list in Redis, the writer's read, its acknowledgement and the parsing of its reply (measured
on the writer alone: 3.5 µs of Redis CPU and 1.5 µs of the writer's per single-event entry, 0.8 and
0.35 per event in entries of 5). Packing a batch's events into one entry per partition divides all
of that by the batch's size; the events themselves are the same JSON either way.

An event's ``stream_id`` in ClickHouse is its entry's id, and for a packed event the id followed by
``.`` and its place in the entry (``1733380000000-0.3``): unique, and found again by the writer's
recovery check (``tracker.writer.recovery``) when the entry is read a second time.
"""

from __future__ import annotations

import json
import math
from operator import itemgetter

try:
    from orjson import dumps as _orjson_dumps
    from orjson import loads as fast_loads  # several times faster than json; ``decode`` falls back to json
except ImportError:  # pragma: no cover - pinned in requirements.txt; json is the fallback
    _orjson_dumps = fast_loads = None

# Events per packed entry at most. The writer sizes its reads by the packing it has seen (a read may
# bring up to this many times the events it asked for when the packing grows at once); the gain
# per event is nearly all there by 16 (Redis: 3.5 µs per event alone, 0.8 in fives, 0.36 in twenties).
PACK_MAX = 16
SINGLE = b"ev"
PACKED = b"evs"
BAD = b"bad"
# A packed event's ``stream_id`` is its entry's id followed by one of these (its place in the entry).
PLACES = tuple(f".{place}" for place in range(PACK_MAX))


def packed_id(entry_id: str, place: int) -> str:
    """The ``stream_id`` of the event at ``place`` in the packed entry ``entry_id``."""
    return entry_id + (PLACES[place] if place < PACK_MAX else f".{place}")


def encode_row(row: dict) -> bytes:
    """An event's JSON (compact, UTF-8): orjson, ~10x faster than ``json`` on a pixel's row.

    orjson writes NaN and infinities as ``null`` and refuses integers beyond 64 bits; rows holding
    either go through ``json``, so the writer reads exactly what it always read.
    """
    if _orjson_dumps is not None:
        for value in row.values():
            if isinstance(value, float) and not math.isfinite(value):
                break
        else:
            try:
                return _orjson_dumps(row)
            except TypeError:  # an integer beyond 64 bits, or a type orjson does not know
                pass
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()


def entry_fields(pack: list[bytes]) -> list:
    """The flat field list of one entry holding ``pack`` (1 to ``PACK_MAX`` payloads of ``encode_row``)."""
    if len(pack) == 1:
        return ["t", "ev", "d", pack[0]]
    return ["t", "evs", "n", len(pack), "d", b"[%b]" % b",".join(pack)]


def entry_commands(stream: str, payloads: list[bytes]) -> list:
    """``RUN`` script arguments (count-prefixed commands) appending ``payloads`` (``encode_row``'s) to
    ``stream``, in order: an ``ev`` entry for a lone event, ``evs`` entries of up to ``PACK_MAX``."""
    args: list = []
    for start in range(0, len(payloads), PACK_MAX):
        fields = entry_fields(payloads[start:start + PACK_MAX])
        args += (3 + len(fields), "XADD", stream, "*", *fields)
    return args


def kind_and_payload(fields: list) -> tuple[bytes, bytes]:
    """An entry's kind (``ev``, ``evs``, ``bad``, or whatever else a foreign writer put) and payload."""
    n = len(fields)
    if n == 4 and fields[0] == b"t" and fields[2] == b"d":
        return fields[1], fields[3]
    if n == 6 and fields[0] == b"t" and fields[2] == b"n" and fields[4] == b"d":
        return fields[1], fields[5]
    named = dict(zip(fields[::2], fields[1::2]))
    return named.get(b"t", b""), named.get(b"d", b"{}")


_SINGLE_HEAD = itemgetter(0, 1, 2)  # b"t", kind, b"d" of a single event's flat field list
_PACK_HEAD = itemgetter(0, 1, 2, 4)  # b"t", kind, b"n", b"d" of a packed entry's
_PACK_COUNT = itemgetter(3)


def common_shape(entries: list) -> bytes | None:
    """``SINGLE`` or ``PACKED`` when every entry is of that kind as ``EventStream`` writes it, checked in
    C-level passes over all of them (a writer asks it of every read and every batch); None otherwise (a
    deleted entry, a rejected hit, another kind or layout), for the caller to look entry by entry."""
    if not entries or None in entries:
        return None
    lengths = set(map(len, entries))
    if lengths == {4} and set(map(_SINGLE_HEAD, entries)) == {(b"t", SINGLE, b"d")}:
        return SINGLE
    if lengths == {6} and set(map(_PACK_HEAD, entries)) == {(b"t", PACKED, b"n", b"d")}:
        return PACKED
    return None


def count_events(entries: list) -> int:
    """The events ``entries`` (flat field lists, as read) say they hold."""
    shape = common_shape(entries)
    if shape == SINGLE:
        return len(entries)
    if shape == PACKED:
        try:
            counts = list(map(int, map(_PACK_COUNT, entries)))
            if 1 <= min(counts) and max(counts) <= PACK_MAX:
                return sum(counts)
        except ValueError:
            pass
    return sum(map(events_in, entries))


def events_in(fields: list | None) -> int:
    """How many events an entry says it holds (a packed one its ``n``; any other one, 1; a deleted one, 0)."""
    if fields is None:
        return 0
    if len(fields) == 6 and fields[1] == PACKED:
        try:
            return max(1, min(int(fields[3]), 1_000_000))
        except ValueError:
            return 1
    return 1


def decode(payload: bytes):
    """An entry's JSON; orjson first, json for what it refuses (NaN, huge integers): same acceptance as json."""
    if fast_loads is not None:
        try:
            return fast_loads(payload)
        except ValueError:
            pass
    return json.loads(payload.decode())


def packed_rows(payload: bytes) -> list | None:
    """A packed entry's events (each should be a JSON object), or None if the payload is no JSON array."""
    try:
        rows = decode(payload)
    except ValueError:
        return None
    return rows if isinstance(rows, list) and rows else None


def event_ids(entry_id: str, fields: list | None) -> list[str]:
    """The ``stream_id`` of each row an entry stores (none for a deleted one): its id, or for a packed
    entry one id per event (``<id>.<place>``); an undecodable packed entry stores one bad row, ``<id>.0``."""
    if fields is None:
        return []
    kind, payload = kind_and_payload(fields)
    if kind != PACKED:
        return [entry_id]
    rows = packed_rows(payload)
    return [packed_id(entry_id, place) for place in range(len(rows) if rows is not None else 1)]
