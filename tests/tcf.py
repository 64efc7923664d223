"""A TC string encoder for the tests: builds the consent strings a CMP would send, one case at a time.

Written from the IAB's "Consent string and vendor list formats v2" field table, independently of
``tracker.consent``; the decoder is also checked against strings the IAB's own libraries publish
(tests/tracker/test_consent.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

VENDOR = 755  # the vendor id the tests configure (ADSERVER_TCF_VENDOR_ID)
ALL_PURPOSES = tuple(range(1, 11))
# 2024-05-01T12:00:00Z in deciseconds, the unit of Created / LastUpdated.
DECISECONDS = 17145648000


class Bits:
    def __init__(self) -> None:
        self.text = ""

    def int(self, value: int, width: int) -> Bits:
        assert 0 <= value < 1 << width
        self.text += format(value, f"0{width}b")
        return self

    def flags(self, ids: Iterable[int], width: int) -> Bits:
        ids = set(ids)
        self.text += "".join("1" if n in ids else "0" for n in range(1, width + 1))
        return self

    def letters(self, two: str) -> Bits:
        return self.int(ord(two[0]) - 65, 6).int(ord(two[1]) - 65, 6)

    def ranges(self, ranges: list[tuple[int, int]]) -> Bits:
        self.int(len(ranges), 12)
        for lo, hi in ranges:
            self.int(int(lo != hi), 1).int(lo, 16)
            if lo != hi:
                self.int(hi, 16)
        return self

    def vendors(self, ids: Iterable[int], use_ranges: bool = False, max_id: int | None = None) -> Bits:
        ids = sorted(set(ids))
        top = max_id if max_id is not None else (ids[-1] if ids else 0)
        self.int(top, 16).int(int(use_ranges), 1)
        if not use_ranges:
            return self.flags(ids, top)
        ranges: list[list[int]] = []
        for v in ids:
            if ranges and ranges[-1][1] == v - 1:
                ranges[-1][1] = v
            else:
                ranges.append([v, v])
        return self.ranges([(lo, hi) for lo, hi in ranges])

    def encode(self) -> str:
        text = self.text + "0" * (-len(self.text) % 8)
        raw = int(text, 2).to_bytes(len(text) // 8, "big") if text else b""
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def core(purposes: Iterable[int] = ALL_PURPOSES, vendors: Iterable[int] = (VENDOR,), *, version: int = 2,
         policy_version: int = 4, li_purposes: Iterable[int] = (2, 7), li_vendors: Iterable[int] = (),
         use_ranges: bool = False, special_features: Iterable[int] = (1,), cmp_id: int = 300,
         language: str = "FR", publisher_cc: str = "FR", restrictions: Iterable[tuple[int, int, list]] = (),
         max_vendor_id: int | None = None) -> Bits:
    """The bits of a core segment; ``restrictions`` are ``(purpose, type, [(lo, hi), ...])``."""
    bits = (Bits().int(version, 6).int(DECISECONDS, 36).int(DECISECONDS + 600, 36).int(cmp_id, 12).int(7, 12)
            .int(1, 6).letters(language).int(48, 12).int(policy_version, 6).int(0, 1).int(0, 1)
            .flags(special_features, 12).flags(purposes, 24).flags(li_purposes, 24).int(0, 1).letters(publisher_cc)
            .vendors(vendors, use_ranges, max_vendor_id).vendors(li_vendors, use_ranges))
    restrictions = list(restrictions)
    bits.int(len(restrictions), 12)
    for purpose, kind, ranges in restrictions:
        bits.int(purpose, 6).int(kind, 2).ranges(ranges)
    return bits


def tc_string(*args, **kwargs) -> str:
    """A TC string v2.2 (policy version 4): all purposes and our vendor unless told otherwise."""
    return core(*args, **kwargs).encode()


# The cases every endpoint is tested with.
FULL = tc_string()
NO_PURPOSE_1 = tc_string(purposes=[2, 3, 4, 5, 6, 7, 8, 9, 10])
ONLY_PURPOSE_1 = tc_string(purposes=[1, 2, 7, 9, 10])  # storage, but no personalised-ads profile or selection
NO_VENDOR = tc_string(vendors=[1, 2, 3, VENDOR + 1])
MALFORMED = "CP!not*base64"
OVERSIZED = FULL + "." + "A" * 5000
