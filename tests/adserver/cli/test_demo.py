"""``demo``: what it loads, where its links point, and the reports demo."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from adserver.cli.demo import demo_base_url
from adserver.console.accounts import authenticate
from adserver.console.prices import get_price
from adserver.console.report import ReportRequest, run_report


def test_demo_loads_both_stores_and_the_placements(runner, ch):
    code, out = runner("demo", "--base-url", "https://store.example")
    assert code == 0, out
    assert "demo advertiser 'demo': 60 products (0 rejected)" in out
    assert "demo advertiser 'outdoor'" in out and "campaign outdoor-retargeting (CPM 3.00)" in out
    assert ch.execute("SELECT id, floor FROM placements FINAL ORDER BY id") == [
        ("demo-banner", 0.5), ("demo-feed", 0.3), ("demo-sidebar", 2.0)]
    links = ch.execute("SELECT DISTINCT substring(link, 1, 21) FROM products FINAL")
    assert links == [("https://store.example",)]


def test_the_demo_links_come_from_the_settings_not_the_environment(runner, ch, settings, monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    assert settings.public_url is None
    assert demo_base_url(settings) == "http://127.0.0.1:8000"
    assert demo_base_url(replace(settings, port=9123)) == "http://127.0.0.1:9123"
    assert demo_base_url(replace(settings, port=9123, public_url="https://shop.example")) == "https://shop.example"
    code, out = runner("demo")
    assert code == 0, out
    links = ch.execute("SELECT DISTINCT substring(link, 1, 22) FROM products FINAL")
    assert links == [("http://127.0.0.1:8000/",)]


def test_demo_without_reports_adds_no_traffic(runner, ch):
    assert runner("demo", "--base-url", "https://store.example")[0] == 0
    assert ch.execute("SELECT count() FROM events") == [(0,)]
    assert ch.execute("SELECT count() FROM users") == [(0,)]


@pytest.mark.slow
@pytest.mark.settings_env(ADSERVER_DEMO="1")
def test_demo_reports_creates_the_marketer_and_traffic_once(runner, ch):
    code, out = runner("demo", "--base-url", "https://store.example", "--reports")
    assert code == 0, out
    assert "demo@example.com / demo-password" in out
    assert authenticate(ch, "demo@example.com", "demo-password") is not None
    assert ch.execute("SELECT timezone FROM advertisers FINAL WHERE id = 'demo'") == [("Asia/Shanghai",)]
    counted = ch.execute("SELECT count() FROM events WHERE advertiser = 'demo' AND event = 'impression'")[0][0]
    assert counted > 20_000
    assert runner("demo", "--base-url", "https://store.example", "--reports")[0] == 0
    assert ch.execute("SELECT count() FROM events WHERE advertiser = 'demo' AND event = 'impression'") == [(counted,)]
    today = ch.execute("SELECT toDate(now(), 'Asia/Shanghai')")[0][0]
    report = run_report(ch, ReportRequest("demo", date.fromordinal(today.toordinal() - 6), today, "day",
                                          "Asia/Shanghai"), get_price(ch, "demo"))
    assert report.totals.clicks > 50 and report.totals.conversions > 3 and report.totals.roas is not None


def test_demo_reports_refuses_the_published_marketer_in_server_mode(runner, ch, settings):
    """demo@example.com / demo-password is in the README: a production server must not get it by accident."""
    assert not settings.demo
    code, out = runner("demo", "--base-url", "https://store.example", "--reports")
    assert code == 1
    assert "ADSERVER_DEMO=1" in out and "demo@example.com" in out
    assert ch.execute("SELECT count() FROM users") == [(0,)]
    assert ch.execute("SELECT count() FROM events") == [(0,)]
