"""Invalid traffic on real servers: bots, prefetches, link previewers and click floods are answered
normally but stored with ``invalid = 1``, never feed a profile, and reports count them apart."""

from __future__ import annotations

import csv
import io
from datetime import date
from urllib.parse import urlsplit

import pytest
import redis

from adserver.console.report import ReportRequest, run_report
from adserver.tracking import traffic
from tests.adserver.conftest import visitor_uid
from tests.adserver.console import conftest as report_fixtures
from tests.adserver.console.conftest import PASSWORD, at, click, impression, insert, login, purchase
from tests.conftest import drain
from tracker import schema
from tracker.settings import SettingsError, load_settings

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
          "Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# The report tests' fixtures (their conftest does not reach this folder).
report = report_fixtures.report
tenants = report_fixtures.tenants

# (user agent, verdict). HeadlessChrome is automation (scrapers, prerender services, monitoring),
# not a person: a bot. curl and python-requests are scripts: bots. In-app browsers are people.
USER_AGENTS = [
    ("Googlebot", GOOGLEBOT, "bot"),
    ("bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot"),
    ("AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot"),
    ("Baiduspider", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", "bot"),
    ("Bytespider", "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
                   "(compatible; Bytespider; spider-feedback@bytedance.com)", "bot"),
    ("curl", "curl/8.5.0", "bot"),
    ("python-requests", "python-requests/2.32.3", "bot"),
    ("HeadlessChrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "HeadlessChrome/124.0.6367.29 Safari/537.36", "bot"),
    ("facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "previewer"),
    ("Slackbot-LinkExpanding", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "previewer"),
    ("Twitterbot", "Twitterbot/1.0", "previewer"),
    ("WhatsApp", "WhatsApp/2.23.20.0 A", "previewer"),
    ("TelegramBot", "TelegramBot (like TwitterBot)", "previewer"),
    ("Discordbot", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "previewer"),
    ("SkypeUriPreview", "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 "
                        "skype-url-preview@microsoft.com", "previewer"),
    ("LinkedInBot", "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
     "previewer"),
    ("iMessage", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
                 "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0", "previewer"),
    ("Bluesky (not in crawlerdetect)", "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
     "previewer"),
    ("Mastodon (not in crawlerdetect)", "Mastodon/4.2.0 (http.rb/5.1.1; +https://mastodon.social/)", "previewer"),
    ("empty", "", "no_user_agent"),
    ("blank", "   ", "no_user_agent"),
    ("Chrome", CHROME, ""),
    ("Safari iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                   "Version/17.4 Mobile/15E148 Safari/604.1", ""),
    ("Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", ""),
    ("Edge", CHROME + " Edg/124.0.2478.51", ""),
    ("WeChat iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                   "Mobile/15E148 MicroMessenger/8.0.49(0x18003130) NetType/WIFI Language/zh_CN", ""),
    ("WeChat Android", "Mozilla/5.0 (Linux; Android 13; V2148A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
                       "(KHTML, like Gecko) Version/4.0 Chrome/111.0.5563.116 Mobile Safari/537.36 XWEB/1110005 "
                       "MMWEBSDK/20230805 MMWEBID/1234 MicroMessenger/8.0.42.2460(0x28002A35) WeChat/arm64 Weixin "
                       "NetType/WIFI Language/zh_CN ABI/arm64", ""),
    ("Weibo", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Mobile/15E148 Weibo (iPhone15,2__weibo__14.4.0__iphone__os17.4)", ""),
    ("Facebook in-app", "Mozilla/5.0 (iPhone; CPU iPhone OS 14_7_1 like Mac OS X) AppleWebKit/605.1.15 "
                        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/333.0]", ""),
    ("Douyin in-app", "Mozilla/5.0 (Linux; Android 12; ALN-AL00 Build/HUAWEIALN-AL00; wv) AppleWebKit/537.36 "
                      "(KHTML, like Gecko) Version/4.0 Chrome/99.0.4844.88 Mobile Safari/537.36 aweme_230400 "
                      "JsSdk/1.0 NetType/WIFI BytedanceWebview/d8a21c6", ""),
]


@pytest.mark.parametrize(("user_agent", "verdict"), [(ua, v) for _, ua, v in USER_AGENTS],
                         ids=[name for name, _, _ in USER_AGENTS])
def test_user_agent_verdicts(user_agent, verdict):
    assert traffic.user_agent_verdict_uncached(user_agent) == verdict
    assert traffic.classify({"User-Agent": user_agent}, "198.51.100.1") == verdict


@pytest.mark.parametrize(("headers", "verdict"), [
    ({"Sec-Purpose": "prefetch"}, "prefetch"),
    ({"Sec-Purpose": "prefetch;prerender"}, "prefetch"),
    ({"Sec-Purpose": "prefetch; anonymous-client-ip"}, "prefetch"),
    ({"sec-purpose": "Prefetch"}, "prefetch"),
    ({"Purpose": "prefetch"}, "prefetch"),
    ({"X-Moz": "prefetch"}, "prefetch"),
    ({"X-Purpose": "preview"}, "prefetch"),
    ({"Purpose": "something-else"}, ""),
    ({"Sec-Fetch-Dest": "iframe"}, ""),
])
def test_prefetch_headers(headers, verdict):
    assert traffic.classify({"User-Agent": CHROME, **headers}, "198.51.100.1") == verdict


def test_verdicts_are_cached_in_a_bounded_lru():
    traffic.user_agent_verdict.cache_clear()
    for _ in range(3):
        traffic.user_agent_verdict(CHROME)
    info = traffic.user_agent_verdict.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (2, 1, traffic.UA_CACHE_SIZE)
    long_ua = CHROME + " x" * 10_000  # cut before matching: bounded work per request
    assert traffic.user_agent_verdict(long_ua) == ""


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one subscriber's network counts as one address
    ("::ffff:203.0.113.9", "203.0.113.9"),
    ("not an address", "not an address"),
    (None, "unknown"),
])
def test_flood_address_keys(address, key):
    assert traffic.address_key(address) == key


def test_click_limits_are_settings_validated_at_start(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": "k" * 32}
    defaults = load_settings(env)
    assert (defaults.click_limit_visitor, defaults.click_limit_address) == (10, 30)
    custom = load_settings({**env, "ADSERVER_CLICK_LIMIT_VISITOR": "3", "ADSERVER_CLICK_LIMIT_ADDRESS": "7"})
    assert (custom.click_limit_visitor, custom.click_limit_address) == (3, 7)
    for name in ("ADSERVER_CLICK_LIMIT_VISITOR", "ADSERVER_CLICK_LIMIT_ADDRESS"):
        for value in ("many", "0", "-1", "1.5"):
            with pytest.raises(SettingsError, match=name):
                load_settings({**env, name: value})


def test_flood_counter_windows_and_redis_errors(redis_client):
    flood = traffic.ClickFlood(lambda: redis_client, per_visitor=2, per_address=3)
    now = 1_800_000_000.0
    assert [flood.over_limit("u1", "203.0.113.1", now) for _ in range(3)] == [False, False, True]
    assert flood.over_limit("u2", "203.0.113.1", now) is True  # the address's fourth click this minute
    assert flood.over_limit("u2", "203.0.113.2", now) is False
    assert flood.over_limit("u1", "203.0.113.1", now + 60) is False  # a new window
    assert 60 < redis_client.ttl(f"cf:{{u1}}:{int(now // 60)}") <= 120
    errors = []
    broken = traffic.ClickFlood(lambda: redis.Redis(port=1, socket_connect_timeout=0.2), 1, 1,
                                on_error=lambda: errors.append(1))
    assert [broken.over_limit("u1", "203.0.113.1", now) for _ in range(3)] == [False, False, False]
    assert len(errors) == 3


# --- through the app ------------------------------------------------------------------------------


def _events(ch, event: str) -> list[tuple]:
    """(uid, invalid, invalid_reason) of the stored events, in the order they were recorded."""
    rows = ch.execute("SELECT stream_id, uid, invalid, invalid_reason FROM events WHERE event = %(e)s", {"e": event})
    return [r[1:] for r in sorted(rows, key=lambda r: tuple(int(p) for p in r[0].split("-")))]


def test_bot_ad_request_renders_but_its_impression_is_invalid(app, demo_loaded, writer, ch):
    bot = app.test_client()
    html = bot.get("/ad?p=demo-feed&size=300x250", headers={"User-Agent": GOOGLEBOT})
    assert html.status_code == 200 and "/c/" in html.get_data(as_text=True)
    unit = bot.get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME, "Sec-Purpose": "prefetch"})
    assert unit.status_code == 200 and unit.get_json()["products"]
    person = app.test_client().get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME})
    assert person.status_code == 200
    drain(writer)
    assert sorted((r[1], r[2]) for r in _events(ch, "impression")) == [(0, ""), (1, "bot"), (1, "prefetch")]


def test_bot_pixel_is_stored_invalid_and_leaves_profile_and_popularity_alone(app, demo_loaded, writer, ch,
                                                                             redis_client):
    visitor = app.test_client()
    assert visitor.get("/px.gif?a=demo&e=view_item&sku=D1004", headers={"User-Agent": CHROME}).status_code == 200
    uid = visitor_uid(visitor)
    profile_before = {k: redis_client.zrange(k, 0, -1, withscores=True) for k in redis_client.keys(f"p:*}}:{uid}:*")
                      if redis_client.type(k) == b"zset"}
    popular_before = {k: redis_client.zrange(k, 0, -1, withscores=True) for k in redis_client.keys("pop:*")}
    # The same browser cookie, but a crawler's user agent (or a previewer, or no user agent).
    for ua in (GOOGLEBOT, "Twitterbot/1.0", ""):
        response = visitor.get("/px.gif?a=demo&e=view_item&sku=D1012", headers={"User-Agent": ua})
        assert response.status_code == 200 and response.mimetype == "image/gif"
    profile_after = {k: redis_client.zrange(k, 0, -1, withscores=True) for k in redis_client.keys(f"p:*}}:{uid}:*")
                     if redis_client.type(k) == b"zset"}
    assert profile_after == profile_before
    assert {k: redis_client.zrange(k, 0, -1, withscores=True) for k in redis_client.keys("pop:*")} == popular_before
    drain(writer)
    rows = ch.execute("SELECT stream_id, sku, invalid, invalid_reason FROM events WHERE event = 'view_item'")
    rows = [r[1:] for r in sorted(rows, key=lambda r: tuple(int(p) for p in r[0].split("-")))]
    assert rows == [("D1004", 0, ""), ("D1012", 1, "bot"), ("D1012", 1, "previewer"), ("D1012", 1, "no_user_agent")]


def test_click_flood_from_one_cookie(app, demo_loaded, writer, ch, settings):
    visitor = app.test_client()
    visitor.get("/px.gif?a=demo&e=view_item&sku=D1004", headers={"User-Agent": CHROME})
    uid = visitor_uid(visitor)
    items = visitor.get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME}).get_json()["products"]
    path = urlsplit(items[0]["click_url"]).path
    # Different addresses, so only the visitor's limit (10 a minute) applies.
    responses = [visitor.get(path, headers={"User-Agent": CHROME}, environ_base={"REMOTE_ADDR": f"198.51.100.{i}"})
                 for i in range(50)]
    assert {r.status_code for r in responses} == {302}
    assert len({r.headers["Location"].split("&adclid=", 1)[0] for r in responses}) == 1  # each its own click id
    drain(writer)
    clicks = _events(ch, "click")
    assert len(clicks) == 50 and {r[0] for r in clicks} == {uid}
    limit = settings.click_limit_visitor
    # A new minute may start during the burst; then a few more are valid, never fewer.
    valid = [r for r in clicks if r[1] == 0]
    assert limit <= len(valid) <= 2 * limit
    assert clicks[:limit] == [(uid, 0, "")] * limit
    assert {r[2] for r in clicks if r[1]} == {"click_flood"}


def test_click_flood_from_one_address_without_cookies(app, demo_loaded, writer, ch, settings):
    path = urlsplit(app.test_client().get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME})
                    .get_json()["products"][0]["click_url"]).path
    # Fresh clients (no cookie) behind one address: the address's limit (30 a minute) applies.
    responses = [app.test_client().get(path, headers={"User-Agent": CHROME},
                                       environ_base={"REMOTE_ADDR": "203.0.113.50"}) for _ in range(40)]
    assert {r.status_code for r in responses} == {302}
    drain(writer)
    clicks = _events(ch, "click")
    assert len(clicks) == 40
    assert clicks[:settings.click_limit_address] == [("", 0, "")] * settings.click_limit_address
    assert settings.click_limit_address <= sum(1 for r in clicks if r[1] == 0) <= 2 * settings.click_limit_address


def test_bot_and_prefetched_clicks_redirect_and_are_invalid(app, demo_loaded, writer, ch):
    client = app.test_client()
    path = urlsplit(client.get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME})
                    .get_json()["products"][0]["click_url"]).path
    for headers in ({"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"},
                    {"User-Agent": CHROME, "Sec-Purpose": "prefetch"}, {"User-Agent": "curl/8.5.0"}):
        assert client.get(path, headers=headers).status_code == 302
    drain(writer)
    assert [(r[1], r[2]) for r in _events(ch, "click")] == [(1, "previewer"), (1, "prefetch"), (1, "bot")]


def test_redis_unavailable_never_breaks_a_click(app, demo_loaded, settings):
    client = app.test_client()
    path = urlsplit(client.get("/ad.json?p=demo-feed&size=300x250", headers={"User-Agent": CHROME})
                    .get_json()["products"][0]["click_url"]).path
    svc = app.extensions["adserver"]
    for _ in range(settings.click_limit_address + 5):
        svc.breaker.failure()  # as after a Redis timeout: Redis is skipped for a moment
        with app.test_request_context(path, headers={"User-Agent": CHROME}):
            assert traffic.request_verdict(None, click=True) == ""  # not counted, so never a flood
        response = client.get(path, headers={"User-Agent": CHROME})
        assert response.status_code == 302  # the click itself waits in the local spool


# --- reports --------------------------------------------------------------------------------------


def invalid(row: tuple, reason: str) -> tuple:
    """A report test row (tests/adserver/console/conftest.py) flagged invalid."""
    invalid_at = schema.EVENTS_COLUMNS.index("invalid")
    return (*row[:invalid_at], 1, reason, *row[invalid_at + 2:])


def _seed_with_invalid(ch, advertiser: str = "shop") -> None:
    """Valid: 10 ads, 2 clicks, 1 order. Invalid: 5 ads (bot) and 3 clicks (flood), one of them the buyer's
    last click before the order; 1 invalid impression on another placement."""
    rows = [impression(at(minutes=i), f"u{i}", ["A1", "B2"], ["recent", "popular"], "feed", advertiser)
            for i in range(10)]
    rows += [click(at(minutes=i, seconds=30), f"u{i}", "A1", "recent", "feed", advertiser) for i in range(2)]
    rows += [invalid(impression(at(minutes=20 + i), f"bot{i}", ["A1", "B2"], ["recent", "popular"], "feed",
                                advertiser), "bot") for i in range(5)]
    rows += [invalid(click(at(minutes=40, seconds=i), "u5", "B2", "popular", "feed", advertiser), "click_flood")
             for i in range(3)]
    rows.append(invalid(impression(at(minutes=50), "bot9", ["A1"], ["similar"], "side", advertiser), "bot"))
    rows.append(purchase(at(hours=1), "u5", "o-1", 50.0, ["B2"], advertiser))  # u5's only valid touch: a view
    insert(ch, rows)


def test_reports_count_valid_traffic_and_show_the_invalid_share(any_ch, report):
    _seed_with_invalid(any_ch)
    for source in ("agg", "raw"):
        for group_by in ("day", "placement", "sku", "reason"):
            result = report(date(2026, 3, 10), date(2026, 3, 10), group_by, source=source)
            totals = result.totals
            assert (totals.impressions, totals.clicks, totals.visitors) == (10, 2, 10), (source, group_by)
            assert (totals.invalid_impressions, totals.invalid_clicks) == (6, 3)
            assert totals.invalid_impression_share == pytest.approx(6 / 16)
            assert totals.invalid_click_share == pytest.approx(3 / 5)
            # The order's last click was a flood: it is attributed to the valid view before it.
            assert (totals.conversions, totals.post_click_conversions, totals.post_view_conversions) == (1, 0, 1)
            rows = {r.key: r for r in result.rows}
            if group_by == "placement":
                assert (rows["feed"].impressions, rows["feed"].invalid_impressions) == (10, 5)
                assert (rows["side"].impressions, rows["side"].invalid_impressions) == (0, 1)
            if group_by == "sku":
                assert {k: r.impressions for k, r in rows.items()} == {"A1": 10, "B2": 10}
                assert rows["A1"].invalid_impressions is None and rows["A1"].invalid_click_share is None
            if group_by == "reason":
                assert {k: r.clicks for k, r in rows.items() if r.clicks} == {"recent": 2}


def test_rebuild_reports_gives_the_same_totals(any_ch):
    from adserver.console.maintenance import rebuild_reports

    _seed_with_invalid(any_ch)
    tables = ("report_hours", "report_days")
    counts = ("sumMerge(impressions), sumMerge(clicks), sumMerge(invalid_impressions), sumMerge(invalid_clicks), "
              "uniqHLL12Merge(visitors)")
    live = {t: any_ch.execute(f"SELECT {counts} FROM {t} WHERE dim = 'placement'") for t in tables}
    others = ("SELECT (SELECT count() FROM report_touchpoints), "
              "(SELECT sumMerge(impressions) FROM report_hours WHERE dim = 'reason')")
    live_others = any_ch.execute(others)
    request = ReportRequest("shop", date(2026, 3, 10), date(2026, 3, 10), "placement")
    live_report = run_report(any_ch, request)
    assert live == {t: [(10, 2, 6, 3, 10)] for t in tables}
    assert live_others == [(12, 20)]  # 10 valid ads + 2 valid clicks; 2 products x 10 ads
    assert rebuild_reports(any_ch) == 1
    assert {t: any_ch.execute(f"SELECT {counts} FROM {t} WHERE dim = 'placement'") for t in tables} == live
    assert any_ch.execute(others) == live_others
    rebuilt = run_report(any_ch, request)
    assert rebuilt.totals == live_report.totals
    assert [r.as_dict() for r in rebuilt.rows] == [r.as_dict() for r in live_report.rows]


@pytest.fixture
def shop_a(ch, tenants):
    _seed_with_invalid(ch, "shop-a")
    return tenants


def test_dashboard_api_and_csv_show_the_invalid_share(client, shop_a):
    day = "from=2026-03-10&to=2026-03-10"
    headers = {"Authorization": f"Bearer {shop_a['shop-a']}"}
    body = client.get(f"/api/v1/reports?{day}&group_by=placement", headers=headers).get_json()
    assert (body["totals"]["impressions"], body["totals"]["clicks"]) == (10, 2)
    assert (body["totals"]["invalid_impressions"], body["totals"]["invalid_clicks"]) == (6, 3)
    assert body["totals"]["invalid_impression_share"] == 0.375 and body["totals"]["invalid_click_share"] == 0.6
    rows = {r["key"]: r for r in body["rows"]}
    assert (rows["side"]["impressions"], rows["side"]["invalid_impressions"], rows["side"]["ctr"]) == (0, 1, None)

    response = client.get(f"/api/v1/reports?{day}&group_by=placement&format=csv", headers=headers)
    lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    feed = next(r for r in lines if r["placement"] == "feed")
    assert (feed["impressions"], feed["clicks"], feed["invalid_impressions"], feed["invalid_clicks"]) == (
        "10", "2", "5", "3")
    assert (feed["invalid_impression_share"], feed["invalid_click_share"]) == ("0.333333", "0.6")
    by_sku = client.get(f"/api/v1/reports?{day}&group_by=sku&format=csv", headers=headers).get_data(as_text=True)
    assert all(r["invalid_impressions"] == "" for r in csv.DictReader(io.StringIO(by_sku)))

    assert login(client, "alice@a.example", PASSWORD).status_code == 302
    page = client.get(f"/reports/shop-a?{day}&group_by=placement").get_data(as_text=True)
    assert "Invalid traffic: 6 impressions (37.5%), 3 clicks (60.0%)" in page
    dashboard_csv = client.get(f"/reports/shop-a/report.csv?{day}&group_by=day").get_data(as_text=True)
    (only,) = list(csv.DictReader(io.StringIO(dashboard_csv)))
    assert (only["day"], only["impressions"], only["invalid_impressions"], only["invalid_clicks"]) == (
        "2026-03-10", "10", "6", "3")

