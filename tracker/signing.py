"""HMAC signatures for everything that comes back to us from a browser (cookies, click links).

Keys rotate: the newest key signs, every configured key verifies. Each use has its own purpose
string mixed into the MAC, so a value signed for one use (a cookie) is never valid for another
(a click token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

MAC_BYTES = 12  # 96-bit tags: far beyond online guessing, and keeps click links short


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict URL-safe base64 without padding; raises ValueError on anything else."""
    if not text or len(text) > 4096 or not _B64_ALPHABET.issuperset(text):
        raise ValueError("not base64url")
    if len(text) % 4 == 1:
        raise ValueError("bad base64 length")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64encode(raw) != text:  # reject non-canonical encodings (stray low bits)
        raise ValueError("non-canonical base64")
    return raw


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class Signer:
    """Signs and verifies byte strings for one purpose with a list of keys (newest first)."""

    def __init__(self, keys: Sequence[str], purpose: str) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = [hashlib.sha256(f"{purpose}\x00{k}".encode()).digest() for k in keys]

    def mac(self, payload: bytes) -> bytes:
        return hmac.new(self._keys[0], payload, hashlib.sha256).digest()[:MAC_BYTES]

    def verify(self, payload: bytes, tag: bytes) -> bool:
        ok = False
        for key in self._keys:  # check every key, so timing does not tell which one matched
            ok |= hmac.compare_digest(hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES], tag)
        return ok
