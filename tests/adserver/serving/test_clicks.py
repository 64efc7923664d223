"""Signed click links on real servers: only tokens we issued, unaltered and unexpired, redirect, and
only to the product's link from the catalog."""

from __future__ import annotations

import os
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.demo import demo_products
from adserver.serving.clicks import ClickTokens
from tests.adserver.conftest import product, visitor_uid
from tests.conftest import drain
from tracker.signing import MAC_BYTES, Signer, b64decode, b64encode

STORE = "https://store.example"


def click_path(click_url: str) -> str:
    parts = urlsplit(click_url)
    assert parts.path.startswith("/c/")
    return parts.path


def token_of(click_url: str) -> str:
    return click_path(click_url)[len("/c/"):]


def ad_products(client, size: str = "300x250") -> list[dict]:
    response = client.get(f"/ad.json?p=demo-feed&size={size}")
    assert response.status_code == 200
    return response.get_json()["products"]


def issue(app, sku: str = "D1004", advertiser: str = "demo", placement: str = "demo-feed", reason: str = "recent",
          now: float | None = None) -> str:
    impression = b64encode(secrets.token_bytes(12))
    return app.extensions["adserver"].clicks.issue(impression, advertiser, placement, sku, reason, now=now)


def assert_rejected(response, status: int = 400) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:200]
    assert "Location" not in response.headers


def target(response) -> tuple[str, dict[str, list[str]], str]:
    """(link without query, query, fragment) of a redirect."""
    assert response.status_code == 302
    parts = urlsplit(response.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query, keep_blank_values=True), parts.fragment


def test_valid_token_redirects_to_the_catalog_link_with_utm(client, demo_loaded):
    client.get("/px.gif?a=demo&e=view_item&sku=D1004")
    first = ad_products(client)[0]
    assert first["sku"] == "D1004"
    response = client.get(click_path(first["click_url"]))
    link, query, _ = target(response)
    assert link == f"{STORE}/demo/store/p/D1004"
    assert query["utm_source"] == ["adserver"]
    assert query["utm_medium"] == ["retargeting"]
    assert query["utm_campaign"] == ["demo-retargeting"]  # the demo's campaign
    assert query["utm_content"] == ["D1004"]
    assert "no-store" in response.headers["Cache-Control"]


def test_every_product_of_an_ad_links_to_its_own_page(client, demo_loaded):
    links = {p["link"] for p in demo_products(STORE)}
    for item in ad_products(client, "600x400"):
        link, query, _ = target(client.get(click_path(item["click_url"])))
        assert link == f"{STORE}/demo/store/p/{item['sku']}"
        assert link in links
        assert query["utm_content"] == [item["sku"]]


def test_link_with_query_parameters_keeps_them(app, client, create_advertiser, import_feed):
    create_advertiser("shop-q")
    code, out = import_feed("shop-q", [
        product("Q1", link="https://shop.example/p/Q1?color=red&size=m&utm_source=feed#reviews"),
    ])
    assert code == 0, out
    link, query, fragment = target(client.get("/c/" + issue(app, "Q1", advertiser="shop-q", placement="news")))
    assert link == "https://shop.example/p/Q1"
    assert query["color"] == ["red"]
    assert query["size"] == ["m"]
    assert query["utm_source"] == ["adserver"]  # ours replaces the feed's
    assert query["utm_campaign"] == ["shop-q"]
    assert query["utm_content"] == ["Q1"]
    assert fragment == "reviews"


def test_forged_random_tokens_are_rejected(client, demo_loaded):
    for size in (20, 48, 60, 200):
        assert_rejected(client.get("/c/" + b64encode(os.urandom(size))))


def test_truncated_tokens_are_rejected(app, client, demo_loaded):
    token = issue(app)
    assert client.get("/c/" + token).status_code == 302
    for cut in (1, 2, 4, 16, len(token) // 2, len(token) - 4):
        assert_rejected(client.get("/c/" + token[:-cut]))
    raw = b64decode(token)
    for length in (len(raw) - MAC_BYTES, len(raw) - 1, 10):  # whole bytes dropped, still canonical base64
        assert_rejected(client.get("/c/" + b64encode(raw[:length])))


def test_any_altered_byte_is_rejected(app, client, demo_loaded):
    token = issue(app)
    raw = b64decode(token)
    accepted = []
    for position in range(len(raw)):
        for flip in (0x01, 0x80):
            altered = raw[:position] + bytes([raw[position] ^ flip]) + raw[position + 1:]
            response = client.get("/c/" + b64encode(altered))
            if response.status_code != 400 or "Location" in response.headers:
                accepted.append((position, flip, response.status_code))
    assert accepted == []
    assert client.get("/c/" + token).status_code == 302  # the original still works


def test_payload_and_mac_of_different_impressions_cannot_be_combined(app, demo_loaded):
    first, second = app.test_client(), app.test_client()
    first.get("/px.gif?a=demo&e=view_item&sku=D1004")
    second.get("/px.gif?a=demo&e=view_item&sku=D1012")
    a = next(p for p in ad_products(first) if p["sku"] == "D1004")
    b = next(p for p in ad_products(second) if p["sku"] == "D1012")
    raw_a, raw_b = b64decode(token_of(a["click_url"])), b64decode(token_of(b["click_url"]))
    client = app.test_client()
    for raw in (raw_a[:-MAC_BYTES] + raw_b[-MAC_BYTES:], raw_b[:-MAC_BYTES] + raw_a[-MAC_BYTES:]):
        assert_rejected(client.get("/c/" + b64encode(raw)))
    assert client.get(click_path(a["click_url"])).status_code == 302
    assert client.get(click_path(b["click_url"])).status_code == 302


def test_expired_token_is_rejected(app, client, demo_loaded):
    ttl = app.extensions["adserver"].clicks.ttl
    assert_rejected(client.get("/c/" + issue(app, now=time.time() - ttl - 60)))
    assert_rejected(client.get("/c/" + issue(app, now=time.time() - 10 * ttl)))
    # Issued in the past but not yet expired: still valid.
    assert client.get("/c/" + issue(app, now=time.time() - ttl + 3600)).status_code == 302


def test_token_signed_with_another_key_or_purpose_is_rejected(app, client, settings, demo_loaded):
    other = ClickTokens(["another-secret-key-0123456789abcdef"], 3600)
    impression = b64encode(secrets.token_bytes(12))
    assert_rejected(client.get("/c/" + other.issue(impression, "demo", "demo-feed", "D1004", "recent")))
    # Our own key, but signed for the uid cookie instead of click links.
    body = b64decode(issue(app))[:-MAC_BYTES]
    assert_rejected(client.get("/c/" + b64encode(body + Signer(settings.secret_keys, "uid").mac(body))))


@pytest.mark.parametrize("token", [
    "!!!!", "abc$def", "%00", "%ff%fe", "a%20b", "%3Cscript%3E", "....", "A", "AAAAA", "A" * 8000,
    "%E8%8C%B6" * 10, "c29tZS10b2tlbg==",
])
def test_garbage_tokens_are_rejected(client, demo_loaded, token):
    assert_rejected(client.get("/c/" + token))


def test_valid_token_with_padding_or_whitespace_is_rejected(app, client, demo_loaded):
    token = issue(app)
    for variant in (token + "=", token + "==", token + "%20", "%20" + token, token + "%0a", token.swapcase()):
        assert_rejected(client.get("/c/" + variant))


def test_removed_product_gives_410(app, client, demo_loaded, import_feed):
    client.get("/px.gif?a=demo&e=view_item&sku=D1004")
    item = ad_products(client)[0]
    assert item["sku"] == "D1004"
    rows = [p for p in demo_products(STORE) if p["id"] != "D1004"]
    code, out = import_feed("demo", rows, fmt="json", full=True)
    assert code == 0, out
    assert "removed 1" in out
    app.extensions["adserver"].catalog.check_seconds = 0
    assert_rejected(client.get(click_path(item["click_url"])), status=410)
    assert client.get("/c/" + issue(app, "D1005")).status_code == 302  # the others still redirect


def test_click_is_logged_as_a_click_event(client, demo_loaded, writer, ch):
    client.get("/px.gif?a=demo&e=view_item&sku=D1004")
    uid = visitor_uid(client)
    response = client.get("/ad.json?p=demo-feed&size=300x250").get_json()
    item = response["products"][0]
    assert client.get(click_path(item["click_url"])).status_code == 302
    assert client.get("/c/" + b64encode(os.urandom(48))).status_code == 400  # not logged

    drain(writer)
    rows = ch.execute("SELECT advertiser, uid, sku, skus, reasons, placement, impression_id, addressable "
                      "FROM events WHERE event = 'click'")
    assert rows == [("demo", uid, "D1004", ["D1004"], ["recent"], "demo-feed", response["impression_id"], 1)]


def test_redirect_never_uses_a_url_from_the_request(app, client, demo_loaded):
    token = issue(app, "D1004")
    for query in ("url=https://evil.example/", "next=https://evil.example/", "redirect=//evil.example",
                  "url=https://evil.example/&next=https://evil.example/&to=https://evil.example/"):
        response = client.get(f"/c/{token}?{query}")
        link, params, _ = target(response)
        assert link == f"{STORE}/demo/store/p/D1004"
        assert "evil" not in response.headers["Location"]
        assert set(params) == {"utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "adclid"}
    response = client.get(f"/c/{token}", headers={"Referer": "https://evil.example/", "Host": "evil.example"})
    assert "evil" not in response.headers["Location"]


# --- landing domains: the click checks the link again (links stored before the checks, domains changed) ----


def stored_link(app, ch, redis_client, sku: str, link: str) -> str:
    """A demo product with ``link`` put straight into the catalog, as an import before the checks left it."""
    from adserver.catalog.product import Product
    from adserver.catalog.storage import bump_version, store_products

    store_products(ch, "demo", [Product(sku, f"Product {sku}", link, price=10.0, currency="CNY")])
    bump_version(redis_client, "demo")
    app.extensions["adserver"].catalog.check_seconds = 0
    return "/c/" + issue(app, sku)


@pytest.mark.parametrize("link", [
    "https://store.example@evil.test/p/9",
    "https://store.example:443@evil.test/p/9",
    "https://evil.test/p/9",
    "https://store.example.evil.test/p/9",
    "https://evilstore.example/p/9",
    "javascript:alert(1)",
])
def test_click_to_a_link_off_the_landing_domains_is_refused(app, client, ch, redis_client, demo_loaded, link):
    response = client.get(stored_link(app, ch, redis_client, "X9", link))
    assert_rejected(response)
    assert "link was refused" in response.get_data(as_text=True)
    assert client.get("/c/" + issue(app, "D1004")).status_code == 302  # the store's own links still redirect


def test_click_to_a_subdomain_of_a_landing_domain_redirects(app, client, ch, redis_client, demo_loaded):
    response = client.get(stored_link(app, ch, redis_client, "M1", "https://m.store.example/p/M1?x=1"))
    link, query, _ = target(response)
    assert link == "https://m.store.example/p/M1" and query["x"] == ["1"]


def test_refused_click_is_neither_logged_nor_charged(app, client, ch, redis_client, demo_loaded, writer):
    response = client.get(stored_link(app, ch, redis_client, "X9", "https://evil.test/p/9"))
    assert_rejected(response)
    drain(writer)
    assert ch.execute("SELECT count() FROM events WHERE event = 'click'") == [(0,)]


def test_an_ads_tokens_issued_together_are_those_issued_one_by_one(settings):
    tokens = ClickTokens(settings.secret_keys, 3600)
    impression = b64encode(secrets.token_bytes(12))
    products = [("D1004", "recent"), ("D1010", "similar"), ("中文-1", "popular")]
    together = tokens.issue_all(impression, "demo", "demo-feed", products, now=1_800_000_000, campaign="c1", consent=2)
    assert together == [tokens.issue(impression, "demo", "demo-feed", sku, reason, now=1_800_000_000, campaign="c1",
                                     consent=2) for sku, reason in products]
    clicks = [tokens.verify(token, now=1_800_000_000) for token in together]
    assert [(c.sku, c.reason, c.campaign, c.consent) for c in clicks] == [(s, r, "c1", 2) for s, r in products]
    with pytest.raises(ValueError):
        tokens.issue_all(impression, "demo", "demo-feed", products, consent=7)
