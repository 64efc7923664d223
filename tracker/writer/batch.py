"""A batch of stream entries, and the ``events``/``bad_events`` columns built from it.

Entries stay as Redis returned them (hiredis's flat ``[name, value, ...]`` lists, no dict per
entry) until their JSON is parsed, and the common cases (every entry an event or a pack of events
as ``EventStream`` writes them, every payload valid) are recognised and parsed in C-level passes
over the whole batch; only a batch with something else in it is looked at entry by entry. The
entries' format is ``tracker.stream_entries``'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from tracker import schema
from tracker.stream_entries import (
    PACK_MAX,
    PACKED,
    PLACES,
    SINGLE,
    common_shape,
    decode,
    event_ids,
    fast_loads,
    kind_and_payload,
    packed_id,
    packed_rows,
)
from tracker.writer.columns import event_block, types_of
from tracker.writer.rows import bad_row
from tracker.writer.stream_io import pairs

_PAYLOAD = itemgetter(3)  # of a single event's flat field list
_PACK_PAYLOAD = itemgetter(5)  # of a packed entry's


@dataclass
class Batch:
    """Entries of one or more reads, as Redis returned them, and the columns built from them.

    ``fields`` holds each entry's flat ``[name, value, ...]`` reply, ``None`` for an entry deleted
    while pending (acknowledged, not inserted). Ids ascend, as every read returns them. Every id
    is acknowledged together, after the insert.
    """

    ids: list[bytes] = field(default_factory=list)
    fields: list[list | None] = field(default_factory=list)
    events_read: int = 0  # events the entries say they hold (``stream_entries.count_events``), for sizing reads
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
        """The ``stream_id`` of every row the entries still in the stream store (for the recovery check)."""
        return [i for entry_id, fields in zip(self.ids, self.fields) for i in event_ids(entry_id.decode(), fields)]


def build(batch: Batch, skip: set[str]) -> Batch:
    """Fill the batch's columns, leaving out the rows whose ``stream_id`` is in ``skip``."""
    stream_ids = list(map(bytes.decode, batch.ids))
    singles: tuple[list[str], list[bytes], list[list]] = ([], [], [])
    packs: tuple[list[str], list[bytes], list[list]] = ([], [], [])
    bad: list[tuple] = []
    every = batch.fields
    shape = None if skip else common_shape(every)
    if shape == SINGLE:
        every = []  # all are single events as EventStream writes them
        singles = (stream_ids, list(map(_PAYLOAD, batch.fields)), batch.fields)
    elif shape == PACKED:
        every = []  # all are packed events as EventStream writes them
        packs = (stream_ids, list(map(_PACK_PAYLOAD, batch.fields)), batch.fields)
    for entry_id, fields in zip(stream_ids, every):
        if fields is None:
            continue
        kind, payload = kind_and_payload(fields)
        if kind == PACKED:
            target = packs  # its events' ids are checked against ``skip`` once unpacked
        elif entry_id in skip:
            continue
        elif kind == SINGLE:
            target = singles
        else:
            bad.append(_bad_entry(entry_id, fields, payload))
            continue
        target[0].append(entry_id)
        target[1].append(payload)
        target[2].append(fields)
    datas, ev_ids = _singles(*singles, bad)
    if packs[0]:
        pack_datas, pack_ids = _packs(*packs, skip, bad)
        datas += pack_datas
        ev_ids += pack_ids
    batch.event_names, batch.events = event_block(datas, ev_ids)
    batch.bad = _transpose(bad, len(schema.BAD_EVENTS_COLUMNS))
    batch.rows = len(ev_ids) + len(bad)
    batch.skipped = len(skip)
    return batch


def _singles(ids: list[str], payloads: list[bytes], fields: list[list], bad: list) -> tuple[list, list[str]]:
    """The events of single-event entries and their ids; what is not a JSON object goes to ``bad``."""
    if not payloads:
        return [], []
    try:  # the whole batch in one C-level pass; entry by entry only if something is off
        datas = list(map(fast_loads, payloads)) if fast_loads else []
        if types_of(datas) == {dict}:
            return datas, list(ids)
    except ValueError:
        pass
    datas, ids_ok = [], []
    for entry_id, payload, entry in zip(ids, payloads, fields):
        try:
            data = decode(payload)
        except ValueError:
            data = None
        if isinstance(data, dict):
            datas.append(data)
            ids_ok.append(entry_id)
        else:
            bad.append(_undecodable(entry_id, entry))
    return datas, ids_ok


def _packs(ids: list[str], payloads: list[bytes], fields: list[list], skip: set[str],
           bad: list) -> tuple[list, list[str]]:
    """The events of packed entries and their ids (``<entry id>.<place>``), less those in ``skip``."""
    if not skip and fast_loads:
        try:  # the common case in C-level passes: every payload an array of JSON objects
            packs = list(map(fast_loads, payloads))
            if types_of(packs) == {list} and all(packs):
                datas = list(chain.from_iterable(packs))
                if types_of(datas) == {dict}:
                    return datas, _pack_ids(ids, packs)
        except ValueError:
            pass
    datas, ids_ok = [], []
    for entry_id, payload, entry in zip(ids, payloads, fields):
        rows = packed_rows(payload)
        if rows is None:
            if packed_id(entry_id, 0) not in skip:
                bad.append(_undecodable(packed_id(entry_id, 0), entry))
            continue
        for place, data in enumerate(rows):
            row_id = packed_id(entry_id, place)
            if row_id in skip:
                continue
            if isinstance(data, dict):
                datas.append(data)
                ids_ok.append(row_id)
            else:
                bad.append(bad_row({"errors": ["undecodable: a packed event is not a JSON object"],
                                    "raw": repr(data)[:8192]}, row_id))
    return datas, ids_ok


def _pack_ids(ids: list[str], packs: list[list]) -> list[str]:
    """``<entry id>.<place>`` of every event of the packs (joined, not formatted: one per event)."""
    out: list[str] = []
    for entry_id, pack in zip(ids, packs):
        n = len(pack)
        if n <= PACK_MAX:
            out += [entry_id + place for place in PLACES[:n]]
        else:  # an entry no linger wrote
            out += [packed_id(entry_id, place) for place in range(n)]
    return out


def _bad_entry(entry_id: str, fields: list, payload: bytes) -> tuple:
    """The ``bad_events`` row of a rejected hit's entry (or of an entry of a kind nobody writes)."""
    try:
        data = decode(payload)
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
