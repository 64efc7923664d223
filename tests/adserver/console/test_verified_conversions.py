"""Verified conversions in reports, on both ClickHouse backends: orders the store sent through the
conversion API (stored by the API's own code) count in "verified only" reports, pixel purchases do
not; a report over every order counts an order once, described by its pixel when it has one."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from adserver.console import attribution
from adserver.console.maintenance import rebuild_reports
from adserver.serving.click_ids import ClickIds
from adserver.tracking.conversions import store_orders
from adserver.tracking.orders import parse_orders
from tests.adserver.console.conftest import at, click, impression, insert, purchase
from tests.conftest import SECRET
from tracker.signing import b64encode

CLICK_IDS = ClickIds([SECRET])


def new_uid() -> str:
    return b64encode(secrets.token_bytes(16))


def click_id(uid: str | None, when: datetime, advertiser: str = "shop") -> str:
    """The click id the redirect would have put on the landing URL of ``uid``'s click at ``when``."""
    return CLICK_IDS.issue(advertiser, b64encode(secrets.token_bytes(12)), when.replace(tzinfo=UTC).timestamp(), uid)


def send(ch, redis_client, orders: list[dict], advertiser: str = "shop") -> list[bool]:
    """Orders through the conversion API's validation and storage, as if sent the day after ``T0``."""
    body = json.dumps({"orders": orders}).encode()
    batch = parse_orders(body, advertiser, CLICK_IDS, now=at(days=1).replace(tzinfo=UTC).timestamp())
    assert not batch.errors, batch.errors
    return store_orders(ch, redis_client, advertiser, [o for _, o in batch.orders])


def api_order(order_id: str, value: float, when: datetime, skus=("A",), clicked: str | None = None) -> dict:
    out = {"order_id": order_id, "value": value, "currency": "CNY", "skus": list(skus),
           "ts": int(when.replace(tzinfo=UTC).timestamp())}
    if clicked is not None:
        out["click_id"] = clicked
    return out


def totals(report, **options) -> tuple:
    t = report(**options).totals
    return t.conversions, t.post_click_conversions, t.post_view_conversions, t.revenue


def both_sources(report, **options) -> tuple:
    agg, raw = totals(report, **options), totals(report, source="raw", **options)
    assert agg == raw, options
    return agg


def test_verified_only_counts_api_orders_and_no_pixel(any_ch, redis_client, report):
    buyer, pixel_buyer, cookieless = new_uid(), new_uid(), None
    insert(any_ch, [
        impression(at(days=-2, seconds=-5), buyer, ["A", "B"], ["recent", "popular"], "feed"),
        click(at(days=-2), buyer, "A", "recent", "feed"),
        click(at(days=-1), pixel_buyer, "B", "similar", "side"),
        purchase(at(), pixel_buyer, "pixel-1", 5000.0, ["B"]),  # any page can send this
    ])
    assert send(any_ch, redis_client, [
        api_order("api-1", 120.0, at(hours=1), ["A"], click_id(buyer, at(days=-2))),
        api_order("api-2", 80.0, at(hours=2), ["A"], click_id(cookieless, at(days=-2))),  # no visitor to match
        api_order("api-3", 60.0, at(hours=3), ["A"]),  # no click id
    ]) == [True, True, True]
    assert both_sources(report) == (2, 2, 0, 5120.0)
    assert both_sources(report, verified_only=True) == (1, 1, 0, 120.0)
    rows = {r.key: r for r in report(group_by="placement", verified_only=True).rows}
    assert rows["feed"].conversions == 1 and rows["side"].conversions == 0  # "side": the pixel buyer's click
    sku = {r.key: r for r in report(group_by="sku", verified_only=True).rows}
    assert sku["A"].revenue == 120.0 and ("B" not in sku or sku["B"].conversions == 0)
    day = {r.key: r for r in report(group_by="day", verified_only=True).rows}
    assert day["2026-03-10"].conversions == 1


def test_an_order_sent_both_ways_counts_once(any_ch, redis_client, report):
    buyer = new_uid()
    insert(any_ch, [click(at(hours=-3), buyer, "A", "recent", "feed"),
                    purchase(at(), buyer, "o-1", 9999.0, ["A"])])  # the thank-you page's pixel, value forged
    send(any_ch, redis_client, [api_order("o-1", 100.0, at(seconds=-2), ["A"], click_id(buyer, at(hours=-3)))])
    assert both_sources(report) == (1, 1, 0, 9999.0)  # every order: its pixel describes it
    assert both_sources(report, verified_only=True) == (1, 1, 0, 100.0)  # verified: what the store's server sent


def test_verified_resolutions_are_kept_apart(any_ch, redis_client, report):
    buyer, other = new_uid(), new_uid()
    insert(any_ch, [click(at(days=-1), buyer, "A", "recent", "feed"), purchase(at(), buyer, "o-1", 10.0),
                    click(at(days=-1), other, "B", "popular", "side"), purchase(at(), other, "o-2", 20.0)])
    send(any_ch, redis_client, [api_order("o-1", 15.0, at(minutes=5), ["A"], click_id(buyer, at(days=-1)))])
    # orders of March are settled: each report keeps their resolutions, each kind in its own table
    assert totals(report) == (2, 2, 0, 30.0)
    assert totals(report, verified_only=True) == (1, 1, 0, 15.0)
    kept = {table: any_ch.execute(f"SELECT order_id, value FROM {table} FINAL ORDER BY order_id")
            for table in attribution.KEPT_TABLES.values()}
    assert kept == {"report_order_touches": [("o-1", 10.0), ("o-2", 20.0)],
                    "report_verified_order_touches": [("o-1", 15.0)]}
    # read back from the kept resolutions, the same numbers
    start, end = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()), int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())
    for verified, expected in ((False, 30.0), (True, 15.0)):
        conv = attribution.conversions(any_ch, "shop", start, end, "total", "UTC", 30 * 86400, 86400,
                                       verified=verified)
        assert conv["total"].revenue == expected
    # a rebuild empties both and keeps both again
    rebuild_reports(any_ch)
    assert {t: any_ch.execute(f"SELECT count() FROM {t} FINAL")[0][0] for t in attribution.KEPT_TABLES.values()} == {
        "report_order_touches": 2, "report_verified_order_touches": 1}


def test_verified_api_orders_attribute_post_view_through_the_clicker(any_ch, redis_client, report):
    buyer = new_uid()
    # the click is long past the post-click window, an impression of the same visitor is recent
    insert(any_ch, [click(at(days=-40), buyer, "A", "recent", "feed"),
                    impression(at(hours=-2), buyer, ["C", "D"], ["similar", "popular"], "side")])
    send(any_ch, redis_client, [api_order("v-1", 30.0, at(), ["D"], click_id(buyer, at(days=-40)))])
    assert both_sources(report, verified_only=True) == (1, 0, 1, 30.0)
    assert {r.key: r.conversions for r in report(group_by="placement", verified_only=True).rows}["side"] == 1


@pytest.fixture
def yesterday() -> datetime:
    return (datetime.now(UTC) - timedelta(days=1)).replace(hour=4, minute=0, second=0, microsecond=0, tzinfo=None)


def test_the_report_api_and_dashboard_take_the_conversions_option(app, client, ch, tenants, yesterday):
    from tests.adserver.console.conftest import login

    buyer, pixel_buyer = new_uid(), new_uid()
    insert(ch, [click(yesterday - timedelta(hours=1), buyer, "A", "recent", "feed", "shop-a"),
                click(yesterday - timedelta(hours=1), pixel_buyer, "A", "recent", "feed", "shop-a"),
                purchase(yesterday, pixel_buyer, "px-1", 700.0, ["A"], "shop-a")])
    clicked = app.extensions["adserver"].click_ids.issue(
        "shop-a", b64encode(secrets.token_bytes(12)), (yesterday - timedelta(hours=1)).replace(tzinfo=UTC).timestamp(),
        buyer)
    sent = client.post("/api/v1/conversions/shop-a", headers={"Authorization": f"Bearer {tenants['shop-a']}"},
                       json={"orders": [api_order("api-1", 70.0, yesterday, ["A"], clicked)]})
    assert sent.get_json()["accepted"] == 1
    day = yesterday.date()
    query = f"/api/v1/reports?from={day - timedelta(days=1)}&to={day + timedelta(days=1)}&group_by=day"
    auth = {"Authorization": f"Bearer {tenants['shop-a']}"}
    every = client.get(query, headers=auth).get_json()
    verified = client.get(query + "&conversions=verified", headers=auth).get_json()
    assert (every["conversions"], every["totals"]["conversions"], every["totals"]["revenue"]) == ("all", 2, 770.0)
    assert (verified["conversions"], verified["totals"]["conversions"], verified["totals"]["revenue"]) == (
        "verified", 1, 70.0)
    bad = client.get(query + "&conversions=pixels", headers=auth)
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "conversions"
    login(client, "alice@a.example")
    page = client.get(f"/reports/shop-a?from={day}&to={day}&conversions=verified").get_data(as_text=True)
    assert '<option value="verified" selected>' in page and "verified orders only" in page
    assert "conversions=verified" in page  # kept in the CSV and sorting links
    csv = client.get(f"/reports/shop-a/report.csv?from={day}&to={day}&conversions=verified").get_data(as_text=True)
    header, row = csv.splitlines()[:2]
    assert dict(zip(header.split(","), row.split(",")))["conversions"] == "1"
    assert client.get(f"/reports/shop-a?from={day}&to={day}&conversions=%3Cb%3E").status_code == 400
