"""A test's event stream read back as events, whatever the packing of its entries (``tracker.stream_entries``)."""

from __future__ import annotations

import json
from collections.abc import Callable

from tracker.stream_entries import PACKED, SINGLE, kind_and_payload


def stream_events(client, key: str, transform: Callable[[bytes], bytes] = bytes) -> list[tuple[bytes, dict]]:
    """``(kind, event)`` of every event in the stream ``key``, in order: a packed entry's events one by
    one as ``ev``; ``transform`` is applied to each entry's JSON before it is parsed."""
    out: list[tuple[bytes, dict]] = []
    for _, fields in client.xrange(key):
        kind, payload = kind_and_payload([part for pair in fields.items() for part in pair])
        data = json.loads(transform(payload))
        if kind == PACKED:
            assert int(fields[b"n"]) == len(data), fields  # the count the writer sizes its reads by
            out += [(SINGLE, row) for row in data]
        else:
            out.append((kind, data))
    return out


def events_waiting(client, keys) -> int:
    """How many events the streams ``keys`` hold (an entry may hold several)."""
    return sum(len(stream_events(client, key)) for key in keys)
