"""``/pub.js`` in a real Chromium: lazy loading near the viewport and MRC viewability, end to end.

The publisher page lives on ``pub.test``, the tag and the ad units on ``ads.test`` (the product, from the
``sites`` fixture of the browser loop test). A slot far below the
fold must not load until scrolled near; a slot in view for more than a second must give exactly one
``viewable`` event carrying the impression's id; a slot seen for less than a second gives none.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.tracking.viewability import impression_id_for
from tests.conftest import SECRET, drain
from tests.test_browser_e2e import _browser, playwright, sites  # noqa: F401 - fixtures and helpers
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

SLOT = '<ins class="adserver-slot" id="{id}" data-placement="blog-feed" data-size="300x250"></ins>'


def _publisher_page(app, context, port: int, body: str) -> tuple[object, list[str]]:
    """A page on pub.test whose HTML is ``body`` plus the tag (included twice: it must be harmless).

    The page comes from the same loopback server as the ad server (a WSGI shim in front of the app for
    that host name), as Chromium blocks a page that is not on loopback from loading scripts from it.
    """
    tag = f'<script async src="https://ads.test:{port}/pub.js"></script>'
    html = f"<!doctype html><meta charset=utf-8><title>article</title><body style='margin:0'>{body}{tag}{tag}</body>"
    page_bytes, inner = html.encode(), app.wsgi_app

    def wsgi(environ, start_response):
        if environ.get("HTTP_HOST", "").split(":")[0] != "pub.test":
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [page_bytes]

    app.wsgi_app = wsgi
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"https://pub.test:{port}/article")
    page.wait_for_function("window.adserverSlots && window.adserverSlots.loaded")
    return page, errors


def _top(page, selector: str) -> int:
    return page.eval_on_selector(selector, "e => Math.round(e.getBoundingClientRect().top + window.scrollY)")


def _scroll(page, y: int) -> None:
    page.evaluate("y => window.scrollTo(0, y)", y)


def _impression_id(page, selector: str) -> str:
    src = page.get_attribute(f"{selector} iframe", "src")
    nonce = parse_qs(urlsplit(src).query)["r"][0]
    return impression_id_for([SECRET], nonce)


def _wait_loaded(page, selector: str) -> None:
    """Until the unit shows a product (a click link): its markup is the unit's own business."""
    page.frame_locator(f"{selector} iframe").locator("a[href*='/c/']").first.wait_for(timeout=10_000)


def test_lazy_slot_becomes_viewable_once_and_a_glimpse_is_not_viewable(
        app, sites, playwright, tmp_path, writer, ch, redis_client):  # noqa: F811 - imported fixtures
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=False)
    spacer = "<div style='height:{}px'></div>"
    page, errors = _publisher_page(app, context, port, spacer.format(3000) + SLOT.format(id="a") + spacer.format(3000)
                           + SLOT.format(id="b") + spacer.format(4000))
    viewport = page.viewport_size["height"]
    assert page.locator("ins.adserver-slot iframe").count() == 2  # one iframe per slot, though included twice
    frame = page.locator("#a iframe")
    assert frame.get_attribute("sandbox") == ("allow-forms allow-popups allow-popups-to-escape-sandbox "
                                              "allow-top-navigation-by-user-activation")
    assert frame.get_attribute("loading") == "lazy" and frame.get_attribute("title")
    assert (frame.get_attribute("width"), frame.get_attribute("height")) == ("300", "250")
    page.wait_for_timeout(300)
    assert frame.get_attribute("src") is None  # far below the fold: not loaded

    # Slot a: scrolled into full view and left there for more than a second.
    _scroll(page, _top(page, "#a") - 200)
    page.wait_for_function("() => document.querySelector('#a iframe').src")
    a_id = _impression_id(page, "#a")
    _wait_loaded(page, "#a")
    wait_for(lambda: redis_client.exists("vw:{%s}" % a_id), 5, "a viewable beacon for slot a")
    assert page.get_attribute("#b iframe", "src") is None

    # Slot b: loaded while only a quarter of it shows (and left so for over a second: under half is not
    # viewable), then fully in view twice for about half a second (not continuous: not viewable either).
    b_top = _top(page, "#b")
    _scroll(page, b_top - viewport + 60)
    page.wait_for_function("() => document.querySelector('#b iframe').src")
    _wait_loaded(page, "#b")
    b_id = _impression_id(page, "#b")
    page.wait_for_timeout(1300)
    for _ in range(2):
        _scroll(page, b_top - 200)
        page.wait_for_timeout(500)
        _scroll(page, b_top + 2000)
        page.wait_for_timeout(200)
    page.wait_for_timeout(1200)
    assert not errors, errors
    context.close()

    drain(writer)
    impressions = [r[0] for r in ch.execute("SELECT impression_id FROM events WHERE event = 'impression'")]
    assert sorted(impressions) == sorted([a_id, b_id])
    viewable = ch.execute("SELECT impression_id, placement, uid FROM events WHERE event = 'viewable'")
    assert viewable == [(a_id, "blog-feed", "")]


def test_slots_added_later_are_filled(app, sites, playwright, tmp_path, writer, ch):  # noqa: F811 - imported fixtures
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=False)
    page, errors = _publisher_page(app, context, port, "<p>article</p><ins class='adserver-slot' data-placement='Bad!'></ins>")
    page.evaluate("""() => {
        const ins = document.createElement('ins');
        ins.className = 'adserver-slot'; ins.id = 'late';
        ins.setAttribute('data-placement', 'blog-feed'); ins.setAttribute('data-size', 'responsive');
        document.body.appendChild(ins);
        const pushed = document.createElement('ins');
        pushed.id = 'pushed'; pushed.setAttribute('data-placement', 'blog-feed'); pushed.setAttribute('data-size', '320x100');
        document.body.appendChild(pushed);
        window.adserverSlots.push(pushed);
    }""")
    _wait_loaded(page, "#late")
    _wait_loaded(page, "#pushed")
    assert page.get_attribute("#late iframe", "width") == "100%"
    query = parse_qs(urlsplit(page.get_attribute("#late iframe", "src")).query)
    assert query["p"] == ["blog-feed"] and query["size"] == ["responsive"] and len(query["r"][0]) == 24
    assert page.locator("iframe").count() == 2  # the invalid slot is left alone
    assert page.get_attribute("ins[data-placement='Bad!']", "data-adserver-status") == "invalid"
    page.evaluate("window.adserverSlots.refresh()")
    assert page.locator("iframe").count() == 2
    assert not errors, errors
    context.close()
    drain(writer)
    sizes = sorted(r[0] for r in ch.execute("SELECT size FROM events WHERE event = 'impression'"))
    assert sizes == ["320x100", "responsive"]


def test_js_slot_carries_the_visitor_cookie_into_its_sandboxed_frame(
        app, sites, playwright, tmp_path, writer, ch):  # noqa: F811 - imported fixtures
    """The sandbox gives the unit an opaque origin, but its own request still carries the ``uid`` cookie
    where third-party cookies are allowed: the JS slot is personalised like the plain iframe."""
    from tests.test_browser_e2e import _visit_store

    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    _visit_store(context.new_page(), f"https://store.test:{port}", ["T2"])
    page, errors = _publisher_page(app, context, port, SLOT.format(id="a"))
    _wait_loaded(page, "#a")
    assert not errors, errors
    context.close()
    drain(writer)
    rows = ch.execute("SELECT addressable, skus, reasons FROM events WHERE event = 'impression'")
    assert len(rows) == 1
    addressable, skus, reasons = rows[0]
    assert addressable == 1 and skus[0] == "T2" and reasons[0] == "recent"
