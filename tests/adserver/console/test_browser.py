"""The dashboard in a real browser (Debian's Chromium driven by Playwright) on a real HTTP server:
sign in, open a report, see the chart and the table; screenshots are kept in test-artifacts/."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.adserver.console.conftest import PASSWORD, at, seed

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture
def server(app, tenants, ch):
    for day in range(5):
        seed(ch, "shop-a", at(days=-day), placement="feed", clicks=1 + day % 3)
        seed(ch, "shop-a", at(days=-day, hours=3), placement="sidebar", clicks=day % 2)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser():
    assert shutil.which(CHROMIUM), "Chromium is missing: apt-get install chromium (make test installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/reports/shop-a?from=2026-03-06&to=2026-03-10&group_by=placement&sort=clicks")
    assert "/reports/login" in page.url
    page.fill("input[name=email]", "alice@a.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/shop-a?*", timeout=15_000)


def test_dashboard_in_chromium(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _sign_in(page, server)
    assert page.locator("h1").first.inner_text().startswith("Shop A <b>&</b>")  # shown as text, not markup
    chart = page.locator("svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] > 600
    assert page.locator("svg.chart rect.bar").count() == 5
    assert page.locator("svg.chart polyline.ctr-line").count() == 1
    rows = page.locator("table.breakdown tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).locator("th").inner_text() for i in range(2)] == ["feed", "sidebar"]
    assert page.locator("table.breakdown tfoot td").first.inner_text() == "100"  # 10 ads x 2 placements x 5 days
    page.screenshot(path=str(ARTIFACTS / "reports-dashboard.png"), full_page=True)

    page.click("table.breakdown thead a:has-text('Clicks')")  # the sorted column again: the other way round
    page.wait_for_url("**order=asc**")
    assert rows.nth(0).locator("th").inner_text() == "sidebar"
    with page.expect_download() as download:
        page.click("text=Download CSV")
    body = Path(download.value.path()).read_text()
    assert body.splitlines()[0].startswith("placement,impressions,clicks")
    assert body.count("\n") == 3


def test_dashboard_fits_a_phone(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    _sign_in(page, server)
    page.goto(f"{server}/reports/shop-a?from=2026-03-06&to=2026-03-10")
    assert page.locator("svg.chart").bounding_box()["width"] <= 390
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    assert page.locator("table.breakdown tbody tr").count() == 5  # days
    page.screenshot(path=str(ARTIFACTS / "reports-dashboard-phone.png"), full_page=True)
    context.close()
