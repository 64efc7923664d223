"""The native card in a real Chromium: ``/pub.js`` fills the publisher's own post template on ``news.test``
from ``ads.test`` (the three loopback sites of ``tests/test_browser_e2e.py``).

With third-party cookies the card shows the product the shopper just looked at in the store, without
them a popular one; either way it carries an "Ad" label and an ad-choices link (inserted when the
template has none), shows markup from the feed as text, leads through the signed click URL, and sends
one viewability beacon. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import time

import pytest

from tests.adserver.conftest import feed_bytes, product
from tests.conftest import drain
from tests.test_browser_e2e import ARTIFACTS, _browser, _visit_store, playwright, sites  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

MARKUP = "<img src=x onerror=window.__pwned=1> Celadon Vase 青瓷花瓶"
# The publisher's post, without a label or an ad-choices link of its own (pub.js must add them).
TEMPLATE = """
<template id="post">
  <article class="post">
    <img class="avatar" data-native="logo" width="40" height="40" alt="">
    <div><b data-native="store"></b></div>
    <p><a class="title" data-native="title"></a></p>
    <a data-native="link"><img data-native="image" width="320" height="180" alt=""></a>
    <span class="price" data-native="price"></span> <s data-native="was"></s> <a data-native="cta"></a>
  </article>
</template>"""
POSTS = "".join(f"<article class='post'><p>Post {n}: a day at the lake.</p></article>" for n in range(3))


@pytest.fixture
def news(app, runner, sites, tmp_path) -> dict:  # noqa: F811 - imported fixture
    """A vase whose feed title holds markup, and the placement of news.test's timeline."""
    port = sites["port"]
    row = product("X1", MARKUP.replace("<", "&lt;").replace(">", "&gt;"), product_type="Tea Ware")
    row.update(link=f"https://store.test:{port}/p/X1", image_link=f"https://store.test:{port}/img/X1.svg")
    path = tmp_path / "vase.csv"
    path.write_bytes(feed_bytes([row]))
    assert runner("import-feed", "shop", str(path))[0] == 0
    assert runner("create-placement", "news-feed", "--site", "news.test", "--advertiser", "shop")[0] == 0
    app.extensions["adserver"].registry.reload()
    return sites


def _timeline(app, context, port: int, slot: str, template: str = TEMPLATE):
    """news.test's timeline (served by a shim in front of the app for that host name) with ``slot``
    between its posts; returns the page, its errors and the URLs of the viewability beacons it sent."""
    tag = f'<script async src="https://ads.test:{port}/pub.js"></script>'
    html = (f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'><title>news</title>"
            f"<body style='margin:0;font:15px sans-serif'>{POSTS}{slot}{POSTS}{template}{tag}</body>").encode()
    inner = app.wsgi_app

    def wsgi(environ, start_response):
        if environ.get("HTTP_HOST", "").split(":")[0] != "news.test":
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [html]

    app.wsgi_app = wsgi
    page = context.new_page()
    errors: list[str] = []
    beacons: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: beacons.append(r.url) if "/px/viewable" in r.url else None)
    page.set_viewport_size({"width": 390, "height": 844})
    with page.expect_response(lambda r: "/ad.json" in r.url) as answer:
        page.goto(f"https://news.test:{port}/")
    page.locator(".adserver-native").wait_for(timeout=15_000)
    return page, errors, beacons, answer.value.json()["native"]


def test_card_in_the_publishers_template_shows_the_viewed_product_as_text(
        app, news, playwright, tmp_path, writer, ch, redis_client):  # noqa: F811 - imported fixture
    ARTIFACTS.mkdir(exist_ok=True)
    port = news["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    _visit_store(context.new_page(), f"https://store.test:{port}", ["T1", "X1"])
    slot = '<ins class="adserver-slot" id="ad" data-placement="news-feed" data-format="native" data-template="post"></ins>'
    page, errors, beacons, card = _timeline(app, context, port, slot)
    ext = card["ext"]
    assert ext["path"] == "personalised" and ext["products"][0]["sku"] == "X1"

    # The feed's markup is text: no image element for it, nothing ran.
    assert page.locator("#ad .title").text_content() == MARKUP
    assert page.locator("#ad img[src='x']").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#ad [data-native='store']").text_content() == "shop"
    assert page.locator("#ad .price").text_content() == "¥10.00"
    assert page.locator("#ad [data-native='was']").is_hidden()  # not on sale
    assert page.locator("#ad img[data-native='image']").get_attribute("src") == f"https://store.test:{port}/img/X1.svg"
    # No logo for this store: its monogram, in the template's avatar.
    assert page.locator("#ad .avatar").evaluate("e => [e.tagName, e.textContent]") == ["SPAN", "S"]
    # The label and the ad-choices link the template lacked.
    assert page.locator("#ad [data-native='label']").text_content() in ("Ad", "广告")
    choices = page.locator("#ad a[data-native='adchoices']")
    assert choices.get_attribute("href") == f"https://ads.test:{port}/optout" and choices.is_visible()

    # In view for over a second: one beacon, however long it stays.
    page.locator("#ad").scroll_into_view_if_needed()
    deadline = time.monotonic() + 10
    while not redis_client.exists("vw:{%s}" % ext["impression_id"]) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_timeout(1500)
    assert len(beacons) == 1 and f"r={card['eventtrackers'][0]['url'].split('r=')[1].split('&')[0]}" in beacons[0]
    page.screenshot(path=str(ARTIFACTS / "native-card-personalised.png"))

    # Through the signed click URL to the product.
    links = {page.locator(f"#ad a[data-native='{key}']").get_attribute("href") for key in ("title", "link", "cta")}
    assert links == {card["link"]["url"]}
    with context.expect_page() as landing:
        page.locator("#ad .title").click()
    landing.value.wait_for_load_state()
    assert landing.value.url.startswith(f"https://store.test:{port}/p/X1?") and "utm_source=adserver" in landing.value.url
    assert not errors, errors
    context.close()

    drain(writer)
    assert ch.execute("SELECT impression_id, addressable, size FROM events WHERE event = 'impression' "
                      "AND placement = 'news-feed'") == [(ext["impression_id"], 1, "native")]
    assert ch.execute("SELECT impression_id FROM events WHERE event = 'viewable'") == [(ext["impression_id"],)]
    assert ch.execute("SELECT impression_id FROM events WHERE event = 'click'") == [(ext["impression_id"],)]


def test_without_third_party_cookies_the_default_card_shows_a_popular_product(
        app, news, playwright, tmp_path, writer, ch):  # noqa: F811 - imported fixture
    ARTIFACTS.mkdir(exist_ok=True)
    port = news["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=False)
    _visit_store(context.new_page(), f"https://store.test:{port}", ["R1", "R2"])
    slot = '<ins class="adserver-slot" id="ad" data-placement="news-feed" data-format="native"></ins>'
    page, errors, _, card = _timeline(app, context, port, slot, template="")
    ext = card["ext"]
    assert ext["path"] == "fallback" and ext["addressable"] is False
    assert ext["products"][0]["reason"] == "popular"
    title = page.locator("#ad [data-native='title']")
    assert title.text_content() == ext["products"][0]["title"] and title.is_visible()
    assert page.locator("#ad [data-native='label']").is_visible()
    assert page.locator("#ad a[data-native='adchoices']").get_attribute("href") == f"https://ads.test:{port}/optout"
    assert page.locator("#ad a[data-native='link']").get_attribute("href") == card["link"]["url"]
    page.locator("#ad").screenshot(path=str(ARTIFACTS / "native-card-fallback.png"))
    assert not errors, errors
    context.close()
    drain(writer)
    assert ch.execute("SELECT uid, addressable FROM events WHERE event = 'impression'") == [("", 0)]
