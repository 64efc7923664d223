"""The retargeting loop in a real browser across three HTTPS sites on loopback.

``store.test`` (a store page carrying our tag), ``blog.test`` (a microblog page carrying our ad iframe)
and ``ads.test`` (the product) are three different sites for Chromium (``--host-resolver-rules`` maps
them to 127.0.0.1, a self-signed certificate covers them). Whether the ad can read the cookie the store
page set depends on the browser's third-party-cookie setting, so each case uses a fresh profile.
Screenshots of each ad state are kept in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.adserver.conftest import feed_bytes, product
from tests.conftest import drain

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
DESKTOP_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
                  "Safari/537.36")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PRODUCTS = [
    product("T1", "青瓷茶杯 Celadon Tea Cup", product_type="Tea Ware"),
    product("T2", "青瓷茶壶 Celadon Teapot", product_type="Tea Ware"),
    product("T3", "青瓷茶盘 Celadon Tea Tray", product_type="Tea Ware"),
    product("T4", "青瓷公道杯 Celadon Tea Pitcher", product_type="Tea Ware"),
    product("R1", "Trail Running Shoes 越野跑鞋", product_type="Shoes"),
    product("R2", "Road Running Shoes 公路跑鞋", product_type="Shoes"),
    product("R3", "Running Socks 跑步袜", product_type="Shoes"),
    product("B1", "Commuter Backpack 通勤背包", product_type="Bags"),
]


def _site_apps(port: int) -> tuple[Flask, Flask]:
    ads = f"https://ads.test:{port}"
    store = Flask("store")
    tag = f'<script async src="{ads}/tag.js" data-advertiser="shop"></script>'

    def page(title: str, event: str, extra: str = "") -> str:
        """A store page that tells the tag about one event (queued before the tag loads)."""
        return (f"<!doctype html><title>{title}</title><h1 id=sku>{title}</h1>"
                f"<script>window.adserver=window.adserver||[];adserver.push({{event:'{event}',{extra}}});"
                f"</script>{tag}")

    store.add_url_rule("/p/<sku>", "product", lambda sku: page(sku, "view_item", f"sku:'{sku}'"))
    store.add_url_rule("/cart/<sku>", "cart", lambda sku: page("cart", "add_to_cart", f"sku:'{sku}'"))
    store.add_url_rule("/buy/<sku>", "buy", lambda sku: page(
        "thanks", "purchase", f"sku:'{sku}',order:'O-1',value:'88.00',currency:'CNY'"))

    @store.get("/img/<sku>.svg")
    def image(sku: str):
        svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
               '<rect width="100" height="100" fill="#8ab"/></svg>')
        return svg, 200, {"Content-Type": "image/svg+xml"}

    blog = Flask("blog")

    @blog.get("/")
    def feed():
        return (f"<!doctype html><title>blog</title><p>Posts</p><iframe id=ad src=\"{ads}/ad?p=blog-feed&amp;size=300x250\""
                " width=300 height=250 style='border:0'></iframe>")

    for site in (store, blog):
        site.add_url_rule("/favicon.ico", "favicon", lambda: ("", 204))
    return store, blog


@pytest.fixture
def sites(app, runner, ch, tmp_path):
    """The product on ads.test, the store and the blog, all over HTTPS on one loopback port."""
    assert runner("create-advertiser", "shop", "--domain", "store.test")[0] == 0
    rows = [dict(p) for p in PRODUCTS]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ads.test",
                    "-addext", "subjectAltName=DNS:ads.test,DNS:store.test,DNS:blog.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    apps: dict[str, Flask] = {}

    def dispatch(environ, start_response):
        host = environ.get("HTTP_HOST", "").split(":")[0]
        return apps.get(host, app)(environ, start_response)

    httpd = make_server("127.0.0.1", 0, dispatch, threaded=True, ssl_context=(str(cert), str(key)))
    port = httpd.server_port
    apps["store.test"], apps["blog.test"] = _site_apps(port)
    for row in rows:
        row["link"] = f"https://store.test:{port}/p/{row['id']}"
        row["image_link"] = f"https://store.test:{port}/img/{row['id']}.svg"
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes(rows))
    assert runner("import-feed", "shop", str(path))[0] == 0
    assert runner("create-placement", "blog-feed", "--site", "blog.test", "--advertiser", "shop")[0] == 0
    assert runner("train", "--advertiser", "shop")[0] == 0
    token = runner("create-token", "shop")[1].strip().splitlines()[-1]
    app.extensions["adserver"].registry.reload()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"port": port, "token": token}
    httpd.shutdown()
    thread.join(timeout=10)


def _browser(playwright, profile: Path, third_party_cookies: bool):
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        json.dumps({"profile": {"cookie_controls_mode": 0 if third_party_cookies else 1}}))
    # Headless Chromium says "HeadlessChrome" in its user agent, which the server counts as a bot
    # (adserver/tracking/traffic.py); the shopper simulated here is a person, so it shows a desktop Chrome's.
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, ignore_https_errors=True, user_agent=DESKTOP_CHROME,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP *.test 127.0.0.1",
              "--ignore-certificate-errors"])


def _visit_store(page, base: str, skus: list[str]) -> None:
    for sku in skus:
        with page.expect_response(lambda r, sku=sku: "/px.gif" in r.url and f"sku={sku}" in r.url):
            page.goto(f"{base}/p/{sku}")


def _ad_skus(page, port: int) -> tuple[list[str], object]:
    page.goto(f"https://blog.test:{port}/")
    frame = page.frame_locator("#ad")
    frame.locator("a[href*='/c/']").first.wait_for(timeout=15_000)
    links = frame.locator("a[href*='/c/']")
    titles = [links.nth(i).get_attribute("title") for i in range(links.count())]
    by_title = {p["title"]: p["id"] for p in PRODUCTS}
    return [by_title[t] for t in titles], frame


def _report(client, token: str) -> dict:
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    response = client.get(f"/api/v1/reports?advertiser=shop&from={today}&to={today}&group_by=day",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["totals"]


@pytest.fixture
def playwright():
    assert shutil.which(CHROMIUM), "Chromium is missing: apt-get install chromium (make test installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


def test_retargeting_loop_with_third_party_cookies(sites, playwright, tmp_path, client, writer):
    ARTIFACTS.mkdir(exist_ok=True)
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    store = f"https://store.test:{port}"
    _visit_store(page, store, ["T1", "T2", "T3"])
    with page.expect_response(lambda r: "/px.gif" in r.url and "add_to_cart" in r.url):
        page.goto(f"{store}/cart/T2")

    shown, frame = _ad_skus(page, port)
    assert shown[:2] == ["T2", "T3"]  # the latest interest first (T2 was put in the cart last)
    assert "T4" in shown[2:]  # then a similar product: the fourth piece of the celadon set
    page.screenshot(path=str(ARTIFACTS / "e2e-ad-personalised.png"))

    with context.expect_page() as landing:
        frame.locator("a[href*='/c/']").first.click()
    store_page = landing.value
    store_page.wait_for_load_state()
    assert store_page.url.startswith(f"{store}/p/T2?") and "utm_source=adserver" in store_page.url
    with store_page.expect_response(lambda r: "/px.gif" in r.url and "purchase" in r.url):
        store_page.goto(f"{store}/buy/T2")
    assert not errors, errors
    context.close()

    drain(writer)
    totals = _report(client, sites["token"])
    assert totals["impressions"] >= 1 and totals["clicks"] == 1
    assert totals["conversions"] == 1 and totals["post_click_conversions"] == 1 and totals["revenue"] == 88.0
    assert totals["addressable_share"] == 1.0


def test_blocked_third_party_cookies_get_the_fallback(sites, playwright, tmp_path, client, writer, ch):
    ARTIFACTS.mkdir(exist_ok=True)
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=False)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _visit_store(page, f"https://store.test:{port}", ["R1", "R2"])
    shown, _ = _ad_skus(page, port)
    assert shown  # never an empty unit
    page.screenshot(path=str(ARTIFACTS / "e2e-ad-fallback.png"))
    assert not errors, errors
    context.close()
    drain(writer)
    impressions = ch.execute("SELECT addressable, reasons FROM events WHERE advertiser = 'shop' AND event = 'impression'")
    assert len(impressions) == 1
    assert impressions[0][0] == 0 and set(impressions[0][1]) == {"popular"}
    assert _report(client, sites["token"])["addressable_share"] == 0.0


def test_opted_out_browser_is_not_tracked(sites, playwright, tmp_path, client, writer, ch):
    ARTIFACTS.mkdir(exist_ok=True)
    port = sites["port"]
    context = _browser(playwright, tmp_path / "profile", third_party_cookies=True)
    page = context.new_page()
    page.goto(f"https://ads.test:{port}/optout")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "opted out" in page.content()
    _visit_store(page, f"https://store.test:{port}", ["T1", "R1"])
    shown, _ = _ad_skus(page, port)
    assert shown
    page.screenshot(path=str(ARTIFACTS / "e2e-ad-opted-out.png"))
    context.close()
    drain(writer)
    assert ch.execute("SELECT count() FROM events WHERE event IN ('view_item', 'add_to_cart')")[0][0] == 0
    rows = ch.execute("SELECT uid, addressable FROM events WHERE event = 'impression'")
    assert rows == [("", 0)]
