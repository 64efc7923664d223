"""The "not interested" answer in a real browser, across the three HTTPS sites of ``test_browser_e2e``: the no-script
flow inside the ad's iframe (a plain iframe, and pub.js's sandboxed one), and the ✕ of native cards, which
pub-native.js answers by beacon before showing the next card."""

from __future__ import annotations

import pytest

import tests.test_browser_e2e as e2e
from tests.conftest import drain
from tests.test_browser_e2e import _browser, _visit_store

pytestmark = pytest.mark.slow
sites, playwright = e2e.sites, e2e.playwright  # the three sites and the browser driver of the end-to-end tests


# A post template with its own place for the ✕ (pub-native.js fills it rather than adding one).
TEMPLATE = ("<template id=post><article class=post><b data-native=store></b> <span data-native=label></span>"
            " <span class=mine data-native=hide></span><p><a data-native=title></a></p></article></template>")


@pytest.fixture
def pages(monkeypatch):
    """The blog gains a page with a pub.js slot and pages with a native slot (before ``sites``)."""
    real = e2e._site_apps

    def site_apps(port: int):
        store, blog = real(port)
        ads = f"https://ads.test:{port}"
        tag = f"<script async src=\"{ads}/pub.js\"></script>"
        blog.add_url_rule("/pubjs", "pubjs", lambda: (
            "<!doctype html><title>blog</title><ins id=slot class=adserver-slot data-placement=blog-feed "
            f"data-size=300x250></ins>{tag}"))
        blog.add_url_rule("/native", "native", lambda: (
            "<!doctype html><title>blog</title><p>Posts</p><ins id=slot class=adserver-slot data-placement=blog-feed "
            f"data-format=native></ins>{tag}"))
        blog.add_url_rule("/native-template", "native_template", lambda: (
            "<!doctype html><title>blog</title><p>Posts</p><ins id=slot class=adserver-slot data-placement=blog-feed "
            f"data-format=native data-template=post></ins>{TEMPLATE}{tag}"))
        return store, blog

    monkeypatch.setattr(e2e, "_site_apps", site_apps)


def _skus_in(frame) -> list[str]:
    links = frame.locator("a[href*='/c/']")
    links.first.wait_for(timeout=15_000)
    by_title = {p["title"]: p["id"] for p in e2e.PRODUCTS}
    return [by_title[links.nth(i).get_attribute("title")] for i in range(links.count())]


def _hide_first_in_frame(page, frame_selector: str) -> tuple[str, list[str]]:
    frame = page.frame_locator(frame_selector)
    shown = _skus_in(frame)
    frame.locator("a.x").click()
    frame.locator("form button").first.wait_for(timeout=15_000)
    frame.locator("li form button").first.click()  # "not this product": the first product
    return shown[0], _skus_in(frame)  # the frame now shows the next ad


def test_no_script_flow_inside_plain_and_sandboxed_iframes(pages, sites, playwright, tmp_path, writer, ch):
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _visit_store(page, f"https://store.test:{port}", ["T1", "T2", "T3"])

    page.goto(f"https://blog.test:{port}/")
    hidden, after = _hide_first_in_frame(page, "#ad")
    assert hidden == "T3" and hidden not in after
    page.goto(f"https://blog.test:{port}/")  # and on the next page view
    assert hidden not in _skus_in(page.frame_locator("#ad"))

    page.goto(f"https://blog.test:{port}/pubjs")  # pub.js's iframe is sandboxed: forms must be allowed
    hidden_too, after = _hide_first_in_frame(page, "#slot iframe")
    assert hidden_too != hidden and hidden_too not in after and hidden not in after
    assert not errors, errors
    context.close()
    drain(writer)
    rows = ch.execute("SELECT skus, reasons, uid != '', cost FROM events WHERE event = 'hide' ORDER BY ts")
    assert rows == [([hidden], ["product"], 1, 0.0), ([hidden_too], ["product"], 1, 0.0)]


def _native_card(page, url: str) -> dict:
    """Open a page with a native slot; the card's answer, once drawn."""
    with page.expect_response(lambda r: "/ad.json" in r.url) as answer:
        page.goto(url)
    page.locator("#slot .adserver-native").wait_for(timeout=15_000)
    return answer.value.json()["native"]


def test_the_native_cards_cross_answers_by_beacon_and_the_next_card_replaces_it(
        pages, sites, playwright, tmp_path, writer, ch):
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _visit_store(page, f"https://store.test:{port}", ["R1", "T1"])
    card = _native_card(page, f"https://blog.test:{port}/native")
    sku = card["ext"]["products"][0]["sku"]
    assert sku == "T1" and card["ext"]["path"] == "personalised"
    cross = page.locator("#slot [data-native='hide']")
    assert cross.text_content() == "\u2715" and cross.get_attribute("aria-label") == "不感兴趣"  # a Chinese title
    assert page.locator("#slot button[data-hide]").count() == 0  # the choices open on demand
    cross.click()
    choices = page.locator("#slot button[data-hide]")
    assert [choices.nth(i).text_content() for i in range(2)] == ["不看这个商品", "不看这家店"]
    e2e.ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#slot").screenshot(path=str(e2e.ARTIFACTS / "native-card-hide-menu.png"))
    with page.expect_request(lambda r: "/ad/hide" in r.url and r.method == "POST") as beacon, \
            page.expect_response(lambda r: "/ad.json" in r.url and f"xs={sku}" in r.url) as refill:
        choices.first.click()
    assert "reason=product" in beacon.value.post_data and f"sku={sku}" in beacon.value.post_data
    next_card = refill.value.json()["native"]
    assert next_card["ext"]["products"][0]["sku"] != sku
    page.locator("#slot .adserver-native").wait_for(timeout=15_000)
    assert page.locator("#slot .adserver-native").count() == 1  # the answered card is gone, the next one shown
    assert page.locator("#slot [data-native='title']").text_content() == next_card["ext"]["products"][0]["title"]
    drain(writer, deadline=15)
    rows = ch.execute("SELECT skus, reasons, uid != '', impression_id FROM events WHERE event = 'hide'")
    assert rows == [([sku], ["product"], 1, card["ext"]["impression_id"])]  # the beacon carried the cookie
    page.goto(f"https://blog.test:{port}/")  # and framed ads leave it out too
    assert sku not in _skus_in(page.frame_locator("#ad"))
    assert not errors, errors
    context.close()


def test_the_templates_own_cross_hides_the_store_and_the_slot_folds(pages, sites, playwright, tmp_path, writer, ch):
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    _visit_store(page, f"https://store.test:{port}", ["R1"])
    card = _native_card(page, f"https://blog.test:{port}/native-template")
    mine = page.locator("#slot .mine")
    assert mine.text_content() == "\u2715" and page.locator("#slot [data-native='hide']").count() == 1
    mine.click()
    with page.expect_response(lambda r: "/ad.json" in r.url and "xr=store" in r.url) as refill:
        page.locator("#slot button[data-hide='store']").click()
    assert refill.value.json()["native"] is None  # the placement's only store
    page.wait_for_function("document.getElementById('slot').getAttribute('data-adserver-status') === 'empty'")
    assert page.locator("#slot").is_hidden()
    drain(writer, deadline=15)
    assert ch.execute("SELECT reasons, impression_id FROM events WHERE event = 'hide'") == [
        (["store"], card["ext"]["impression_id"])]
    context.close()
