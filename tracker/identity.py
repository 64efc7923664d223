"""Visitor identity: the random, signed ``uid`` cookie and the privacy signals that switch it off.

The cookie holds a random id and its MAC. A cookie that fails verification (tampered, forged,
signed with a retired key) is never trusted: the visitor simply gets a fresh id. Visitors who opted
out (``optout=1``) or whose browser sends ``Sec-GPC: 1`` or ``DNT: 1`` get no id at all and are not
tracked; they still see ads, chosen without any personal data.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from functools import lru_cache

from tracker.signing import Signer, b64decode, b64encode

UID_COOKIE = "uid"
OPTOUT_COOKIE = "optout"
UID_MAX_AGE = 396 * 24 * 3600  # about 13 months, the longest lifetime regulators tolerate
ID_BYTES = 16

_UID_SHAPE = re.compile(r"^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{16}\Z")


VERIFIED_CACHE_SIZE = 16384


class VisitorIds:
    """Mints and verifies visitor ids; ``keys`` are newest first (all verify, the first signs).

    Every pixel hit, ad and click verifies the cookie and the pixel re-signs it: two HMACs, a
    base64 decode, an encode and a regex, ~7 µs. A browser sends the same cookie on every request, so the
    last ``VERIFIED_CACHE_SIZE`` answers (cookie -> uid or None, uid -> cookie value) are kept per
    instance (an instance's keys never change), bounded so forged cookies cannot grow it.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._signer = Signer(keys, "uid")
        self.verify = lru_cache(maxsize=VERIFIED_CACHE_SIZE)(self._verify)  # type: ignore[method-assign]
        self.cookie_value = lru_cache(maxsize=VERIFIED_CACHE_SIZE)(self._cookie_value)  # type: ignore[method-assign]

    def new(self) -> tuple[str, str]:
        """A fresh ``(uid, cookie_value)`` pair."""
        uid = b64encode(secrets.token_bytes(ID_BYTES))
        return uid, self.cookie_value(uid)

    def cookie_value(self, uid: str) -> str:
        """The cookie holding ``uid`` under the newest key (cached, see the class)."""
        return self._cookie_value(uid)

    def _cookie_value(self, uid: str) -> str:
        return f"{uid}.{b64encode(self._signer.mac(uid.encode()))}"

    def verify(self, cookie: str | None) -> str | None:
        """The uid inside a valid cookie, else None (cached, see the class)."""
        return self._verify(cookie)

    def _verify(self, cookie: str | None) -> str | None:
        """The uid inside a valid cookie, else None (cheap shape check before any MAC)."""
        if not cookie or len(cookie) != 39 or not _UID_SHAPE.match(cookie):
            return None
        uid, _, tag = cookie.partition(".")
        # The shape leaves 16 base64url characters for the tag: exactly MAC_BYTES, so its decoding
        # is canonical. The uid is not decoded: the MAC covers its text, and only canonical
        # encodings of random bytes were ever signed.
        if not self._signer.verify(uid.encode(), b64decode(tag)):
            return None
        return uid


def tracking_allowed(cookies: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """False when the visitor opted out or their browser sends Global Privacy Control or Do Not Track."""
    if cookies.get(OPTOUT_COOKIE) == "1":
        return False
    if headers.get("Sec-GPC", "").strip() == "1" or headers.get("DNT", "").strip() == "1":
        return False
    return True
