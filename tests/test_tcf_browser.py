"""IAB TCF consent in a real browser: a consent platform (``__tcfapi``) on the store page and on the publisher page.

The store page (``eu-store.test``) carries ``tag.js``, the publisher page (``eu-blog.test``) a
``pub.js`` slot; both carry the same stub CMP, which answers ``addEventListener`` with a TC string
chosen per test (or never answers: a broken CMP). The tags must wait for its answer, pass
``gdpr``/``gdpr_consent`` on, and the product must track and personalise only with consent. The
sites come from the browser loop test's ``sites`` fixture (ads.test on a loopback HTTPS port).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import tcf
from tests.conftest import drain
from tests.test_browser_e2e import ARTIFACTS, _browser, playwright, sites  # noqa: F401 - fixtures and helpers

pytestmark = [pytest.mark.slow, pytest.mark.settings_env(ADSERVER_TCF_VENDOR_ID=str(tcf.VENDOR))]

# A CMP stub as consent platforms behave: answers listeners asynchronously with the stored choice.
CMP = """<script>
window.__tcfapi = function (command, version, callback) {
  if (command !== 'addEventListener' || version !== 2) return;
  var answer = %s;
  if (answer === null) return;  // a broken CMP: never answers
  setTimeout(function () {
    callback({eventStatus: 'tcloaded', gdprApplies: true, tcString: answer, listenerId: 7}, true);
  }, 150);
};
</script>"""
SLOT = '<ins class="adserver-slot" data-placement="blog-feed" data-size="300x250"></ins>'
NATIVE_SLOT = '<ins class="adserver-slot" data-placement="eu-feed" data-format="native"></ins>'


def _serve_pages(app, port: int, answer: str | None, slot: str = SLOT) -> None:
    """Pages on eu-store.test (``/p/<sku>``, the tag) and eu-blog.test (a pub.js slot), both with the CMP stub.

    Served by a WSGI shim in front of the app for those host names (Chromium only loads scripts from
    loopback for pages on loopback), like ``tests/test_pub_js_browser.py``.
    """
    cmp = CMP % json.dumps(answer)
    ads = f"https://ads.test:{port}"
    inner = app.wsgi_app

    def wsgi(environ, start_response):
        host = environ.get("HTTP_HOST", "").split(":")[0]
        if host == "eu-store.test" and environ["PATH_INFO"].startswith("/p/"):
            sku = environ["PATH_INFO"][3:]
            html = (f"<!doctype html><title>{sku}</title>{cmp}<body data-adserver-event=view_item "
                    f"data-adserver-sku={sku}><h1>{sku}</h1>"
                    f'<script async src="{ads}/tag.js" data-advertiser="shop"></script>')
        elif host == "eu-blog.test":
            html = f"<!doctype html><title>blog</title>{cmp}<body style='margin:0'>{slot}<script async src=\"{ads}/pub.js\"></script>"
        else:
            return inner(environ, start_response)
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")])
        return [html.encode()]

    app.wsgi_app = wsgi


def _visit(app, port: int, pw, tmp_path, answer: str | None, name: str) -> tuple[list[str], dict, list[str]]:
    """Two product pages then the blog: (the pixel URLs sent, the ad iframe's query, page errors)."""
    _serve_pages(app, port, answer)
    context = _browser(pw, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    pixels: list[str] = []
    page.on("request", lambda r: pixels.append(r.url) if "/px.gif" in r.url else None)
    for sku in ("T1", "T2"):
        with page.expect_response(lambda r: "/px.gif" in r.url, timeout=10_000):
            page.goto(f"https://eu-store.test:{port}/p/{sku}")
    page.goto(f"https://eu-blog.test:{port}/")
    page.frame_locator("ins iframe").locator("a[href*='/c/']").first.wait_for(timeout=15_000)
    query = parse_qs(urlsplit(page.get_attribute("ins iframe", "src")).query)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tcf-{name}.png"))
    context.close()
    return pixels, query, errors


def test_consent_given_tracks_and_personalises(app, sites, playwright, tmp_path, writer, ch):  # noqa: F811
    pixels, query, errors = _visit(app, sites["port"], playwright, tmp_path, tcf.FULL, "consent")
    assert not errors, errors
    assert len(pixels) == 2 and all(f"gdpr=1&gdpr_consent={tcf.FULL}" in url for url in pixels)
    assert (query["gdpr"], query["gdpr_consent"]) == (["1"], [tcf.FULL])
    drain(writer)
    assert ch.execute("SELECT sku, consent FROM events WHERE event = 'view_item' ORDER BY ts, sku") == [
        ("T1", 1), ("T2", 1)]
    [(skus, reasons, uid, consent)] = ch.execute(
        "SELECT skus, reasons, uid, consent FROM events WHERE event = 'impression'")
    assert skus[:2] == ["T2", "T1"] and reasons[0] == "recent" and uid and consent == 1


@pytest.mark.parametrize(("answer", "name"), [(tcf.NO_VENDOR, "refused"), (None, "broken-cmp")])
def test_without_consent_nothing_is_tracked_and_the_ad_is_not_personalised(
        app, sites, playwright, tmp_path, writer, ch, answer, name):  # noqa: F811
    pixels, query, errors = _visit(app, sites["port"], playwright, tmp_path, answer, name)
    assert not errors, errors
    assert len(pixels) == 2 and all("gdpr=1" in url for url in pixels)
    assert query["gdpr"] == ["1"] and query.get("gdpr_consent", [""]) == [answer or ""]
    drain(writer)
    assert ch.execute("SELECT count() FROM events WHERE event = 'view_item'")[0][0] == 0
    [(reasons, uid, consent)] = ch.execute("SELECT reasons, uid, consent FROM events WHERE event = 'impression'")
    assert set(reasons) == {"popular"} and uid == "" and consent == 2


@pytest.mark.parametrize(("answer", "personalised"), [(tcf.FULL, True), (tcf.NO_VENDOR, False)],
                         ids=["consent", "refused"])
def test_native_cards_ask_with_the_pages_consent(app, runner, sites, playwright, tmp_path,  # noqa: F811
                                                 writer, ch, answer, personalised):
    """A native slot on eu-blog.test (its placement's own site, so a card may be personalised there)."""
    assert runner("create-placement", "eu-feed", "--site", "eu-blog.test", "--advertiser", "shop")[0] == 0
    app.extensions["adserver"].registry.reload()
    port = sites["port"]
    _serve_pages(app, port, answer, NATIVE_SLOT)
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for sku in ("T1", "T2"):
        with page.expect_response(lambda r: "/px.gif" in r.url, timeout=10_000):
            page.goto(f"https://eu-store.test:{port}/p/{sku}")
    with page.expect_response(lambda r: "/ad.json" in r.url) as response:
        page.goto(f"https://eu-blog.test:{port}/")
    page.locator(".adserver-native").wait_for(timeout=15_000)
    query = parse_qs(urlsplit(response.value.url).query)
    assert query["format"] == ["native"] and (query["gdpr"], query["gdpr_consent"]) == (["1"], [answer])
    ext = response.value.json()["native"]["ext"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tcf-native-{'consent' if personalised else 'refused'}.png"))
    assert not errors, errors
    context.close()
    if personalised:
        assert ext["path"] == "personalised" and ext["products"][0]["sku"] == "T2"
    else:
        assert ext["path"] == "fallback" and ext["fallback_reason"] == "no_consent" and ext["addressable"] is False
    drain(writer)
    [(uid, consent)] = ch.execute("SELECT uid, consent FROM events WHERE event = 'impression'")
    assert bool(uid) is personalised and consent == (1 if personalised else 2)
