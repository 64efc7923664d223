"""The IAB TCF v2 consent string (TC string) a publisher's consent platform hands us, and what it allows.

European publishers run a consent platform (CMP) that records the visitor's choices in a TC string
(IAB Tech Lab, "Consent string and vendor list formats v2", which TCF v2.2 keeps at version 2).
Pages and ad requests pass it on as ``gdpr=1&gdpr_consent=<string>``. This module decodes the core
segment (the one that says what the visitor agreed to) and turns it into a :class:`Verdict`:

* storing a cookie and building a profile needs consent for purposes 1 (store and/or access
  information on a device) and 3 (create a personalised-ads profile), and for our vendor id;
* choosing an ad from that profile needs purposes 1, 3 and 4 (use a profile to select
  personalised ads) and our vendor id.

TCF v2.2 allows no legitimate interest for purposes 1, 3 and 4, so only consent bits count, and a
publisher restriction that disallows one of them for our vendor (or demands legitimate interest,
which cannot serve them) takes the permission away. Anything that does not decode (bad base64url,
too short, another version, sizes past the end of the string, longer than :data:`MAX_LENGTH`)
counts as no consent: it never raises to the caller. Segments after the first ``.`` (disclosed
vendors, publisher purposes) say nothing about our permissions and are skipped.

Pure: no I/O, no settings; decoded strings are cached, since a visitor's string repeats on every hit.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache

# Real TC strings are a few hundred characters (range encoding keeps even thousands of vendors
# short); a request line cannot carry much more anyway. Beyond this: no consent, nothing decoded.
MAX_LENGTH = 4096
TCF_VERSION = 2
PURPOSE_STORAGE = 1  # store and/or access information on a device
PURPOSE_PROFILE = 3  # create a personalised-ads profile
PURPOSE_SELECT = 4  # use a profile to select personalised ads
PROFILE_PURPOSES = (PURPOSE_STORAGE, PURPOSE_PROFILE)
PERSONALISED_PURPOSES = (PURPOSE_STORAGE, PURPOSE_PROFILE, PURPOSE_SELECT)

# Restriction types of the publisher restrictions section.
RESTRICTION_NOT_ALLOWED = 0
RESTRICTION_REQUIRE_CONSENT = 1
RESTRICTION_REQUIRE_LI = 2

# What the ``events.consent`` column records.
CONSENT_NOT_APPLICABLE = 0  # gdpr absent or 0
CONSENT_GIVEN = 1  # gdpr=1 and the string allows what the request does
CONSENT_MISSING = 2  # gdpr=1 without a valid string allowing it

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+=*\Z")


class Malformed(ValueError):
    """The string cannot be a TC string (callers of :func:`decode` see None, never this)."""


@dataclass(frozen=True)
class VendorSection:
    """A vendor consent or legitimate-interest section: vendor ids as inclusive ranges."""

    max_vendor_id: int
    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, vendor_id: object) -> bool:
        return isinstance(vendor_id, int) and any(lo <= vendor_id <= hi for lo, hi in self.ranges)

    def ids(self) -> frozenset[int]:
        return frozenset(v for lo, hi in self.ranges for v in range(lo, hi + 1))


@dataclass(frozen=True)
class Restriction:
    purpose: int
    kind: int  # RESTRICTION_*
    vendors: VendorSection


@dataclass(frozen=True)
class TCString:
    """The core segment of a TC string."""

    version: int
    created: float  # unix seconds (the string holds deciseconds)
    last_updated: float
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_li_transparency: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: VendorSection
    vendor_legitimate_interests: VendorSection
    restrictions: tuple[Restriction, ...]

    def allows(self, vendor_id: int, purposes: tuple[int, ...]) -> bool:
        """Consent for every purpose and for the vendor, and no publisher restriction against it."""
        if vendor_id not in self.vendor_consents or not all(p in self.purposes_consent for p in purposes):
            return False
        return not any(r.purpose in purposes and r.kind != RESTRICTION_REQUIRE_CONSENT and vendor_id in r.vendors
                       for r in self.restrictions)


class _Bits:
    """Reads big-endian unsigned fields from the decoded bytes; running past the end is :class:`Malformed`."""

    def __init__(self, raw: bytes) -> None:
        self.value = int.from_bytes(raw, "big")
        self.size = len(raw) * 8
        self.pos = 0

    def read(self, width: int) -> int:
        end = self.pos + width
        if end > self.size:
            raise Malformed("truncated")
        self.pos = end
        return (self.value >> (self.size - end)) & ((1 << width) - 1)

    def flags(self, width: int) -> frozenset[int]:
        """A bit field as the set of 1-based positions that are set."""
        bits = self.read(width)
        return frozenset(n + 1 for n in range(width) if bits >> (width - 1 - n) & 1)

    def letters(self) -> str:
        codes = (self.read(6), self.read(6))
        if max(codes) > 25:
            raise Malformed("not a letter")
        return "".join(chr(ord("A") + c) for c in codes)

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """A range section (NumEntries, then single ids or start/end pairs), ids 1..65535, ends not before starts."""
        out = []
        for _ in range(self.read(12)):
            is_range = self.read(1)
            start = self.read(16)
            end = self.read(16) if is_range else start
            if start < 1 or end < start:
                raise Malformed("bad vendor range")
            out.append((start, end))
        return tuple(out)

    def vendors(self) -> VendorSection:
        max_id = self.read(16)
        if self.read(1):  # range encoding
            ranges = self.ranges()
            if any(end > max_id for _, end in ranges):
                raise Malformed("vendor id above MaxVendorId")
            return VendorSection(max_id, ranges)
        return VendorSection(max_id, _as_ranges(self.flags(max_id)))


def _as_ranges(ids: frozenset[int]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for v in sorted(ids):
        if out and out[-1][1] == v - 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return tuple((lo, hi) for lo, hi in out)


def _core_bytes(text: str) -> bytes:
    core = text.split(".", 1)[0]
    if not _SEGMENT.match(core):
        raise Malformed("not base64url")
    core = core.rstrip("=")
    if len(core) % 4 == 1:
        raise Malformed("bad base64 length")
    return base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))


def _parse(text: str) -> TCString:
    bits = _Bits(_core_bytes(text))
    version = bits.read(6)
    if version != TCF_VERSION:
        raise Malformed(f"version {version}")
    created, last_updated = bits.read(36) / 10, bits.read(36) / 10
    cmp_id, cmp_version, consent_screen = bits.read(12), bits.read(12), bits.read(6)
    language = bits.letters()
    vendor_list_version, policy_version = bits.read(12), bits.read(6)
    service_specific, non_standard = bool(bits.read(1)), bool(bits.read(1))
    special_features = bits.flags(12)
    purposes_consent, purposes_li = bits.flags(24), bits.flags(24)
    purpose_one_treatment = bool(bits.read(1))
    publisher_cc = bits.letters()
    consents = bits.vendors()
    legitimate_interests = bits.vendors()
    restrictions = []
    for _ in range(bits.read(12)):
        purpose, kind = bits.read(6), bits.read(2)
        restrictions.append(Restriction(purpose, kind, VendorSection(0xFFFF, bits.ranges())))
    return TCString(version, created, last_updated, cmp_id, cmp_version, consent_screen, language,
                    vendor_list_version, policy_version, service_specific, non_standard, special_features,
                    purposes_consent, purposes_li, purpose_one_treatment, publisher_cc, consents,
                    legitimate_interests, tuple(restrictions))


@lru_cache(maxsize=4096)
def _decode_cached(text: str) -> TCString | None:
    try:
        return _parse(text)
    except (Malformed, ValueError):  # binascii.Error is a ValueError
        return None


def decode(text: object) -> TCString | None:
    """The decoded core segment, or None for anything that is not a well-formed TC string v2."""
    if not isinstance(text, str) or not text or len(text) > MAX_LENGTH:
        return None
    return _decode_cached(text)


@dataclass(frozen=True)
class Verdict:
    """What a request's ``gdpr``/``gdpr_consent`` allow."""

    applies: bool  # GDPR applies (gdpr=1): the string decides
    profile: bool  # may set/read the cookie and build the visitor's profile
    personalised: bool  # may choose the ad from the profile

    @property
    def code(self) -> int:
        """The ``events.consent`` value of an ad: ``CONSENT_*``."""
        if not self.applies:
            return CONSENT_NOT_APPLICABLE
        return CONSENT_GIVEN if self.personalised else CONSENT_MISSING

    @property
    def profile_code(self) -> int:
        """The ``events.consent`` value of a store event (which only needs the profile permission)."""
        if not self.applies:
            return CONSENT_NOT_APPLICABLE
        return CONSENT_GIVEN if self.profile else CONSENT_MISSING


NOT_APPLICABLE = Verdict(applies=False, profile=True, personalised=True)
REFUSED = Verdict(applies=True, profile=False, personalised=False)


def gdpr_applies(gdpr: str | None) -> bool:
    """``gdpr=0``, empty or absent: no; ``1``, and anything else (an unexpanded macro, garbage), yes.

    An unreadable flag is taken as applying: the visitor then gets what an EU visitor without
    consent gets (a non-personalised ad), never tracking they may have refused.
    """
    return gdpr is not None and gdpr.strip() not in ("", "0")


def verdict(gdpr: str | None, consent: str | None, vendor_id: int) -> Verdict:
    """The permissions of a request carrying ``gdpr`` and ``gdpr_consent``, for our IAB vendor id.

    ``vendor_id`` 0 (not registered) never gets consent where GDPR applies.
    """
    if not gdpr_applies(gdpr):
        return NOT_APPLICABLE
    tc = decode(consent)
    if tc is None or vendor_id <= 0:
        return REFUSED
    return Verdict(applies=True, profile=tc.allows(vendor_id, PROFILE_PURPOSES),
                   personalised=tc.allows(vendor_id, PERSONALISED_PURPOSES))
