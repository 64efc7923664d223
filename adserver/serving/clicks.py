"""Signed click links: ``/c/<token>`` redirects to the product's page taken from the catalog.

The token carries the impression id, advertiser, placement, sku, the reason the product was shown,
the IAB TCF consent state the ad was served under and an expiry, all under an HMAC. The consent
state travels with the link because the click request carries no ``gdpr`` parameters of its own: an
ad served under ``gdpr=1`` without consent leads to a click that reads no cookie
(``Click.may_identify``). The redirect target is never read from the request: it is looked up in
the advertiser's catalog, so the endpoint cannot be used as an open redirect. A forged,
altered, truncated or expired token gets 400. The catalog's link is checked again against the
advertiser's landing domains (:func:`landing_refusal`): links stored before a check existed, or
before a domain was removed, are refused rather than followed.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from adserver.catalog.landing import landing_problem
from tracker.consent import CONSENT_GIVEN, CONSENT_MISSING, CONSENT_NOT_APPLICABLE
from tracker.signing import MAC_BYTES, Signer, b64decode, b64encode

if TYPE_CHECKING:
    from adserver.catalog.registry import Registry

# Token layouts: 1 without a campaign, 2 with one, 3 also with the consent state (in the reason byte's
# high nibble, so the token is no longer). Every version verifies until it expires.
TOKEN_VERSION = 3
VERSIONS = (1, 2, TOKEN_VERSION)
REASONS = ("recent", "similar", "popular")
IMPRESSION_BYTES = 12
_HEAD = struct.Struct(">BIB")  # version, expiry (unix seconds), consent << 4 | reason index
CONSENT_UNKNOWN = -1  # tokens without a consent state: the click is treated as one where GDPR does not apply


CONSENT_CODES = (CONSENT_NOT_APPLICABLE, CONSENT_GIVEN, CONSENT_MISSING)


class InvalidToken(ValueError):
    """The click token is forged, altered, truncated or expired."""


@dataclass(frozen=True)
class Click:
    impression_id: str
    advertiser: str
    placement: str
    sku: str
    reason: str
    expires: int
    campaign: str = ""
    consent: int = CONSENT_UNKNOWN  # the ad's ``events.consent`` value (``tracker.consent.CONSENT_*``)

    @property
    def may_identify(self) -> bool:
        """Whether the click may read the visitor's cookie: not when the ad was served under GDPR
        without consent for personalised ads (the ad did not read it either)."""
        return self.consent != CONSENT_MISSING


class ClickTokens:
    """Issues and checks click tokens (newest key signs, all keys verify)."""

    def __init__(self, keys: Sequence[str], ttl_seconds: int) -> None:
        self._signer = Signer(keys, "click")
        self.ttl = ttl_seconds

    def issue(self, impression_id: str, advertiser: str, placement: str, sku: str, reason: str,
              now: float | None = None, campaign: str = "", consent: int = CONSENT_NOT_APPLICABLE) -> str:
        """The token of one product of an ad; ``consent`` is the ad's ``events.consent`` value."""
        if consent not in CONSENT_CODES:
            raise ValueError(f"consent must be one of {CONSENT_CODES}")
        expires = int((now or time.time()) + self.ttl)
        body = _HEAD.pack(TOKEN_VERSION, expires, consent << 4 | REASONS.index(reason))
        body += b64decode(impression_id) + "\x00".join((advertiser, placement, sku, campaign)).encode()
        return b64encode(body + self._signer.mac(body))

    def issue_all(self, impression_id: str, advertiser: str, placement: str, products: Sequence[tuple[str, str]],
                  now: float | None = None, campaign: str = "", consent: int = CONSENT_NOT_APPLICABLE) -> list[str]:
        """The tokens of every ``(sku, reason)`` of one ad, as :meth:`issue` makes them one by one: what the
        products share (expiry, impression, advertiser, placement, campaign) is packed once."""
        if consent not in CONSENT_CODES:
            raise ValueError(f"consent must be one of {CONSENT_CODES}")
        if not products:  # an empty unit (nothing to show) has no advertiser to sign for
            return []
        expires = int((now or time.time()) + self.ttl)
        impression = b64decode(impression_id)
        head = (advertiser + "\x00" + placement + "\x00").encode()
        tail = ("\x00" + campaign).encode()
        mac = self._signer.mac
        tokens = []
        for sku, reason in products:
            body = _HEAD.pack(TOKEN_VERSION, expires, consent << 4 | REASONS.index(reason)) + impression + head \
                + sku.encode() + tail
            tokens.append(b64encode(body + mac(body)))
        return tokens

    def verify(self, token: str, now: float | None = None) -> Click:
        try:
            raw = b64decode(token)
        except ValueError:
            raise InvalidToken("malformed token") from None
        if len(raw) < _HEAD.size + IMPRESSION_BYTES + MAC_BYTES + 4:
            raise InvalidToken("truncated token")
        body, tag = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not self._signer.verify(body, tag):
            raise InvalidToken("bad signature")
        version, expires, packed = _HEAD.unpack_from(body)
        consent, reason = (packed >> 4, packed & 0x0F) if version >= 3 else (CONSENT_UNKNOWN, packed)
        if version not in VERSIONS or reason >= len(REASONS) or (version >= 3 and consent not in CONSENT_CODES):
            raise InvalidToken("unknown token version")
        if expires < (now or time.time()):
            raise InvalidToken("expired token")
        rest = body[_HEAD.size:]
        impression = b64encode(rest[:IMPRESSION_BYTES])
        try:
            fields = rest[IMPRESSION_BYTES:].decode().split("\x00")
        except ValueError:
            raise InvalidToken("malformed token") from None
        if len(fields) != (3 if version == 1 else 4):
            raise InvalidToken("malformed token")
        campaign = fields[3] if version >= 2 else ""
        return Click(impression, fields[0], fields[1], fields[2], REASONS[reason], expires, campaign, consent)


def with_utm(link: str, placement: str, sku: str, advertiser: str, campaign: str = "") -> str:
    """The product link with our UTM parameters (replacing any utm_* it already had)."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [
        ("utm_source", "adserver"),
        ("utm_medium", "retargeting"),
        ("utm_campaign", campaign or advertiser),
        ("utm_content", sku),
        ("utm_term", placement),
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def landing_refusal(registry: Registry, advertiser: str, link: str) -> tuple[int, str] | None:
    """Why a click must not lead to ``link``, as ``(status, message)``; None if it may.

    A link off the cached domains is looked at again with fresh ones (a domain declared a moment
    ago); without any copy of the advertisers the link cannot be checked, so it is not followed.
    """
    domains = registry.landing_domains(advertiser)
    if domains is None or landing_problem(link, domains) is not None:
        domains = registry.landing_domains(advertiser, look_again=True)
    if domains is None:
        return 503, "This link cannot be checked right now. Try again in a moment."
    problem = landing_problem(link, domains)
    return (400, f"This ad's link was refused: {problem}.") if problem else None
