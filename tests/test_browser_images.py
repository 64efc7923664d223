"""In a real browser, the ad iframe on another site loads its product pictures from ``/img/``: the WebP
variant sized for the slot, 1x on a standard screen and 2x on a high-density one.

Same three-site setup as ``tests/test_browser_e2e.py`` (HTTPS on loopback, ``*.test`` mapped to
127.0.0.1): the blog frames ``ads.test``'s 300x250 unit, whose products link to ``store.test``.
"""

from __future__ import annotations

import io
import json
import subprocess
import threading
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from werkzeug.serving import make_server

from adserver.catalog.image_store import OK, ProductImage
from adserver.catalog.image_variants import variants_of
from adserver.catalog.images import resize_images
from tests.adserver.catalog.pictures import photo
from tests.adserver.conftest import feed_bytes, product
from tests.test_browser_e2e import CHROMIUM, DESKTOP_CHROME
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

SKUS = ("T1", "T2", "T3", "T4")


@pytest.fixture
def sites(app, runner, ch, redis_client, tmp_path):
    assert runner("create-advertiser", "shop", "--domain", "store.test")[0] == 0
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ads.test",
                    "-addext", "subjectAltName=DNS:ads.test,DNS:store.test,DNS:blog.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    blog = Flask("blog")

    @blog.get("/")
    def feed():
        return (f"<!doctype html><title>blog</title><iframe id=ad src=\"https://ads.test:{port}/ad?p=blog-feed&amp;"
                "size=300x250\" width=300 height=250 style='border:0'></iframe>")

    apps = {"blog.test": blog}

    def dispatch(environ, start_response):
        return apps.get(environ.get("HTTP_HOST", "").split(":")[0], app)(environ, start_response)

    httpd = make_server("127.0.0.1", 0, dispatch, threaded=True, ssl_context=(str(cert), str(key)))
    port = httpd.server_port
    rows = [product(sku, link=f"https://store.test:{port}/p/{sku}", image_link=f"https://store.test:{port}/{sku}.jpg")
            for sku in SKUS]
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes(rows))
    assert runner("import-feed", "shop", str(path))[0] == 0
    assert runner("create-placement", "blog-feed", "--site", "blog.test", "--advertiser", "shop")[0] == 0
    photos = {row["image_link"]: photo(900, 900, seed=n) for n, row in enumerate(rows)}

    def from_store(url: str, *args) -> ProductImage:  # the store's pictures, as fetching them would give
        variants, files = variants_of(photos[url])
        return ProductImage(url, OK, "", tuple(variants), files=tuple(files))

    report = resize_images(ch, redis_client, "shop", ("store.test",), process=from_store)
    assert report.resized == len(SKUS)
    app.extensions["adserver"].registry.reload()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.mark.parametrize("density, pixels", [(1, 64), (2, 128)])
def test_the_ad_frame_loads_slot_sized_variants(sites, app, tmp_path: Path, density: int, pixels: int) -> None:
    """Chromium picks the WebP source's 1x or 2x candidate by the screen's density (its naturalWidth is
    in CSS pixels, so the file's own size is read back from the server)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(json.dumps({"profile": {"cookie_controls_mode": 0}}))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, ignore_https_errors=True,
            user_agent=DESKTOP_CHROME, viewport={"width": 400, "height": 400},
            # the browser-wide flag: Playwright's device_scale_factor does not reach a cross-site (out-of-process) frame
            args=[f"--force-device-scale-factor={density}", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP *.test 127.0.0.1",
                  "--ignore-certificate-errors"])
        try:
            page = browser.new_page()
            loaded = []
            page.on("response", lambda r: loaded.append((r.url, r.status, r.headers.get("content-type"))))
            page.goto(f"https://blog.test:{sites}/")
            frame = page.frame_locator("#ad")
            frame.locator("img").first.wait_for(timeout=15_000)
            ad = next(f for f in page.frames if "/ad?" in f.url)
            # Polled from here: wait_for_function evaluates its predicate with eval, which the unit's CSP forbids.
            wait_for(lambda: ad.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)"), 15,
                     "the unit's images to load")
            images = ad.evaluate("[...document.images].map(i => [i.currentSrc, i.naturalWidth, i.naturalHeight])")
            assert ad.evaluate("devicePixelRatio") == density
        finally:
            browser.close()
    assert len(images) == len(SKUS)
    for src, width, height in images:
        assert src.startswith(f"https://ads.test:{sites}/img/") and src.endswith(".webp"), src
        assert (width, height) == (64, 64)  # CSS pixels: the file's pixels over its density
        served = Image.open(io.BytesIO(app.test_client().get(src.split(str(sites), 1)[1]).data))
        assert (served.format, served.size) == ("WEBP", (pixels, pixels))
    fetched = [(url, status, kind) for url, status, kind in loaded if "/img/" in url]
    assert len(fetched) == len(SKUS) and all(s == 200 and k == "image/webp" for _, s, k in fetched)
    assert not [url for url, _, _ in loaded if "store.test" in url]  # nothing from the feed's own images
