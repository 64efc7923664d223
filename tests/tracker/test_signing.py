"""The signer's MACs are HMAC-SHA256, cut to ``MAC_BYTES``, whatever the key or payload."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest

from tracker.signing import _BLOCK, MAC_BYTES, Signer, _keyed, _mac


@pytest.mark.parametrize("size", [0, 1, 22, 55, 56, 63, 64, 65, 200, 10_000])
def test_macs_are_hmac_sha256(size):
    signer = Signer(["first-key", "older-key"], "purpose")
    payload = secrets.token_bytes(size)
    key = hashlib.sha256(b"purpose\x00first-key").digest()
    assert signer.mac(payload) == hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]


@pytest.mark.parametrize("length", [0, 1, 32, _BLOCK - 1, _BLOCK, _BLOCK + 1, 300])
def test_any_key_length_gives_hmac(length):
    key, payload = secrets.token_bytes(length), secrets.token_bytes(40)
    assert _mac(_keyed(key), payload) == hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]


def test_every_key_verifies_and_the_newest_signs():
    old = Signer(["old"], "uid")
    rotated = Signer(["new", "old"], "uid")
    payload = b"visitor"
    assert rotated.verify(payload, old.mac(payload))
    assert rotated.verify(payload, rotated.mac(payload))
    assert rotated.mac(payload) != old.mac(payload)
    assert not old.verify(payload, rotated.mac(payload))
    assert not rotated.verify(payload + b"!", rotated.mac(payload))
    assert not Signer(["new", "old"], "click").verify(payload, rotated.mac(payload))  # purposes never mix
    assert not rotated.verify(payload, rotated.mac(payload)[:-1])
