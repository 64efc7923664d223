"""Click ids: what the click redirect appends to the landing URL (``adclid=…``, like ``gclid``), so a
store can send it back with the order through the conversion API and the order links to the ad.

A click id names the click (its impression and time) and carries the clicking visitor's id,
**encrypted**: a landing URL is seen by the store, its analytics and whoever it shares logs with,
and our visitor id is the same on every store, so in clear it would let stores join their visitors.
With the visitor id inside, the API needs no lookup to link an order to the visitor's ads, however
late the click reached ClickHouse.

Layout (71 base64url characters)::

    version (1) | click time, unix s (4) | nonce (8) | impression id (12) | visitor id XOR pad (16) | MAC (12)

The pad is HMAC-SHA256(encryption key, everything before it) — a PRF-based stream cipher, the
random nonce making each pad unique — and the MAC, under a separate key, covers the advertiser and
every byte before it (encrypt-then-MAC). Both keys derive from each ``ADSERVER_SECRET_KEY``: the
newest issues, every configured key verifies. A click id of one advertiser is never valid for
another, and a forged, altered or truncated one is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tracker.identity import ID_BYTES
from tracker.signing import MAC_BYTES, b64decode, b64encode

CLICK_ID_PARAM = "adclid"
VERSION = 1
IMPRESSION_BYTES = 12
NONCE_BYTES = 8
_HEAD = struct.Struct(">BI")  # version, click time
_PLAIN = _HEAD.size + NONCE_BYTES + IMPRESSION_BYTES
SIZE = _PLAIN + ID_BYTES + MAC_BYTES
_NO_VISITOR = bytes(ID_BYTES)  # the click had no usable cookie


class InvalidClickId(ValueError):
    """The click id is malformed, forged, altered, or belongs to another advertiser."""


@dataclass(frozen=True)
class ClickRef:
    """What a verified click id names: the impression clicked, when, and by which visitor ('' if unknown)."""

    impression_id: str
    ts: int
    uid: str


def _derive(key: str, purpose: str) -> bytes:
    return hashlib.sha256(f"{purpose}\x00{key}".encode()).digest()


class ClickIds:
    """Issues and verifies click ids with a list of keys (newest first)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = [(_derive(k, "clickid-mac"), _derive(k, "clickid-pad")) for k in keys]

    def issue(self, advertiser: str, impression_id: str, ts: float, uid: str | None) -> str:
        """The click id of a click on ``impression_id`` (a 12-byte base64url id) at ``ts``."""
        mac_key, pad_key = self._keys[0]
        plain = _HEAD.pack(VERSION, int(ts)) + secrets.token_bytes(NONCE_BYTES) + b64decode(impression_id)
        if len(plain) != _PLAIN:
            raise ValueError("impression ids are 12 bytes")
        visitor = b64decode(uid) if uid else _NO_VISITOR
        if len(visitor) != ID_BYTES:
            raise ValueError("visitor ids are 16 bytes")
        body = plain + _xor(visitor, _pad(pad_key, plain))
        return b64encode(body + _mac(mac_key, advertiser, body))

    def verify(self, advertiser: str, click_id: object) -> ClickRef:
        """The click a click id names, if we issued it for ``advertiser``; else :class:`InvalidClickId`."""
        if not isinstance(click_id, str):
            raise InvalidClickId("a click id is a string")
        try:
            raw = b64decode(click_id)
        except ValueError:
            raise InvalidClickId("not a click id (base64url expected)") from None
        if len(raw) != SIZE:
            raise InvalidClickId("not a click id (wrong length)")
        body, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        matched = None
        for mac_key, pad_key in self._keys:  # every key is checked, so timing does not tell which matched
            if hmac.compare_digest(_mac(mac_key, advertiser, body), tag) and matched is None:
                matched = pad_key
        if matched is None:
            raise InvalidClickId("bad signature: not issued by this ad server for this advertiser")
        version, ts = _HEAD.unpack_from(body)
        if version != VERSION:
            raise InvalidClickId("unknown click id version")
        plain = body[:_PLAIN]
        visitor = _xor(body[_PLAIN:], _pad(matched, plain))
        impression = b64encode(plain[_HEAD.size + NONCE_BYTES:])
        return ClickRef(impression, ts, "" if visitor == _NO_VISITOR else b64encode(visitor))


def _mac(key: bytes, advertiser: str, body: bytes) -> bytes:
    return hmac.new(key, advertiser.encode() + b"\x00" + body, hashlib.sha256).digest()[:MAC_BYTES]


def _pad(key: bytes, plain: bytes) -> bytes:
    return hmac.new(key, plain, hashlib.sha256).digest()[:ID_BYTES]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def with_click_id(link: str, click_id: str) -> str:
    """The landing URL with ``adclid`` set to ``click_id`` (replacing one the link already had)."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != CLICK_ID_PARAM]
    query.append((CLICK_ID_PARAM, click_id))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
