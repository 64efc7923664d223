"""Signed "not interested" tokens: what the ✕ control of one ad may dismiss.

A token names the impression, advertiser, placement and campaign of the ad it was issued with, the
products it showed, and an expiry, all under an HMAC whose purpose ("hide") differs from click
links', so neither kind of token is valid as the other. The reader's choice (one of these products,
or the whole store) is not in the token: it is what the reader answers. A forged, altered, truncated
or expired token gets 400; the answer for one product of one impression counts once
(``tracker.hides``). Products are listed while they fit ``SKU_BYTES``, so that the ✕ link of a
unit stays short whatever the catalog's ids (the store can always be dismissed).

The token also carries the IAB TCF consent state the ad was served under (its ``events.consent``
value), since the answer comes without ``gdpr`` parameters: for an ad served under ``gdpr=1`` without
consent, the answer reads no cookie and keeps nothing per visitor (``HideRequest.may_identify``).

Layout (base64url)::

    version (1) | expiry (4) | consent (1) | impression id (12) | advertiser NUL placement NUL campaign NUL sku NUL ... | MAC (12)

Version 1 tokens, without the consent byte, verify until they expire (as if GDPR did not apply).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tracker.consent import CONSENT_GIVEN, CONSENT_MISSING, CONSENT_NOT_APPLICABLE
from tracker.events import ADVERTISER_RE, PLACEMENT_RE, SKU_RE
from tracker.signing import MAC_BYTES, Signer, b64decode, b64encode

TOKEN_VERSION = 2
IMPRESSION_BYTES = 12
SKU_BYTES = 120  # product ids a token lists at most, in bytes
MAX_TOKEN_CHARS = 1024  # the longest token we issue is under 500 characters
_HEAD = struct.Struct(">BI")  # version, expiry
_CONSENT = struct.Struct(">B")  # from version 2 on
CONSENT_CODES = (CONSENT_NOT_APPLICABLE, CONSENT_GIVEN, CONSENT_MISSING)


class InvalidHideToken(ValueError):
    """The token is forged, altered, truncated or expired."""


@dataclass(frozen=True)
class HideRequest:
    """What a verified token lets the reader dismiss."""

    impression_id: str
    advertiser: str
    placement: str
    campaign: str
    skus: tuple[str, ...]
    expires: int
    consent: int = CONSENT_NOT_APPLICABLE  # the ad's ``events.consent`` value

    @property
    def may_identify(self) -> bool:
        """Whether the answer may read the visitor's cookie and keep the answer for them: not for an ad
        served under GDPR without consent for personalised ads."""
        return self.consent != CONSENT_MISSING


class HideTokens:
    """Issues and checks hide tokens (newest key signs, all keys verify)."""

    def __init__(self, keys: Sequence[str], ttl_seconds: int) -> None:
        self._signer = Signer(keys, "hide")
        self.ttl = ttl_seconds

    def issue(self, impression_id: str, advertiser: str, placement: str, skus: Sequence[str], campaign: str = "",
              now: float | None = None, consent: int = CONSENT_NOT_APPLICABLE) -> str:
        """The token of an ad showing ``skus`` (the first ones that fit ``SKU_BYTES``); ``consent`` is the
        ad's ``events.consent`` value."""
        if consent not in CONSENT_CODES:
            raise ValueError(f"consent must be one of {CONSENT_CODES}")
        listed: list[str] = []
        size = 0
        for sku in skus:
            size += len(sku.encode()) + 1
            if size > SKU_BYTES:
                break
            listed.append(sku)
        body = _HEAD.pack(TOKEN_VERSION, int((now or time.time()) + self.ttl)) + _CONSENT.pack(consent)
        body += b64decode(impression_id)
        body += "\x00".join((advertiser, placement, campaign, *listed)).encode()
        return b64encode(body + self._signer.mac(body))

    def verify(self, token: object, now: float | None = None) -> HideRequest:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise InvalidHideToken("malformed token")
        try:
            raw = b64decode(token)
        except ValueError:
            raise InvalidHideToken("malformed token") from None
        if len(raw) < _HEAD.size + IMPRESSION_BYTES + MAC_BYTES + 4:
            raise InvalidHideToken("truncated token")
        body, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not self._signer.verify(body, tag):
            raise InvalidHideToken("bad signature")
        version, expires = _HEAD.unpack_from(body)
        if version not in (1, TOKEN_VERSION):
            raise InvalidHideToken("unknown token version")
        if expires < (now or time.time()):
            raise InvalidHideToken("expired token")
        rest = body[_HEAD.size:]
        consent = CONSENT_NOT_APPLICABLE
        if version >= 2:
            consent, rest = rest[0], rest[_CONSENT.size:]
            if consent not in CONSENT_CODES:
                raise InvalidHideToken("malformed token")
        try:
            fields = rest[IMPRESSION_BYTES:].decode().split("\x00")
        except ValueError:
            raise InvalidHideToken("malformed token") from None
        if len(fields) < 3:
            raise InvalidHideToken("malformed token")
        advertiser, placement, campaign, *skus = fields
        # Signed by us, so these hold; checked anyway, since they name Redis keys.
        if not (ADVERTISER_RE.match(advertiser) and PLACEMENT_RE.match(placement)) \
                or (campaign and not ADVERTISER_RE.match(campaign)) or not all(SKU_RE.match(s) for s in skus):
            raise InvalidHideToken("malformed token")
        return HideRequest(b64encode(rest[:IMPRESSION_BYTES]), advertiser, placement, campaign, tuple(skus), expires,
                           consent)
