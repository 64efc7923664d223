"""GET /api/v1/reports: JSON and CSV, parameters checked with clear 400s, the OpenAPI document."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.adserver.console.conftest import at, seed


@pytest.fixture
def api(client, tenants, ch):
    seed(ch, "shop-a", at(days=-1), placement="feed", clicks=1)
    seed(ch, "shop-a", at(), placement="feed", clicks=3)
    seed(ch, "shop-a", at(hours=2), placement="side", clicks=1)
    headers = {"Authorization": f"Bearer {tenants['shop-a']}"}

    def get(query: str):
        return client.get("/api/v1/reports?" + query, headers=headers)

    return get


def test_json_report_by_day(api):
    response = api("advertiser=shop-a&from=2026-03-09&to=2026-03-10&group_by=day")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert (body["advertiser"], body["currency"], body["timezone"], body["group_by"]) == (
        "shop-a", "CNY", "Asia/Shanghai", "day")
    assert body["attribution"] == {"click_window": "30d", "view_window": "1d"}
    assert [r["key"] for r in body["rows"]] == ["2026-03-09", "2026-03-10"]
    day9, day10 = body["rows"]
    assert (day9["impressions"], day9["clicks"], day10["impressions"], day10["clicks"]) == (10, 1, 20, 4)
    assert day10["ctr"] == 0.2 and body["totals"]["impressions"] == 30 and body["totals"]["conversions"] == 3
    assert set(day10) == {"key", "impressions", "clicks", "ctr", "hides", "hide_rate", "visitors", "addressable_share",
                          "conversions",
                          "post_click_conversions", "post_view_conversions", "revenue", "spend", "cost", "roas",
                          "invalid_impressions", "invalid_impression_share", "invalid_clicks", "invalid_click_share",
                          "gdpr_impressions", "consent_share"}
    assert body["price"] is None and day10["cost"] is None


def test_other_breakdowns_and_compare(api):
    body = api("from=2026-03-10&to=2026-03-10&group_by=placement&compare=1&sort=clicks").get_json()
    assert [(r["key"], r["clicks"]) for r in body["rows"]] == [("feed", 3), ("side", 1)]
    assert body["previous"] == {"from": "2026-03-09", "to": "2026-03-09", "totals": body["previous"]["totals"]}
    assert body["previous"]["totals"]["clicks"] == 1
    assert api("from=2026-03-10&to=2026-03-10&group_by=sku").get_json()["impressions_are"] == "products"
    assert [r["key"] for r in api("from=2026-03-10&to=2026-03-10&group_by=reason&sort=key").get_json()["rows"]] == [
        "popular", "recent"]
    hours = api("from=2026-03-10&to=2026-03-10&group_by=hour").get_json()["rows"]
    assert len(hours) == 24 and hours[0]["key"] == "2026-03-10 00:00:00"


def test_cost_and_roas_once_a_price_is_set(api, ch):
    from adserver.console.prices import set_price

    set_price(ch, "shop-a", "cpc", 2.0)
    body = api("from=2026-03-10&to=2026-03-10").get_json()
    assert body["price"] == {"model": "cpc", "amount": 2.0}
    assert body["totals"]["cost"] == 8.0 and body["totals"]["roas"] == pytest.approx(176.0 / 8.0)


def test_csv_report(api):
    response = api("from=2026-03-10&to=2026-03-10&group_by=placement&format=csv&sort=clicks&order=asc")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["placement"], r["clicks"]) for r in rows] == [("side", "1"), ("feed", "3")]
    assert rows[0]["cost"] == "" and rows[0]["ctr"] == "0.1"


@pytest.mark.parametrize("query, parameter", [
    ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("from=2026-03-10&to=2026-03-01", "from"),
    ("from=1999-12-31&to=2000-01-02", "from"), ("from=2024-01-01&to=2026-03-01", "from"),
    ("group_by=month", "group_by"), ("group_by=hour&from=2026-01-01&to=2026-05-01", "group_by"),
    ("format=xml", "format"), ("click_window=-1d", "click_window"), ("view_window=91d", "view_window"),
    ("view_window=1w", "view_window"), ("compare=maybe", "compare"), ("sort=password_hash", "sort"),
    ("order=up", "order"), ("groupby=day", "groupby"), ("advertiser=Shop%20A", "advertiser"),
    ("group_by=day&group_by=sku", "group_by"),
])
def test_bad_parameters_get_a_clear_400(api, query, parameter):
    response = api(query)
    assert response.status_code == 400, query
    body = response.get_json()
    assert body["error"] == "bad_request" and body["parameter"] == parameter and body["message"]


def test_openapi_document_describes_the_api(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = json.loads(response.get_data(as_text=True))
    assert doc["openapi"].startswith("3.")
    operation = doc["paths"]["/api/v1/reports"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"advertiser", "from", "to", "group_by", "format", "click_window", "view_window", "compare",
                     "sort", "order", "conversions"}
    group_by = next(p for p in operation["parameters"] if p["name"] == "group_by")
    assert group_by["schema"]["enum"] == ["day", "hour", "placement", "sku", "reason", "campaign"]
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert "bearerAuth" in doc["components"]["securitySchemes"]
