"""Operator commands: create-user (password from stdin), remove-user, set-price, create-advertiser
--timezone, rebuild-reports and the demo marketer."""

from __future__ import annotations

from datetime import date

from adserver.cli.commands import build_parser
from adserver.console.accounts import authenticate, user_advertisers
from adserver.console.prices import Price, get_price
from adserver.console.report import ReportRequest, run_report


def test_create_user_reads_the_password_from_stdin(runner, ch):
    assert runner("create-advertiser", "shop-a", "--timezone", "Asia/Tokyo")[0] == 0
    assert runner("create-advertiser", "shop-b")[0] == 0
    code, out = runner("create-user", "Ann@Shop.Example", "--advertiser", "shop-a", "--advertiser", "shop-b",
                       stdin="a good long password\n")
    assert code == 0, out
    assert "a good long password" not in out
    assert authenticate(ch, "ann@shop.example", "a good long password") is not None
    assert user_advertisers(ch, "ann@shop.example") == ["shop-a", "shop-b"]
    assert ch.execute("SELECT timezone FROM advertisers FINAL WHERE id = 'shop-a'") == [("Asia/Tokyo",)]


def test_create_user_refuses_short_passwords_unknown_advertisers_and_argv_passwords(runner, ch):
    runner("create-advertiser", "shop-a")
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "shop-a", stdin="short\n")
    assert code == 1 and "too short" in out
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "nope", stdin="a good long password\n")
    assert code == 1 and "unknown advertiser" in out
    assert ch.execute("SELECT count() FROM users") == [(0,)]
    options = {a for action in build_parser()._subparsers._group_actions[0].choices["create-user"]._actions
               for a in action.option_strings}
    assert not any("pass" in o for o in options)


def test_unknown_time_zone_is_refused(runner):
    code, out = runner("create-advertiser", "shop-a", "--timezone", "Mars/Olympus")
    assert code == 1 and "time zone" in out


def test_remove_user_and_memberships(runner, ch):
    runner("create-advertiser", "shop-a")
    runner("create-advertiser", "shop-b")
    runner("create-user", "ann@shop.example", "--advertiser", "shop-a", "--advertiser", "shop-b",
           stdin="a good long password\n")
    assert runner("remove-user", "ann@shop.example", "--advertiser", "shop-b")[0] == 0
    assert user_advertisers(ch, "ann@shop.example") == ["shop-a"]
    assert runner("remove-user", "ann@shop.example")[0] == 0
    assert authenticate(ch, "ann@shop.example", "a good long password") is None
    assert runner("remove-user", "nobody@shop.example")[0] == 1


def test_set_price(runner, ch):
    runner("create-advertiser", "shop-a")
    assert runner("set-price", "shop-a", "--cpc", "0.35")[0] == 0
    assert get_price(ch, "shop-a") == Price("cpc", 0.35)
    assert runner("set-price", "shop-a", "--cpm", "12")[0] == 0
    assert get_price(ch, "shop-a") == Price("cpm", 12.0)
    assert runner("set-price", "shop-a", "--cpm", "-1")[0] == 1
    assert runner("set-price", "shop-a", "--none")[0] == 0
    assert get_price(ch, "shop-a") is None
    assert runner("set-price", "nope", "--cpc", "1")[0] == 1


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


def test_demo_without_reports_adds_no_traffic(runner, ch):
    assert runner("demo", "--base-url", "https://store.example")[0] == 0
    assert ch.execute("SELECT count() FROM events") == [(0,)]
    assert ch.execute("SELECT count() FROM users") == [(0,)]


def test_rebuild_reports_command(runner, ch):
    runner("demo", "--base-url", "https://store.example", "--reports")
    before = ch.execute("SELECT sumMerge(impressions), sumMerge(clicks) FROM report_ads_hourly")
    ch.execute("TRUNCATE TABLE report_ads_hourly")
    code, out = runner("rebuild-reports")
    assert code == 0, out
    assert ch.execute("SELECT sumMerge(impressions), sumMerge(clicks) FROM report_ads_hourly") == before
