"""The "not interested" answer on real servers: the signed token, the no-script page and its answer, what Redis
keeps for the visitor (and for how long), the event, no charge, and the next ad.

The demo (placement ``demo-feed``) has two stores: ``demo`` (CPC campaign ``demo-retargeting``) and
``outdoor`` (CPM campaign ``outdoor-retargeting``, so its impressions are charged).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.serving.hide_tokens import HideTokens
from tests.adserver.conftest import visitor_uid
from tests.adserver.serving.test_ads import ad, skus, view
from tests.conftest import drain
from tracker.hides import hide_key, product_member, store_member

CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
          "Safari/537.36")
DAY = 86400


@pytest.fixture
def browser(app):
    """A visitor's browser: the test client with a desktop Chrome user agent."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = CHROME
    return client


def hide_token(decision: dict) -> str:
    url = decision["hide_url"]
    assert url.startswith("http://localhost/ad/hide?")
    return parse_qs(urlsplit(url).query)["t"][0]


def answer(client, token: str, reason: str, sku: str = "", **extra):
    data = {"t": token, "reason": reason, **({"sku": sku} if sku else {}), **extra}
    return client.post("/ad/hide", data=data)


def hide_rows(ch) -> list[tuple]:
    return ch.execute("SELECT advertiser, uid, skus, reasons, placement, impression_id, campaign, cost, invalid "
                      "FROM events WHERE event = 'hide' ORDER BY ts")


def personalised_demo_ad(client) -> dict:
    view(client, "D1004", "D1012")
    decision = ad(client)
    assert decision["advertiser"] == "demo" and decision["path"] == "personalised"
    return decision


# --- the token ------------------------------------------------------------------------------------------------


def test_tokens_verify_and_refuse_forgery_alteration_truncation_and_expiry():
    tokens = HideTokens(["a-key-of-thirty-two-characters!!"], ttl_seconds=600)
    token = tokens.issue("AAAAAAAAAAAAAAAA", "demo", "demo-feed", ["D1", "D2"], "demo-retargeting", now=1000)
    info = tokens.verify(token, now=1500)
    assert (info.advertiser, info.placement, info.campaign, info.skus) == ("demo", "demo-feed", "demo-retargeting",
                                                                          ("D1", "D2"))
    assert info.expires == 1600
    other = HideTokens(["another-key-of-thirty-two-chars!"], ttl_seconds=600)
    bad = [
        other.issue("AAAAAAAAAAAAAAAA", "demo", "demo-feed", ["D1"], now=1000),  # forged: not our key
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),  # altered MAC
        token[:12] + ("A" if token[12] != "A" else "B") + token[13:],  # altered body
        token[:30],  # truncated
        "", "not base64!", "A" * 5000, None, 123,
    ]
    for value in bad:
        with pytest.raises(ValueError):
            tokens.verify(value, now=1500)
    with pytest.raises(ValueError, match="expired"):
        tokens.verify(token, now=1601)
    # A click token is no hide token: each use signs with its own purpose.
    from adserver.serving.clicks import ClickTokens

    click = ClickTokens(["a-key-of-thirty-two-characters!!"], 600).issue("AAAAAAAAAAAAAAAA", "demo", "demo-feed", "D1",
                                                                         "recent", now=1000)
    with pytest.raises(ValueError):
        tokens.verify(click, now=1500)


def test_a_token_lists_products_within_its_byte_budget():
    tokens = HideTokens(["a-key-of-thirty-two-characters!!"], ttl_seconds=600)
    many = [f"SKU-{'x' * 40}-{i}" for i in range(12)]
    info = tokens.verify(tokens.issue("AAAAAAAAAAAAAAAA", "demo", "feed", many))
    assert 0 < len(info.skus) < len(many) and info.skus == tuple(many[:len(info.skus)])


# --- the page and the answer, without script ---------------------------------------------------------------------


def test_the_unit_links_to_a_page_whose_forms_answer_and_show_the_next_ad(app, demo_loaded, browser, redis_client,
                                                                          ch, writer):
    view(browser, "D1004", "D1012")
    html = browser.get("/ad?p=demo-feed&size=300x250").get_data(as_text=True)
    link = next(part.split('"')[0] for part in html.split('href="')[1:] if "/ad/hide?" in part.split('"')[0])
    page = browser.get(link.replace("&amp;", "&"))
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    body = page.get_data(as_text=True)
    assert "<script" not in body and body.count('method="post" action="/ad/hide"') >= 2
    assert 'name="reason" value="product"' in body and 'name="reason" value="store"' in body
    token = parse_qs(urlsplit(link.replace("&amp;", "&")).query)["t"][0]
    shown = list(app.extensions["adserver"].hide_tokens.verify(token).skus)
    assert shown[:2] == ["D1012", "D1004"]

    response = answer(browser, token, "product", "D1012", size="300x250")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/ad?p=demo-feed&size=300x250") and "x=" not in location  # the visitor's cookie keeps it
    next_ad = browser.get(location)
    assert next_ad.status_code == 200 and "D1012" not in next_ad.get_data(as_text=True)
    assert "D1012" not in skus(ad(browser)) and "D1004" in skus(ad(browser))

    drain(writer)
    [(advertiser, uid, hidden, reasons, placement, impression, campaign, cost, invalid)] = hide_rows(ch)
    assert (advertiser, uid, hidden, reasons, placement, campaign, cost, invalid) == (
        "demo", visitor_uid(browser), ["D1012"], ["product"], "demo-feed", "demo-retargeting", 0.0, 0)
    assert impression == app.extensions["adserver"].hide_tokens.verify(token).impression_id


def _hides_of(app, browser) -> str:
    """The browser's visitor's hide set (in their stream partition's slot)."""
    return hide_key(app.extensions["adserver"].stream.partitions, visitor_uid(browser))


def test_not_this_product_lasts_30_days_in_redis(app, demo_loaded, browser, redis_client):
    decision = personalised_demo_ad(browser)
    assert answer(browser, hide_token(decision), "product", "D1012", beacon="1").status_code == 204
    key = _hides_of(app, browser)
    until = redis_client.zscore(key, product_member("demo", "D1012"))
    assert until == pytest.approx(time.time() + 30 * DAY, abs=5)
    assert 30 * DAY - 10 <= redis_client.ttl(key) <= 30 * DAY
    assert redis_client.zcard(key) == 1
    assert "D1012" not in skus(ad(browser, "600x400"))
    other = app.test_client()  # another visitor still sees it
    view(other, "D1012")
    assert skus(ad(other))[0] == "D1012"


def test_not_this_store_hides_every_product_of_it(app, demo_loaded, browser, redis_client):
    decision = personalised_demo_ad(browser)
    assert answer(browser, hide_token(decision), "store", beacon="1").status_code == 204
    assert redis_client.zscore(_hides_of(app, browser), store_member("demo")) is not None
    for _ in range(3):
        after = ad(browser, "600x400")
        assert after["advertiser"] != "demo"
        demo_candidates = [c for c in after["auction"]["candidates"] if c["advertiser"] == "demo"]
        assert demo_candidates and {c["status"] for c in demo_candidates} == {"hidden"}


def test_a_campaign_sets_how_long_an_answer_lasts(app, demo_loaded, browser, runner, redis_client):
    code, out = runner("create-campaign", "demo-retargeting", "--hide-days", "7")
    assert code == 0, out
    app.extensions["adserver"].registry.reload()
    decision = personalised_demo_ad(browser)
    assert decision["campaign"] == "demo-retargeting"
    assert answer(browser, hide_token(decision), "product", "D1012", beacon="1").status_code == 204
    key = _hides_of(app, browser)
    assert 7 * DAY - 10 <= redis_client.ttl(key) <= 7 * DAY
    code, out = runner("create-campaign", "demo-retargeting", "--hide-days", "0")
    assert code != 0 and "hide days" in out


def test_a_replayed_answer_counts_once(app, demo_loaded, browser, ch, writer, redis_client):
    token = hide_token(personalised_demo_ad(browser))
    for _ in range(3):
        assert answer(browser, token, "product", "D1012", beacon="1").status_code == 204
    assert answer(app.test_client(), token, "product", "D1012", beacon="1").status_code == 204  # another browser
    # "Not this store" after "not this product" still hides the store, but is the same answer to count.
    assert answer(browser, token, "store", "D1012", beacon="1").status_code == 204
    assert redis_client.zscore(_hides_of(app, browser), store_member("demo")) is not None
    assert answer(browser, token, "product", "D1004", beacon="1").status_code == 204  # another product: its own
    drain(writer)
    assert sorted(r[2][0] for r in hide_rows(ch)) == ["D1004", "D1012"]


def test_an_answer_is_never_charged(app, demo_loaded, browser, ch, writer):
    svc = app.extensions["adserver"]
    outdoor = next(iter(svc.catalog.get("outdoor")))
    view(browser, outdoor, advertiser="outdoor")
    decision = ad(browser)
    assert decision["campaign"] == "outdoor-retargeting"  # CPM: the impression was charged
    spent = svc.budgets.spent("outdoor-retargeting", svc.registry.timezone_of("outdoor"))
    assert spent > 0
    assert answer(browser, hide_token(decision), "store", beacon="1").status_code == 204
    assert svc.budgets.spent("outdoor-retargeting", svc.registry.timezone_of("outdoor")) == spent
    drain(writer)
    assert [(r[0], r[7]) for r in hide_rows(ch)] == [("outdoor", 0.0)]


def test_without_a_cookie_the_answer_is_counted_and_the_next_ad_leaves_it_out(app, demo_loaded, ch, writer,
                                                                               redis_client):
    client = app.test_client(use_cookies=False)
    client.environ_base["HTTP_USER_AGENT"] = CHROME
    decision = ad(client, "600x400")
    first = decision["products"][0]["sku"]
    response = answer(client, hide_token(decision), "product", first, size="600x400")
    assert response.status_code == 303 and "x=" in response.headers["Location"]
    assert first not in skus(client.get(response.headers["Location"].replace("/ad?", "/ad.json?")).get_json())
    thanks = answer(client, hide_token(decision), "product", first)  # no size: a thanks page with a link
    assert thanks.status_code == 200 and "cookie" in thanks.get_data(as_text=True).lower()
    assert not list(redis_client.scan_iter("p:*:hide"))
    drain(writer)
    [row] = hide_rows(ch)
    assert row[1] == "" and row[2] == [first]


def test_bots_answers_are_recorded_as_invalid_and_change_nothing(app, demo_loaded, ch, writer, redis_client):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = "curl/8.0"
    decision = ad(client)
    sku = decision["products"][0]["sku"]
    assert answer(client, hide_token(decision), "product", sku, beacon="1").status_code == 204
    assert not list(redis_client.scan_iter("p:*:hide")) and not list(redis_client.scan_iter("hides:*"))
    drain(writer)
    assert [r[8] for r in hide_rows(ch)] == [1]


# --- hostile input --------------------------------------------------------------------------------------------


def test_hostile_input_gets_clear_4xx(app, demo_loaded, browser):
    token = hide_token(personalised_demo_ad(browser))
    expired = HideTokens(app.extensions["adserver"].settings.secret_keys, ttl_seconds=1).issue(
        "AAAAAAAAAAAAAAAA", "demo", "demo-feed", ["D1012"], now=time.time() - 10)
    for query in ("", "t=", "t=garbage", f"t={token[:-1]}", f"t={token}x", f"t={expired}", "t=" + "A" * 3000,
                  f"t={token}&size=99999x1", f"t={token}&size=<b>"):
        response = browser.get("/ad/hide?" + query)
        assert response.status_code == 400, query
        assert "<b>" not in response.get_data(as_text=True)
    for data in ({}, {"t": token}, {"t": token, "reason": "everything"}, {"t": token, "reason": "product"},
                 {"t": token, "reason": "product", "sku": "D9999"}, {"t": expired, "reason": "store"},
                 {"t": "x" * 2000, "reason": "store"}, {"t": token, "reason": "store", "size": "0x0"},
                 {"t": [token, token], "reason": "<script>"}):
        response = browser.post("/ad/hide", data=data)
        assert response.status_code == 400, data
        assert "<script>" not in response.get_data(as_text=True)
    assert browser.put("/ad/hide", data={"t": token, "reason": "store"}).status_code == 405
    assert browser.delete("/ad/hide").status_code == 405
    big = browser.post("/ad/hide", data={"t": token, "reason": "store", "pad": "x" * 100_000})
    assert big.status_code == 413
    assert browser.post("/ad/hide", data=b"\xff\xfe\x00garbage",
                        content_type="application/x-www-form-urlencoded").status_code == 400
    # An unverifiable answer carried by an ad URL is ignored, never an error.
    assert browser.get("/ad?p=demo-feed&size=300x250&x=garbage&xr=store").status_code == 200


def test_forget_removes_the_visitors_answers(app, demo_loaded, browser, redis_client):
    decision = personalised_demo_ad(browser)
    assert answer(browser, hide_token(decision), "store", beacon="1").status_code == 204
    key = _hides_of(app, browser)
    assert redis_client.exists(key)
    app.extensions["adserver"].stream.forget(visitor_uid(browser))
    assert not redis_client.exists(key)


def test_answers_of_many_readers_move_a_product_back_for_everyone(app, demo_loaded, redis_client):
    fresh = app.test_client()
    fresh.environ_base["HTTP_USER_AGENT"] = CHROME
    before = skus(ad(fresh, "600x400"))
    target = before[0]
    for _ in range(3):  # three readers dismiss the first popular product
        reader = app.test_client()
        reader.environ_base["HTTP_USER_AGENT"] = CHROME
        decision = ad(reader, "600x400")
        assert answer(reader, hide_token(decision), "product", target, beacon="1").status_code == 204
    app.extensions["adserver"].hide_counts.clear()
    after = skus(ad(fresh, "600x400"))
    assert target != after[0] and (target not in after or after.index(target) > before.index(target))
