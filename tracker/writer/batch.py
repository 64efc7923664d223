"""A batch of stream entries, and the ``events``/``bad_events`` columns built from it.

Entries stay as Redis returned them (hiredis's flat ``[name, value, ...]`` lists, no dict per
entry) until their JSON is parsed, and the common case (every entry an event as ``EventStream``
writes it, every payload a JSON object) is recognised and parsed in C-level passes over the whole
batch; only a batch with something else in it is looked at entry by entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from tracker import schema
from tracker.writer.columns import event_block, types_of
from tracker.writer.rows import bad_row
from tracker.writer.stream_io import pairs

try:  # several times faster than json; ``_decode`` falls back to json for what orjson refuses
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is in requirements.txt
    _fast_loads = None


_HEAD = itemgetter(0, 1, 2)  # b"t", kind, b"d" of an entry's flat field list
_PAYLOAD = itemgetter(3)


@dataclass
class Batch:
    """Entries of one or more reads, as Redis returned them, and the columns built from them.

    ``fields`` holds each entry's flat ``[name, value, ...]`` reply, ``None`` for an entry deleted
    while pending (acknowledged, not inserted). Ids ascend, as every read returns them. Every id
    is acknowledged together, after the insert.
    """

    ids: list[bytes] = field(default_factory=list)
    fields: list[list | None] = field(default_factory=list)
    events: list[list] | None = None
    event_names: tuple[str, ...] = schema.EVENTS_COLUMNS
    bad: list[list] | None = None
    rows: int = 0
    skipped: int = 0
    # Entries delivered again as new (see ``BatchWriter._gather``): checked against ClickHouse like a recovered batch.
    redelivered: bool = False
    build_seconds: float = 0.0  # what building the columns took (the writer's window leaves room for it)
    round: float | None = None  # the deadline of the reading window it came from (``InsertGroup``)

    def __len__(self) -> int:
        return len(self.ids)

    def live_ids(self) -> list[str]:
        """Stream ids of the entries still in the stream (not deleted while pending)."""
        return [i.decode() for i, f in zip(self.ids, self.fields) if f is not None]


def build(batch: Batch, skip: set[str]) -> Batch:
    """Fill the batch's columns, leaving out the entries whose stream id is in ``skip``."""
    stream_ids = list(map(bytes.decode, batch.ids))
    ev_ids: list[str] = []
    ev_payloads: list[bytes] = []
    ev_fields: list[list] = []
    bad: list[tuple] = []
    every = batch.fields
    if (not skip and every and None not in every and set(map(len, every)) == {4}
            and set(map(_HEAD, every)) == {(b"t", b"ev", b"d")}):
        every = []  # all are events as EventStream writes them: checked in C-level passes above
        ev_ids, ev_payloads, ev_fields = stream_ids, list(map(_PAYLOAD, batch.fields)), batch.fields
    for entry_id, fields in zip(stream_ids, every):
        if fields is None or entry_id in skip:
            continue
        if len(fields) == 4 and fields[0] == b"t" and fields[2] == b"d":  # what EventStream writes
            kind, payload = fields[1], fields[3]
        else:
            named = pairs(fields)
            kind, payload = named.get(b"t", b""), named.get(b"d", b"{}")
        if kind == b"ev":
            ev_ids.append(entry_id)
            ev_payloads.append(payload)
            ev_fields.append(fields)
        else:
            bad.append(_bad_entry(entry_id, fields, payload))
    datas: list = []
    if ev_payloads:
        try:  # the whole batch in one C-level pass; entry by entry only if something is off
            datas = list(map(_fast_loads, ev_payloads)) if _fast_loads else []
            if types_of(datas) != {dict}:
                datas = []
        except ValueError:
            datas = []
        if not datas:
            datas, ids_ok = [], []
            for entry_id, payload, fields in zip(ev_ids, ev_payloads, ev_fields):
                try:
                    data = _decode(payload)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    datas.append(data)
                    ids_ok.append(entry_id)
                else:
                    bad.append(_undecodable(entry_id, fields))
            ev_ids = ids_ok
    batch.event_names, batch.events = event_block(datas, ev_ids)
    batch.bad = _transpose(bad, len(schema.BAD_EVENTS_COLUMNS))
    batch.rows = len(ev_ids) + len(bad)
    batch.skipped = len(skip)
    return batch


def _decode(payload: bytes) -> Any:
    """One entry's JSON; orjson first, json for what it refuses (NaN, huge integers): same acceptance as json."""
    if _fast_loads is not None:
        try:
            return _fast_loads(payload)
        except ValueError:
            pass
    return json.loads(payload.decode())


def _bad_entry(entry_id: str, fields: list, payload: bytes) -> tuple:
    try:
        data = _decode(payload)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _undecodable(entry_id, fields)
    return bad_row(data, entry_id)


def _undecodable(entry_id: str, fields: list) -> tuple:
    return bad_row({"errors": ["undecodable: stream entry is not JSON"], "raw": repr(pairs(fields))[:8192]},
                   entry_id)


def _transpose(rows: list[tuple], width: int) -> list[list]:
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in range(width)]
