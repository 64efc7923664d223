"""Campaign management (pages and API) and charged spend in reports, on real Redis and ClickHouse."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from adserver.campaigns.campaign import Campaign, load_campaigns, save_campaign
from adserver.console import attribution
from adserver.console.maintenance import rebuild_reports
from adserver.console.prices import Price, set_price
from adserver.console.report import ReportRequest, run_report
from adserver.demo import synth
from tests.adserver.console.conftest import at, click, csrf_of, impression, insert, login, purchase
from tracker import schema

DAY = "from=2026-03-10&to=2026-03-10"
COST = schema.EVENTS_COLUMNS.index("cost")
CAMPAIGN = schema.EVENTS_COLUMNS.index("campaign")
INVALID = schema.EVENTS_COLUMNS.index("invalid")

FORM = {"name": "Spring <sale>", "status": "active", "pricing": "cpc", "price": "0.8", "daily_budget": "50",
        "start_date": "2026-03-01", "end_date": "", "audience_days": "30", "exclude_buyers_days": "0",
        "cap_per_day": "5", "min_gap_seconds": "60", "logo_url": "", "brand_color": "#112233", "text_color": ""}


def charged(row: tuple, campaign: str, cost: float, invalid: int = 0) -> tuple:
    """An event row of ``campaign`` charged ``cost`` (``invalid``: flagged as invalid traffic)."""
    values = list(row)
    values[CAMPAIGN], values[COST], values[INVALID] = campaign, cost, invalid
    return tuple(values)


@pytest.fixture
def shops(ch, tenants):
    save_campaign(ch, Campaign("b-camp", "shop-b", "B secret campaign", pricing="cpm", price=4.0))
    return tenants


@pytest.fixture
def page(client, shops):
    """Alice signed in; returns (client, CSRF token)."""
    assert login(client, "alice@a.example").status_code == 302
    token = csrf_of(client.get("/reports/campaigns?advertiser=shop-a").get_data(as_text=True))
    return client, token


def registry(app):
    return app.extensions["adserver"].registry


# --- Pages ---------------------------------------------------------------------------------------

def test_create_edit_pause_and_resume_in_the_pages(app, page, ch):
    client, token = page
    registry(app).reload()
    assert client.post("/reports/campaigns?advertiser=shop-a", data={"id": "a-spring", **FORM}).status_code == 400
    response = client.post("/reports/campaigns?advertiser=shop-a", data={"id": "a-spring", **FORM, "csrf_token": token})
    assert response.status_code == 303 and "saved=a-spring" in response.headers["Location"]
    campaign = load_campaigns(ch)["a-spring"]
    assert (campaign.advertiser, campaign.name, campaign.price, campaign.daily_budget, campaign.start_date,
            campaign.cap_per_day, campaign.min_gap_seconds) == ("shop-a", "Spring <sale>", 0.8, 50.0,
                                                                date(2026, 3, 1), 5, 60)
    assert registry(app).campaigns["a-spring"].price == 0.8  # this process sees it at once

    listing = client.get("/reports/campaigns?advertiser=shop-a&saved=a-spring").get_data(as_text=True)
    assert "Spring &lt;sale&gt;" in listing and "<sale>" not in listing and "CNY" in listing
    assert "Campaign <code>a-spring</code> saved" in listing and "B secret" not in listing

    edit = client.get("/reports/campaigns/a-spring")
    assert edit.status_code == 200 and 'value="0.8"' in edit.get_data(as_text=True)
    response = client.post("/reports/campaigns/a-spring", data={**FORM, "price": "1.25", "pricing": "cpm",
                                                                "csrf_token": token})
    assert response.status_code == 303
    assert (load_campaigns(ch)["a-spring"].pricing, load_campaigns(ch)["a-spring"].price) == ("cpm", 1.25)
    assert registry(app).campaigns["a-spring"].pricing == "cpm"

    assert client.post("/reports/campaigns/a-spring/pause", data={}).status_code == 400  # no CSRF token
    assert client.post("/reports/campaigns/a-spring/pause", data={"csrf_token": token}).status_code == 303
    assert load_campaigns(ch)["a-spring"].status == "paused" == registry(app).campaigns["a-spring"].status
    assert ">Resume<" in client.get("/reports/campaigns?advertiser=shop-a").get_data(as_text=True)
    assert client.post("/reports/campaigns/a-spring/resume", data={"csrf_token": token}).status_code == 303
    assert load_campaigns(ch)["a-spring"].status == "active" == registry(app).campaigns["a-spring"].status
    assert load_campaigns(ch)["a-spring"].price == 1.25  # pausing changed nothing else


def test_validation_errors_are_shown_with_the_values_kept(page, ch):
    client, token = page
    bad = {**FORM, "id": "a-bad", "price": "-1", "daily_budget": "lots", "brand_color": "<script>x</script>",
           "end_date": "2026-02-01", "csrf_token": token}
    response = client.post("/reports/campaigns?advertiser=shop-a", data=bad)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "daily budget must be a number" in html and "<script>x" not in html
    assert 'value="&lt;script&gt;x&lt;/script&gt;"' in html and 'value="lots"' in html and 'value="a-bad"' in html
    response = client.post("/reports/campaigns?advertiser=shop-a", data={**bad, "daily_budget": "5"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    for message in ("price must be above 0", "end date is before the start date", "brand color must be a colour"):
        assert message in html
    assert 'aria-invalid="true"' in html and "a-bad" not in load_campaigns(ch)
    response = client.post("/reports/campaigns?advertiser=shop-a", data={**FORM, "id": "Bad Id!", "csrf_token": token})
    assert response.status_code == 400 and "campaign id must be" in response.get_data(as_text=True)
    # an edit keeps the submitted values too
    save_campaign(ch, Campaign("a-one", "shop-a", price=1.0))
    response = client.post("/reports/campaigns/a-one", data={**FORM, "audience_days": "0", "csrf_token": token})
    assert response.status_code == 400 and "audience days must be between 1 and 400" in response.get_data(as_text=True)
    assert load_campaigns(ch)["a-one"].audience_days == 30


def test_todays_spend_and_share_of_the_budget(page, ch, redis_client):
    from adserver.campaigns.budgets import Budgets

    client, _token = page
    save_campaign(ch, Campaign("a-spend", "shop-a", pricing="cpm", price=2.0, daily_budget=10.0))
    assert Budgets(redis_client).reserve("a-spend", "Asia/Shanghai", 0, 2.5)
    html = client.get("/reports/campaigns?advertiser=shop-a").get_data(as_text=True)
    assert "¥2.50" in html and "25.0%" in html and "¥10.00" in html


@pytest.mark.parametrize("method, path", [
    ("get", "/reports/campaigns?advertiser=shop-b"),
    ("post", "/reports/campaigns?advertiser=shop-b"),
    ("get", "/reports/campaigns/b-camp"),
    ("post", "/reports/campaigns/b-camp"),
    ("post", "/reports/campaigns/b-camp/pause"),
    ("post", "/reports/campaigns/b-camp/resume"),
    ("get", "/reports/campaigns/no-such-campaign"),
    ("post", "/reports/campaigns/no-such-campaign/pause"),
    ("get", "/reports/campaigns?advertiser=no-such-shop"),
])
def test_another_advertisers_campaigns_answer_404_on_every_route(page, ch, method, path):
    client, token = page
    data = {**FORM, "id": "a-steal", "status": "paused", "price": "9", "csrf_token": token}
    response = client.get(path) if method == "get" else client.post(path, data=data)
    assert response.status_code == 404
    assert "B secret" not in response.get_data(as_text=True)
    b = load_campaigns(ch)["b-camp"]
    assert (b.status, b.price, b.advertiser) == ("active", 4.0, "shop-b") and "a-steal" not in load_campaigns(ch)


def test_another_advertisers_id_cannot_be_taken_over(page, ch):
    client, token = page
    response = client.post("/reports/campaigns?advertiser=shop-a", data={**FORM, "id": "b-camp", "csrf_token": token})
    assert response.status_code == 400 and "is taken" in response.get_data(as_text=True)
    assert load_campaigns(ch)["b-camp"].advertiser == "shop-b"


def test_pages_need_a_session_and_link_from_the_dashboard(client, shops):
    response = client.get("/reports/campaigns?advertiser=shop-a")
    assert response.status_code == 302 and "/reports/login" in response.headers["Location"]
    login(client, "carol@agency.example")
    dashboard = client.get(f"/reports/shop-a?{DAY}").get_data(as_text=True)
    assert "/reports/campaigns?advertiser=shop-a" in dashboard
    assert "B secret campaign" in client.get("/reports/campaigns?advertiser=shop-b").get_data(as_text=True)
    assert client.get("/reports/campaigns/b-camp").status_code == 200  # a member of both manages both


# --- API -----------------------------------------------------------------------------------------

@pytest.fixture
def api(client, shops):
    def call(method: str, path: str, token: str = shops["shop-a"], **kwargs):
        return getattr(client, method)(path, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    return call


def test_api_creates_updates_lists_pauses_and_resumes(app, api, ch):
    registry(app).reload()
    body = {"advertiser": "shop-a", "name": "API campaign", "pricing": "cpm", "price": 3, "daily_budget": 20.5,
            "start_date": "2026-03-01", "end_date": None, "cap_per_day": 4}
    response = api("put", "/api/v1/campaigns/a-api", json=body)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["id"], created["advertiser"], created["price"], created["end_date"], created["currency"],
            created["spent_today"], created["budget_used_today"]) == ("a-api", "shop-a", 3.0, None, "CNY", 0.0, 0.0)
    assert registry(app).campaigns["a-api"].cap_per_day == 4

    response = api("put", "/api/v1/campaigns/a-api", json={"price": 3.5, "end_date": "2026-12-31"})
    assert response.status_code == 200
    updated = load_campaigns(ch)["a-api"]
    assert (updated.price, updated.end_date, updated.cap_per_day, updated.name) == (3.5, date(2026, 12, 31), 4,
                                                                                   "API campaign")
    listed = api("get", "/api/v1/campaigns?advertiser=shop-a").get_json()
    assert [c["id"] for c in listed["campaigns"]] == ["a-api"] and listed["currency"] == "CNY"
    assert [c["id"] for c in api("get", "/api/v1/campaigns").get_json()["campaigns"]] == ["a-api"]

    assert api("post", "/api/v1/campaigns/a-api/pause").get_json()["status"] == "paused"
    assert registry(app).campaigns["a-api"].status == "paused"
    assert api("post", "/api/v1/campaigns/a-api/resume").get_json()["status"] == "active"
    assert load_campaigns(ch)["a-api"].status == "active"


@pytest.mark.parametrize("body, field", [
    ({"advertiser": "shop-a", "price": "cheap"}, "price"),
    ({"advertiser": "shop-a", "price": True}, "price"),
    ({"advertiser": "shop-a", "price": 1, "cap_per_day": 1.5}, "cap_per_day"),
    ({"advertiser": "shop-a", "price": 1, "start_date": "01/03/2026"}, "start_date"),
    ({"advertiser": "shop-a", "price": 1, "budget": 5}, "budget"),
    ({"advertiser": "shop-a", "price": -1}, "price"),
    ({"advertiser": "shop-a", "price": 1, "pricing": "cpa"}, "pricing"),
    ({"advertiser": "shop-a", "price": 1, "brand_color": "red"}, "brand_color"),
    ({"price": 1}, "advertiser"),
    ({"advertiser": "Shop A", "price": 1}, "advertiser"),
    ({"advertiser": "shop-a", "id": "other", "price": 1}, "id"),
    ([1, 2], "body"),
])
def test_api_bad_input_is_a_400_naming_the_field(api, ch, body, field):
    response = api("put", "/api/v1/campaigns/a-new", json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == "bad_request" and payload["parameter"] == field, payload
    assert "a-new" not in load_campaigns(ch)


def test_api_bad_json_and_bad_ids(api):
    response = api("put", "/api/v1/campaigns/a-new", data=b'{"price": ', content_type="application/json")
    assert response.status_code == 400 and response.get_json()["parameter"] == "body"
    assert "not valid JSON" in response.get_json()["message"]
    response = api("put", "/api/v1/campaigns/Not_Valid", json={"advertiser": "shop-a", "price": 1})
    assert response.status_code == 400 and response.get_json()["parameter"] == "id"
    response = api("put", "/api/v1/campaigns/a-new", json={"advertiser": "shop-a", "price": -1, "audience_days": 0})
    assert [e["field"] for e in response.get_json()["errors"]] == ["price", "audience_days"]


def test_api_other_tenants(api, shops, ch):
    a, b = shops["shop-a"], shops["shop-b"]
    assert api("put", "/api/v1/campaigns/b-camp", a, json={"price": 99}).status_code == 404
    assert api("put", "/api/v1/campaigns/b-camp", a, json={"advertiser": "shop-a", "price": 99}).status_code == 404
    assert api("post", "/api/v1/campaigns/b-camp/pause", a).status_code == 404
    assert api("post", "/api/v1/campaigns/b-camp/resume", a).status_code == 404
    assert api("post", "/api/v1/campaigns/no-such/pause", a).status_code == 404
    response = api("put", "/api/v1/campaigns/a-new", a, json={"advertiser": "shop-b", "price": 1})
    assert response.status_code == 403 and response.get_json()["parameter"] == "advertiser"
    response = api("get", "/api/v1/campaigns?advertiser=shop-b", a)
    assert response.status_code == 403 and "B secret" not in response.get_data(as_text=True)
    assert api("get", "/api/v1/campaigns?advertiser=shop-a&x=1", a).status_code == 400
    # an update cannot move a campaign to another advertiser
    api("put", "/api/v1/campaigns/a-mine", a, json={"advertiser": "shop-a", "price": 1})
    response = api("put", "/api/v1/campaigns/a-mine", a, json={"advertiser": "shop-b"})
    assert response.status_code == 400 and response.get_json()["parameter"] == "advertiser"
    b_camp = load_campaigns(ch)["b-camp"]
    assert (b_camp.advertiser, b_camp.price, b_camp.status) == ("shop-b", 4.0, "active")
    # B's token manages B's campaign, and not A's
    assert api("post", "/api/v1/campaigns/b-camp/pause", b).get_json()["status"] == "paused"
    assert api("post", "/api/v1/campaigns/a-mine/pause", b).status_code == 404


def test_api_needs_a_token(client, shops):
    assert client.get("/api/v1/campaigns").status_code == 401
    assert client.put("/api/v1/campaigns/a-new", json={"advertiser": "shop-a", "price": 1}).status_code == 401
    assert client.post("/api/v1/campaigns/b-camp/pause").status_code == 401
    login(client, "carol@agency.example")  # a session does not open the API
    assert client.post("/api/v1/campaigns/b-camp/pause").status_code == 401


def test_openapi_documents_the_campaign_api(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert {"get"} <= set(doc["paths"]["/api/v1/campaigns"])
    assert {"put"} <= set(doc["paths"]["/api/v1/campaigns/{id}"])
    assert "/api/v1/campaigns/{id}/pause" in doc["paths"] and "/api/v1/campaigns/{id}/resume" in doc["paths"]
    assert "campaign" in doc["paths"]["/api/v1/reports"]["get"]["parameters"][3]["schema"]["enum"]


# --- Spend in reports ----------------------------------------------------------------------------

def spend_traffic(ch) -> None:
    """Two campaigns' generated traffic, an unpaid one, and invalid traffic that was (wrongly) costed."""
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    common = dict(advertiser="shop", start=start, days=4, catalog=[f"S{i:02d}" for i in range(40)],
                  placements=["feed", "side"], utc_offset_hours=8, visitors=300, ctr_bp=200, click_order_pct=20,
                  view_order_pcm=400)
    synth.generate(ch, synth.Traffic(**common, impressions=4000, seed=3, tag="cpm", campaign="shop-cpm",
                                     pricing="cpm", price=7.5))
    synth.generate(ch, synth.Traffic(**common, impressions=3000, seed=4, tag="cpc", campaign="shop-cpc",
                                     pricing="cpc", price=0.45))
    synth.generate(ch, synth.Traffic(**common, impressions=500, seed=5, tag="house"))
    t = datetime(2026, 3, 2, 12)
    insert(ch, [charged(impression(t, "bot"), "shop-cpm", 0.0075, invalid=1),
                charged(click(t, "bot"), "shop-cpc", 0.45, invalid=1)])


def raw_spend(ch, start: int, end: int) -> float:
    return ch.execute(
        "SELECT sum(cost) FROM events WHERE advertiser = 'shop' AND event IN ('impression', 'click') AND invalid = 0 "
        "AND ts >= toDateTime(%(s)s) AND ts < toDateTime(%(e)s)", {"s": start, "e": end})[0][0]


def spend_snapshot(report) -> list[tuple]:
    return [(r.key, r.impressions, r.clicks, r.visitors, r.conversions, r.revenue,
             None if r.spend is None else round(r.spend, 4), None if r.cost is None else round(r.cost, 4))
            for r in [*report.rows, report.totals]]


def test_pre_aggregated_spend_equals_the_raw_events(any_ch):
    spend_traffic(any_ch)
    save_campaign(any_ch, Campaign("shop-cpm", "shop", pricing="cpm", price=7.5))
    for group_by in ("day", "hour", "placement", "campaign", "sku", "reason"):
        request = ReportRequest("shop", date(2026, 3, 2), date(2026, 3, 3), group_by, "Asia/Shanghai")
        attribution.forget_kept()
        agg, raw = run_report(any_ch, request), run_report(any_ch, request, source="raw")
        assert spend_snapshot(agg) == spend_snapshot(raw), group_by
        assert agg.cost_basis == "charged"
        start, end = request.bounds()
        assert agg.totals.spend == pytest.approx(raw_spend(any_ch, start, end), abs=1e-6)
        assert agg.totals.cost == agg.totals.spend and agg.totals.roas == pytest.approx(
            agg.totals.revenue / agg.totals.spend)
        if group_by in ("sku", "reason"):
            assert {r.spend for r in agg.rows} == {None}
        else:
            assert sum(r.spend for r in agg.rows) == pytest.approx(agg.totals.spend, abs=1e-6)
    by_campaign = {r.key: r for r in run_report(any_ch, ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 4),
                                                                      "campaign", "UTC")).rows}
    assert set(by_campaign) == {"shop-cpm", "shop-cpc", ""}
    assert by_campaign["shop-cpm"].spend == pytest.approx(by_campaign["shop-cpm"].impressions * 7.5 / 1000)
    assert by_campaign["shop-cpc"].spend == pytest.approx(by_campaign["shop-cpc"].clicks * 0.45)
    assert by_campaign[""].spend == 0 and by_campaign["shop-cpm"].conversions is None
    assert by_campaign["shop-cpm"].roas is None


def test_rebuild_keeps_the_spend(any_ch):
    spend_traffic(any_ch)
    request = ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 4), "campaign", "UTC")
    before = spend_snapshot(run_report(any_ch, request))
    rebuild_reports(any_ch)
    assert spend_snapshot(run_report(any_ch, request)) == before


def test_cost_basis_price_without_campaigns_and_charged_with_them(any_ch):
    t = datetime(2026, 3, 10, 12)
    insert(any_ch, [impression(t, "u1"), impression(t, "u2"), click(t, "u1"), purchase(t.replace(hour=13), "u1", "o1",
                                                                                     30.0)])
    day = date(2026, 3, 10)
    request = ReportRequest("shop", day, day)
    attribution.forget_kept()
    priced = run_report(any_ch, request, Price("cpc", 1.5))
    assert (priced.cost_basis, priced.totals.cost, priced.totals.spend) == ("price", 1.5, 0.0)
    assert run_report(any_ch, request).cost_basis is None
    save_campaign(any_ch, Campaign("shop-c", "shop", price=0.5))  # campaigns: their (zero) spend is the cost
    charged_report = run_report(any_ch, request, Price("cpc", 1.5))
    assert (charged_report.cost_basis, charged_report.totals.cost, charged_report.totals.roas) == ("charged", 0.0, None)


@pytest.fixture
def spend_api(client, tenants, ch):
    t = at()
    insert(ch, [charged(impression(t, "a-u1", advertiser="shop-a"), "a-cpm", 0.01),
                charged(impression(t, "a-u2", advertiser="shop-a"), "a-cpc", 0.0),
                charged(click(t, "a-u2", advertiser="shop-a"), "a-cpc", 0.6),
                charged(click(t, "a-u2", advertiser="shop-a"), "a-cpc", 0.6, invalid=1),
                purchase(t.replace(hour=13), "a-u2", "o1", 12.0, advertiser="shop-a")])
    save_campaign(ch, Campaign("a-cpc", "shop-a", pricing="cpc", price=0.6))
    set_price(ch, "shop-a", "cpm", 1000.0)  # ignored: the advertiser has campaigns
    return lambda query: client.get("/api/v1/reports?" + query,
                                    headers={"Authorization": f"Bearer {tenants['shop-a']}"})


def test_spend_and_campaign_breakdown_in_the_api_and_csv(spend_api):
    body = spend_api(f"{DAY}&group_by=campaign").get_json()
    assert body["cost_basis"] == "charged" and body["totals"]["spend"] == 0.61 == body["totals"]["cost"]
    assert body["spend_currency"] == "CNY"
    assert body["totals"]["roas"] == pytest.approx(12.0 / 0.61, abs=1e-6)
    rows = {r["key"]: r for r in body["rows"]}
    assert (rows["a-cpc"]["spend"], rows["a-cpc"]["clicks"], rows["a-cpc"]["invalid_clicks"]) == (0.6, 1, 1)
    assert rows["a-cpm"]["spend"] == 0.01 and rows["a-cpm"]["conversions"] is None
    assert spend_api(f"{DAY}&group_by=placement").get_json()["rows"][0]["spend"] == 0.61
    assert spend_api(f"{DAY}&group_by=sku").get_json()["rows"][0]["spend"] is None
    lines = list(csv.reader(io.StringIO(spend_api(f"{DAY}&group_by=campaign&format=csv&sort=spend").get_data(
        as_text=True))))
    header = lines[0]
    assert header[0] == "campaign" and "spend" in header and header.index("spend") < header.index("cost")
    assert [line[0] for line in lines[1:]] == ["a-cpc", "a-cpm"]
    assert lines[1][header.index("spend")] == "0.6" and lines[1][header.index("conversions")] == ""


def test_dashboard_shows_spend_and_the_campaign_breakdown(client, spend_api):
    login(client, "alice@a.example")
    html = client.get(f"/reports/shop-a?{DAY}&group_by=campaign").get_data(as_text=True)
    assert "By campaign" in html and "a-cpc" in html and "Spend" in html and "¥0.61" in html
    assert "what your campaigns were charged" in html
    csv_body = client.get(f"/reports/shop-a/report.csv?{DAY}&group_by=campaign").get_data(as_text=True)
    assert csv_body.startswith("campaign,") and "a-cpm" in csv_body
