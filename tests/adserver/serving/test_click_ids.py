"""Click ids: issued by the click redirect, verified by the conversion API. Only ids we issued, for
the advertiser they were issued for, verify; the visitor inside cannot be read without the key."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.serving.click_ids import CLICK_ID_PARAM, ClickIds, InvalidClickId, with_click_id
from tracker.signing import b64decode, b64encode

KEY, OLD_KEY = "click-id-test-key-0123456789abcdef", "an-older-key-0123456789abcdefghij"


def ids() -> tuple[str, str]:
    return b64encode(secrets.token_bytes(12)), b64encode(secrets.token_bytes(16))


def test_a_click_id_names_the_click_and_its_visitor():
    impression, uid = ids()
    click_id = ClickIds([KEY]).issue("shop", impression, 1_780_000_000.7, uid)
    ref = ClickIds([KEY]).verify("shop", click_id)
    assert (ref.impression_id, ref.ts, ref.uid) == (impression, 1_780_000_000, uid)
    assert len(click_id) < 80 and b64encode(b64decode(click_id)) == click_id


def test_a_click_without_a_visitor_gives_an_empty_uid():
    impression, _ = ids()
    assert ClickIds([KEY]).verify("shop", ClickIds([KEY]).issue("shop", impression, 1.0e9, None)).uid == ""


def test_the_visitor_is_encrypted_with_a_fresh_pad_each_time():
    impression, uid = ids()
    a, b = (b64decode(ClickIds([KEY]).issue("shop", impression, 1.0e9, uid)) for _ in range(2))
    assert a != b
    raw_uid = b64decode(uid)
    assert raw_uid not in a and raw_uid not in b
    # the same visitor in two click ids: the encrypted parts differ (no pad is reused)
    assert a[25:41] != b[25:41]


def test_rotated_keys_still_verify_and_unknown_keys_do_not():
    impression, uid = ids()
    old = ClickIds([OLD_KEY]).issue("shop", impression, 1.0e9, uid)
    assert ClickIds([KEY, OLD_KEY]).verify("shop", old).uid == uid
    with pytest.raises(InvalidClickId):
        ClickIds([KEY]).verify("shop", old)


def test_another_advertiser_cannot_use_a_click_id():
    impression, uid = ids()
    click_id = ClickIds([KEY]).issue("shop", impression, 1.0e9, uid)
    with pytest.raises(InvalidClickId, match="signature"):
        ClickIds([KEY]).verify("shop-b", click_id)


def test_every_altered_byte_is_refused():
    impression, uid = ids()
    raw = b64decode(ClickIds([KEY]).issue("shop", impression, 1.0e9, uid))
    for i in range(len(raw)):
        for bit in (1, 0x80):
            altered = b64encode(raw[:i] + bytes([raw[i] ^ bit]) + raw[i + 1:])
            with pytest.raises(InvalidClickId):
                ClickIds([KEY]).verify("shop", altered)


@pytest.mark.parametrize("value", ["", "not base64!", "AAAA", "A" * 71, "A" * 5000, None, 3, b"bytes", ["x"]])
def test_malformed_click_ids_are_refused(value):
    with pytest.raises(InvalidClickId):
        ClickIds([KEY]).verify("shop", value)


def test_the_landing_url_keeps_its_query_and_gets_one_click_id():
    url = with_click_id("https://shop.example/p/1?color=red&adclid=stale&utm_source=adserver#top", "NEW")
    parts = urlsplit(url)
    assert parse_qs(parts.query) == {"color": ["red"], "utm_source": ["adserver"], CLICK_ID_PARAM: ["NEW"]}
    assert parts.fragment == "top" and parts.netloc == "shop.example"
