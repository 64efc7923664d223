"""The auction on real servers: which campaign wins a slot, budgets, pacing, caps, fatigue, fallbacks.

Two stores compete: the demo (campaign ``demo-retargeting``, CPC 0.60) and ``shop-b`` (four products),
whose campaign each test sets up. Without a trained CTR model the prior applies: 0.3 % for a fresh
interest, fading with its age, and a fifth of that for a visitor who never saw the store.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import date, timedelta

import pytest

from adserver.campaigns.budgets import Budgets, local_day, paced_allowance
from adserver.campaigns.campaign import Campaign
from adserver.catalog.product import Product
from adserver.catalog.registry import Placement
from adserver.learning.similar import ModelCache
from adserver.serving import auction
from models.artifact import save_artifact
from models.recommenders import AdServerRecommender
from tests.adserver.conftest import product, visitor_uid
from tests.adserver.redis_modes import MODES
from tests.adserver.serving.test_ads import ad, hit, skus, view
from tests.conftest import drain
from tests.models.test_policy import HISTORIES, shop_log
from tracker.stream import Frequency, Interest

SHOP_B = [product("B1"), product("B2"), product("B3"), product("B4")]


@pytest.fixture
def shop_b(create_advertiser, import_feed):
    create_advertiser("shop-b")
    code, out = import_feed("shop-b", SHOP_B)
    assert code == 0, out


@pytest.fixture
def campaign(runner, app):
    """``campaign(id, advertiser, *options)``: create or change a campaign through the CLI, then reload."""

    def make(campaign_id: str, *options: str, advertiser: str | None = None) -> None:
        args = ["create-campaign", campaign_id, *(["--advertiser", advertiser] if advertiser else []), *options]
        code, out = runner(*args)
        assert code == 0, out
        app.extensions["adserver"].registry.reload()

    return make


def candidates(decision: dict) -> dict[str, dict]:
    return {c["campaign"] or c["advertiser"]: c for c in decision["auction"]["candidates"]}


# --- choice among advertisers ---------------------------------------------------------------------


def test_higher_ecpm_wins_and_the_json_shows_the_auction(app, demo_loaded, shop_b, campaign):
    campaign("b-cpm", "--pricing", "cpm", "--price", "4", advertiser="shop-b")
    visitor = app.test_client()
    view(visitor, "D1004")
    view(visitor, "B1", advertiser="shop-b")
    decision = ad(visitor)
    assert decision["advertiser"] == "shop-b" and decision["campaign"] == "b-cpm"
    assert decision["path"] == "personalised" and skus(decision)[0] == "B1"
    auction_info = decision["auction"]
    assert auction_info["winner"] == "b-cpm" and auction_info["floor"] == pytest.approx(0.3)
    assert auction_info["charged"] == pytest.approx(0.004)  # CPM 4 per thousand: one impression
    found = candidates(decision)
    assert found["b-cpm"]["ecpm"] == pytest.approx(4.0) and found["b-cpm"]["status"] == "won"
    demo = found["demo-retargeting"]
    assert demo["status"] == "outbid" and demo["personalised"] is True
    assert demo["ecpm"] == pytest.approx(0.6 * demo["pctr"] * 1000, rel=1e-3)
    assert 0 < demo["pctr"] <= 0.003

    campaign("b-cpm", "--price", "1")  # now below the demo's 1.8: the demo wins
    decision = ad(visitor)
    assert decision["campaign"] == "demo-retargeting" and skus(decision)[0] == "D1004"


def test_equal_prices_the_fresher_interest_wins(app, demo_loaded, shop_b, campaign):
    campaign("b-cpc", "--pricing", "cpc", "--price", "0.6", advertiser="shop-b")
    visitor = app.test_client()
    view(visitor, "B1", advertiser="shop-b")
    view(visitor, "D1012")
    assert ad(visitor)["advertiser"] == "demo"
    view(visitor, "B3", advertiser="shop-b")
    decision = ad(visitor)
    assert decision["advertiser"] == "shop-b" and skus(decision)[:2] == ["B3", "B1"]


def test_floor_excludes_cheap_campaigns(app, demo_loaded, runner, campaign):
    code, out = runner("create-placement", "pricey", "--site", "news.example", "--advertiser", "demo",
                       "--floor", "5")
    assert code == 0, out
    app.extensions["adserver"].registry.reload()
    visitor = app.test_client()
    view(visitor, "D1004")
    decision = ad(visitor, placement="pricey")
    assert candidates(decision)["demo-retargeting"]["status"] == "below_floor"
    assert decision["auction"]["winner"] is None
    assert decision["path"] == "fallback" and decision["products"]  # unpaid house fill, never empty
    assert decision["auction"]["charged"] == 0

    campaign("demo-retargeting", "--price", "3")  # 3 x 0.3 % x 1000 = 9 >= 5
    decision = ad(visitor, placement="pricey")
    assert decision["campaign"] == "demo-retargeting" and decision["path"] == "personalised"


@pytest.mark.parametrize("change,status", [
    (("--status", "paused"), "not_running"),
    (("--start", "2020-01-01", "--end", "2020-12-31"), "not_running"),
    (("--start", (date.today() + timedelta(days=3)).isoformat()), "not_running"),
    (("--audience-days", "1"), None),  # a fresh view is within one day: still shown
])
def test_paused_ended_and_future_campaigns_do_not_run(app, demo_loaded, campaign, change, status):
    campaign("demo-retargeting", *change)
    visitor = app.test_client()
    view(visitor, "D1004")
    decision = ad(visitor)
    if status is None:
        assert decision["campaign"] == "demo-retargeting"
        return
    assert candidates(decision)["demo-retargeting"]["status"] == status
    assert decision["campaign"] is None and decision["path"] == "fallback" and decision["products"]


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)  # budgets and caps hold on the cluster too
def test_recent_buyers_are_excluded_when_the_campaign_says_so(app, demo_loaded, campaign):
    campaign("demo-retargeting", "--exclude-buyers-days", "7")
    visitor = app.test_client()
    view(visitor, "D1004")
    assert ad(visitor)["campaign"] == "demo-retargeting"
    hit(visitor, "a=demo&e=purchase&sku=D1004&order=o1&value=10&currency=CNY")
    decision = ad(visitor)
    assert candidates(decision)["demo-retargeting"]["status"] == "recent_buyer"


# --- budgets and pacing ---------------------------------------------------------------------------


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)  # budgets and caps hold on the cluster too
def test_cpm_budget_is_never_overshot(app, demo_loaded, campaign):
    # 1 per impression (CPM 1000): the spend counter starts 2.5 below what pacing allows by now.
    campaign("demo-retargeting", "--pricing", "cpm", "--price", "1000", "--daily-budget", "100")
    svc = app.extensions["adserver"]
    day, fraction = local_day(time.time(), "UTC")
    allowance = paced_allowance(100, fraction) / 1e6
    svc.budgets.client.set(f"spend:{{demo-retargeting}}:{day}", int(round((allowance - 2.5) * 1e6)))
    won = 0
    for _ in range(5):
        visitor = app.test_client()
        view(visitor, "D1004")
        decision = ad(visitor)
        if decision["campaign"] == "demo-retargeting":
            won += 1
        else:
            assert candidates(decision)["demo-retargeting"]["status"] == "budget"
    assert won == 2
    assert svc.budgets.spent("demo-retargeting", "UTC") <= allowance + 1e-9


def test_pacing_spreads_a_budget_over_a_simulated_day(redis_client):
    """10 requests a minute all day for a budget worth 1/10 of them: spend follows the clock."""
    budgets = Budgets(redis_client)
    start = 1_764_201_600.0  # 2025-11-27 00:00 UTC
    budget, price = 144.0, 0.1  # 1440 impressions of 14400 requests
    served_by_hour = [0] * 24
    for minute in range(24 * 60):
        for k in range(10):
            now = start + minute * 60 + k * 6
            if budgets.reserve("c1", "UTC", budget, price, now=now):
                served_by_hour[minute // 60] += 1
    spent = budgets.spent("c1", "UTC", now=start + 86399)
    assert budget - price - 1e-9 <= spent <= budget  # all but the last moment's share, never more
    cumulative = 0.0
    for hour, served in enumerate(served_by_hour):
        cumulative += served * price
        assert cumulative <= budget * min(1.0, (hour + 1) / 24 + 1 / 24) + 1e-9, hour
    assert min(served_by_hour[1:]) >= 50  # every hour gets its share, not just the morning
    assert served_by_hour[0] <= 120  # the first hour: its own share plus the hour allowed ahead


def test_cpc_clicks_are_charged_once_and_never_beyond_the_budget(app, demo_loaded, campaign, writer, ch):
    campaign("demo-retargeting", "--daily-budget", "1.0")  # CPC 0.60: one click and part of a second
    svc = app.extensions["adserver"]
    served = []
    for _ in range(3):  # served while nothing is spent yet (pacing allows part of the budget now)
        visitor = app.test_client()
        view(visitor, "D1004")
        decision = ad(visitor)
        assert decision["campaign"] == "demo-retargeting"
        served.append((visitor, decision["products"][0]["click_url"].replace("http://localhost", "")))
    charged = []
    for visitor, url in served:
        for _ in range(2):  # a double click is charged once
            assert visitor.get(url).status_code == 302
        charged.append(svc.budgets.spent("demo-retargeting", "UTC"))
    assert charged == [pytest.approx(0.6), pytest.approx(1.0), pytest.approx(1.0)]
    drain(writer)
    costs = ch.execute("SELECT cost FROM events WHERE event = 'click' AND campaign = 'demo-retargeting' "
                       "ORDER BY ts")
    assert sorted(round(c[0], 6) for c in costs) == [0.0, 0.0, 0.0, 0.0, 0.4, 0.6]
    # Spent: the next request finds no budget left and the campaign sits out.
    visitor = app.test_client()
    view(visitor, "D1004")
    assert candidates(ad(visitor))["demo-retargeting"]["status"] == "budget"


# --- frequency caps and fatigue -------------------------------------------------------------------


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)  # budgets and caps hold on the cluster too
def test_daily_cap_per_visitor(app, demo_loaded, campaign):
    campaign("demo-retargeting", "--cap-per-day", "2")
    visitor = app.test_client()
    view(visitor, "D1004")
    assert [ad(visitor)["campaign"] for _ in range(2)] == ["demo-retargeting"] * 2
    decision = ad(visitor)
    assert candidates(decision)["demo-retargeting"]["status"] == "capped"
    assert decision["path"] == "fallback" and decision["products"]  # house fill
    other = app.test_client()  # another visitor is not capped
    view(other, "D1004")
    assert ad(other)["campaign"] == "demo-retargeting"


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)  # budgets and caps hold on the cluster too
def test_minimum_gap_between_impressions(app, demo_loaded, campaign):
    campaign("demo-retargeting", "--min-gap-seconds", "60")
    visitor = app.test_client()
    view(visitor, "D1004")
    assert ad(visitor)["campaign"] == "demo-retargeting"
    assert candidates(ad(visitor))["demo-retargeting"]["status"] == "min_gap"
    # A minute later (the last impression's time moved back instead of waiting): shown again.
    key = app.extensions["adserver"].stream.prefix(visitor_uid(visitor)) + ":fq"
    redis = app.extensions["adserver"].stream.client
    redis.hset(key, "t:demo-retargeting", repr(float(redis.hget(key, "t:demo-retargeting")) - 61))
    assert ad(visitor)["campaign"] == "demo-retargeting"


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)  # budgets and caps hold on the cluster too
def test_fatigue_after_unclicked_impressions_and_a_click_resets_it(app, demo_loaded):
    svc = app.extensions["adserver"]
    svc.settings = dataclasses.replace(svc.settings, fatigue_free=2, fatigue_decay=0.0)
    visitor = app.test_client()
    view(visitor, "D1004")
    shown = [ad(visitor) for _ in range(3)]
    assert [d["campaign"] for d in shown[:2]] == ["demo-retargeting"] * 2
    assert candidates(shown[2])["demo-retargeting"]["status"] == "fatigued"
    url = shown[0]["products"][0]["click_url"].replace("http://localhost", "")
    assert visitor.get(url).status_code == 302
    assert ad(visitor)["campaign"] == "demo-retargeting"


def test_fatigue_curve():
    assert [auction.fatigue(n) for n in range(3)] == [1.0] * 3  # three unclicked impressions are free
    assert auction.fatigue(3) == pytest.approx(0.6)
    assert auction.fatigue(5) == pytest.approx(0.6 ** 3)


def test_fatigue_is_a_probability_not_a_wall():
    """Over many draws a fatigued advertiser still shows in about ``fatigue(n)`` of the requests."""
    interest = Interest("shop", time.time() - 60, ["A"], 1)
    campaign = Campaign("c", "shop", price=1.0)
    sources = auction.Sources(
        campaigns=lambda a: [campaign] if a == "shop" else [], advertisers=lambda: ["shop"],
        timezone=lambda a: "UTC", catalog=lambda a: {}, popular=lambda a: [], model=lambda a: None,
        predict=lambda *a: 0.01, reserve=lambda c, amount: True, local_date=lambda a, now: date.today(),
    )
    draws = iter([i / 1000 for i in range(1000)])
    sources.rng = lambda: next(draws)
    ctx = auction.AuctionContext("p", Placement("p", "site"), True, "300x250", 4, "desktop", time.time(), 12,
                                 [interest], Frequency(unclicked={"shop": 5}))
    statuses = [auction.candidates(ctx, sources)[0].status for _ in range(1000)]
    assert statuses.count("eligible") == pytest.approx(1000 * 0.6 ** 3, abs=1)


# --- fallbacks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,reason", [
    ("no-cookie", "no_cookie"), ("optout", "opted_out"), ("gpc", "do_not_track"), ("no-interest", "no_interest"),
])
def test_fallbacks_say_why(app, demo_loaded, kind, reason):
    visitor = app.test_client()
    headers = {}
    if kind != "no-cookie":
        view(visitor, "D1004") if kind != "no-interest" else hit(visitor, "a=demo&e=view_home")
    if kind == "optout":
        visitor.set_cookie("optout", "1")
    if kind == "gpc":
        headers = {"Sec-GPC": "1"}
    decision = ad(visitor, headers=headers)
    assert decision["path"] == "fallback" and decision["fallback_reason"] == reason
    assert decision["products"] and all(p["reason"] == "popular" for p in decision["products"])
    html = visitor.get("/ad?p=demo-feed&size=300x250", headers=headers)
    assert html.status_code == 200 and "/c/" in html.get_data(as_text=True)


def test_unknown_placement_gets_unpaid_non_personalised_ads(app, demo_loaded):
    visitor = app.test_client()
    view(visitor, "D1004")
    decision = ad(visitor, placement="nobody-registered-this")
    assert decision["path"] == "fallback" and decision["fallback_reason"] == "unknown_placement"
    assert decision["campaign"] is None and decision["auction"]["charged"] == 0
    assert decision["products"] and all(p["reason"] == "popular" for p in decision["products"])


# --- the products of the unit ----------------------------------------------------------------------


@pytest.mark.parametrize("history", [h for h in HISTORIES if h and "unknown" not in h])
@pytest.mark.parametrize("count", [1, 4, 6, 12])
def test_served_unit_is_what_evaluate_scores(tmp_path, history, count):
    """Same model, same popular products, no catalog filter in effect (every product in stock, none bought,
    no item groups): the auction's unit lists exactly the products ``evaluate``'s adserver method ranks."""
    rec = AdServerRecommender()
    rec.fit(shop_log())
    save_artifact(tmp_path / "shop", rec.model)
    models = ModelCache(tmp_path)  # what serving processes load
    products = {sku: Product(sku, f"Product {sku}", f"https://shop.example/p/{sku}") for sku in rec.ranked}
    recent = rec.profile(history)
    sources = auction.Sources(
        campaigns=lambda a: [], advertisers=lambda: ["shop"], timezone=lambda a: "UTC",
        catalog=lambda a: products, popular=lambda a: [], model=models.get,
        predict=lambda *a: 0.0, reserve=lambda c, amount: True, local_date=lambda a, now: date.today(),
    )
    now = time.time()
    ctx = auction.AuctionContext("p", Placement("p", "site"), True, "300x250", count, "desktop", now, 12,
                                 [Interest("shop", now - 60, recent, len(recent))])
    decision, _ = auction.run(ctx, sources)
    assert decision.path == "personalised" and decision.advertiser == "shop"
    assert [slot.product.sku for slot in decision.slots] == rec.recommend(history, count)
    assert len(decision.slots) == count


# --- campaign management ---------------------------------------------------------------------------


@pytest.mark.parametrize("options,message", [
    (("--price", "0"), "price must be above 0"),
    (("--price", "-3"), "price must be above 0"),
    (("--price", "nan"), "price must be above 0"),
    (("--brand-color", "red;}</style><script>"), "brand color must be a colour"),
    (("--logo-url", "javascript:alert(1)"), "logo url must be"),
    (("--logo-url", 'https://x.example/a".png'), "logo url must be"),
    (("--start", "2026-12-01", "--end", "2026-11-01"), "end date is before the start date"),
    (("--cap-per-day", "-1"), "cap per day must be between"),
])
def test_bad_campaigns_are_refused_with_a_clear_error(runner, demo_loaded, options, message):
    code, out = runner("create-campaign", "demo-retargeting", *options)
    assert code != 0 and message in out, out
    code, out = runner("list-campaigns")
    assert "demo-retargeting\tdemo\tactive\tcpc\t0.6\t" in out  # the stored campaign is unchanged


def test_new_campaign_needs_a_known_advertiser(runner, demo_loaded):
    code, out = runner("create-campaign", "lost", "--advertiser", "nobody", "--price", "1")
    assert code != 0 and "unknown advertiser" in out
    code, out = runner("create-campaign", "lost", "--price", "1")
    assert code != 0 and "--advertiser is required" in out


def test_bots_see_ads_but_nobody_pays(app, demo_loaded, campaign):
    campaign("demo-retargeting", "--pricing", "cpm", "--price", "5")
    visitor = app.test_client()
    view(visitor, "D1004")
    bot = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    decision = ad(visitor, headers=bot)
    assert decision["campaign"] == "demo-retargeting" and decision["auction"]["charged"] == 0
    assert app.extensions["adserver"].budgets.spent("demo-retargeting", "UTC") == 0
    assert ad(visitor)["auction"]["charged"] == pytest.approx(0.005)  # a person: charged
    assert app.extensions["adserver"].budgets.spent("demo-retargeting", "UTC") == pytest.approx(0.005)


def test_placements_accept_only_their_sizes(app, demo_loaded):
    visitor = app.test_client()
    for size in ("728x90", "320x50"):
        assert visitor.get(f"/ad.json?p=demo-banner&size={size}").status_code == 200
    response = visitor.get("/ad.json?p=demo-banner&size=300x250")
    assert response.status_code == 400
    assert response.get_json()["message"] == "size 300x250 is not allowed on placement demo-banner (allowed: 728x90, 320x50)"
    assert visitor.get("/ad?p=demo-banner&size=160x600").status_code == 400
    assert visitor.get("/ad.json?p=demo-feed&size=468x60").status_code == 200  # the feed takes any size
