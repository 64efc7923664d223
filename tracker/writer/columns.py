"""The ``events`` columns of a whole batch, built a column at a time.

Each column is first taken as it is and checked with C-level passes (the set of value types, the
longest string); only a column that fails the check is cleaned value by value with the functions
of ``rows.py``. Either way a value is the same: an entry's row never depends on its batch-mates.
A key no entry of the batch has costs a constant.
"""

from __future__ import annotations

import math
import time
from itertools import chain

from tracker import schema
from tracker.writer.rows import TS_MAX, bounded_uint, finite_number, number, text, texts, unix_seconds

_NO_STRS: list = []  # default of list columns; shared, never mutated


def types_of(values: list) -> set:
    """The set of the values' types, in one C-level pass."""
    return set(map(type, values))


def _ts_column(datas: list[dict], present: set, n: int) -> list[int]:
    if "ts" not in present:
        return [int(time.time())] * n
    values = [d.get("ts") for d in datas]
    if types_of(values) <= {int, float}:
        try:
            out = list(map(int, values))
            if min(out) >= 0 and max(out) <= TS_MAX:
                return out
        except (ValueError, OverflowError):  # NaN, infinities
            pass
    return [unix_seconds(v) for v in values]


def _str_column(datas: list[dict], key: str, limit: int, present: set, n: int) -> list[str]:
    if key not in present:
        return [""] * n
    values = [d.get(key, "") for d in datas]
    if types_of(values) == {str} and max(map(len, values)) <= limit:
        return values
    return [text(v, limit) for v in values]


def _strs_column(datas: list[dict], key: str, present: set, n: int) -> list[list[str]]:
    if key not in present:
        return [_NO_STRS] * n
    values = [d.get(key, _NO_STRS) for d in datas]
    if types_of(values) == {list}:
        flat = list(chain.from_iterable(values))
        if not flat or (types_of(flat) == {str} and max(map(len, flat)) <= 200):
            return values
    return [texts(v) for v in values]


def _float_column(datas: list[dict], key: str, finite: bool, present: set, n: int) -> list[float]:
    if key not in present:
        return [0.0] * n
    values = [d.get(key, 0.0) for d in datas]
    if types_of(values) <= {int, float}:
        try:
            out = [v + 0.0 for v in map(float, values)]  # + 0.0: -0.0 becomes 0.0, as the cleaning gives
            if not finite or (not any(map(math.isnan, out)) and max(map(abs, out)) < 1e15):
                return out
        except OverflowError:  # an integer beyond float
            pass
    return [(finite_number if finite else number)(v) for v in values]


def _uint_column(datas: list[dict], key: str, limit: int, present: set, n: int) -> list[int]:
    if key not in present:
        return [0] * n
    values = [d.get(key, 0) for d in datas]
    if types_of(values) == {int} and min(values) >= 0 and max(values) <= limit:
        return values
    return [bounded_uint(v, limit) for v in values]


def _flag_column(datas: list[dict], key: str, present: set, n: int) -> list[int]:
    if key not in present:
        return [0] * n
    return list(map(int, map(bool, (d.get(key) for d in datas))))


# The entry key each column comes from; ``ts`` (now when missing) and ``stream_id`` always carry values.
_SOURCE_KEY = {"sku": "skus", "ts": None, "stream_id": None}


def event_block(datas: list[dict], stream_ids: list[str]) -> tuple[tuple[str, ...], list[list]]:
    """The ``events`` columns worth sending for these entries, with their names.

    A column whose key no entry has holds only its default ('', 0, []), which is what ClickHouse
    fills in for a column left out of an INSERT (the table's defaults are the same values). Pixel
    events carry a handful of the 25 columns: leaving out the others saves most of the encoding
    in the driver and most of the parsing in the server.
    """
    present: set = set().union(*datas) if datas else set()
    columns = event_columns(datas, stream_ids, present)
    keep = [n for n, name in enumerate(schema.EVENTS_COLUMNS)
            if _SOURCE_KEY.get(name, name) is None or _SOURCE_KEY.get(name, name) in present]
    return tuple(schema.EVENTS_COLUMNS[n] for n in keep), [columns[n] for n in keep]


def event_columns(datas: list[dict], stream_ids: list[str], present: set | None = None) -> list[list]:
    """The ``events`` columns (order of ``schema.EVENTS_COLUMNS``) of many entries' JSON at once.

    ``ts`` is unix seconds, which the native protocol sends without per-value date arithmetic.
    ``present``: the keys of all entries, if the caller has them already.
    """
    n = len(datas)
    if present is None:
        present = set().union(*datas) if n else set()
    skus = _strs_column(datas, "skus", present, n)
    return [
        _ts_column(datas, present, n),
        _str_column(datas, "advertiser", 64, present, n),
        _str_column(datas, "event", 32, present, n),
        _str_column(datas, "uid", 64, present, n),
        [s[0] if s else "" for s in skus],
        skus,
        _strs_column(datas, "reasons", present, n),
        _str_column(datas, "order_id", 100, present, n),
        _float_column(datas, "value", False, present, n),
        _str_column(datas, "currency", 3, present, n),
        _str_column(datas, "placement", 64, present, n),
        _str_column(datas, "impression_id", 64, present, n),
        _str_column(datas, "size", 16, present, n),
        _flag_column(datas, "addressable", present, n),
        _str_column(datas, "device", 16, present, n),
        _str_column(datas, "url", 2048, present, n),
        _str_column(datas, "ref", 2048, present, n),
        list(stream_ids),
        _str_column(datas, "campaign", 64, present, n),
        _float_column(datas, "cost", True, present, n),
        _float_column(datas, "pctr", True, present, n),
        _uint_column(datas, "interest_age", 0xFFFFFFFF, present, n),
        _uint_column(datas, "interest_views", 0xFFFF, present, n),
        _flag_column(datas, "invalid", present, n),
        _str_column(datas, "invalid_reason", 64, present, n),
        _uint_column(datas, "consent", 2, present, n),
    ]
