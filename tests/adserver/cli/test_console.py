"""Console commands: create-user (password from stdin), remove-user, set-price, rebuild-reports."""

from __future__ import annotations

import pytest

from adserver.cli.console import create_user
from adserver.console.accounts import authenticate, user_advertisers
from adserver.console.prices import Price, get_price


@pytest.fixture
def shops(runner) -> None:
    for shop in ("shop-a", "shop-b"):
        code, out = runner("create-advertiser", shop)
        assert code == 0, out


def test_create_user_reads_the_password_from_stdin(runner, ch, shops):
    code, out = runner("create-user", "Ann@Shop.Example", "--advertiser", "shop-a", "--advertiser", "shop-b",
                       stdin="a good long password\n")
    assert code == 0, out
    assert out == "user ann@shop.example can see: shop-a, shop-b\n"
    assert authenticate(ch, "ann@shop.example", "a good long password") is not None
    assert user_advertisers(ch, "ann@shop.example") == ["shop-a", "shop-b"]


def test_create_user_refuses_short_passwords_unknown_advertisers_and_argv_passwords(runner, ch, shops):
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "shop-a", stdin="short\n")
    assert code == 1 and "too short" in out
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "nope", stdin="a good long password\n")
    assert code == 1 and "unknown advertiser" in out
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "shop-a", "--password", "a good long one")
    assert code == 2 and "No such option '--password'" in out
    assert not any("pass" in option for param in create_user.params for option in param.opts)
    assert ch.execute("SELECT count() FROM users") == [(0,)]


@pytest.mark.parametrize("stdin", [None, ""])
def test_create_user_without_a_password_on_stdin(runner, ch, shops, stdin):
    code, out = runner("create-user", "ann@shop.example", "--advertiser", "shop-a", stdin=stdin)
    assert code == 1 and out == "error (password_missing): no password on standard input\n"
    assert ch.execute("SELECT count() FROM users") == [(0,)]


def test_remove_user_and_memberships(runner, ch, shops):
    runner("create-user", "ann@shop.example", "--advertiser", "shop-a", "--advertiser", "shop-b",
           stdin="a good long password\n")
    assert runner("remove-user", "ann@shop.example", "--advertiser", "shop-b") == (
        0, "user ann@shop.example can no longer see: shop-b\n")
    assert user_advertisers(ch, "ann@shop.example") == ["shop-a"]
    assert runner("remove-user", "Ann@Shop.Example") == (0, "user ann@shop.example disabled\n")
    assert authenticate(ch, "ann@shop.example", "a good long password") is None
    assert runner("remove-user", "nobody@shop.example") == (1, "no such user nobody@shop.example\n")


def test_set_price(runner, ch, shops):
    assert runner("set-price", "shop-a", "--cpc", "0.35") == (0, "shop-a: CPC 0.35\n")
    assert get_price(ch, "shop-a") == Price("cpc", 0.35)
    assert runner("set-price", "shop-a", "--cpm", "12")[0] == 0
    assert get_price(ch, "shop-a") == Price("cpm", 12.0)
    assert runner("set-price", "shop-a", "--cpm", "-1")[0] == 1
    assert runner("set-price", "shop-a", "--none") == (0, "shop-a: no price (reports show no cost or ROAS)\n")
    assert get_price(ch, "shop-a") is None
    assert runner("set-price", "nope", "--cpc", "1")[0] == 1


@pytest.mark.parametrize("options", [(), ("--cpc", "1", "--cpm", "2"), ("--cpc", "1", "--none")])
def test_set_price_takes_exactly_one_price(runner, ch, shops, options):
    code, out = runner("set-price", "shop-a", *options)
    assert code == 2 and "give exactly one of --cpc, --cpm or --none" in out
    assert get_price(ch, "shop-a") is None


@pytest.mark.slow
@pytest.mark.settings_env(ADSERVER_DEMO="1")
def test_rebuild_reports_command(runner, ch):
    runner("demo", "--base-url", "https://store.example", "--reports")
    before = ch.execute("SELECT sumMerge(impressions), sumMerge(clicks) FROM report_hours WHERE dim = 'placement'")
    ch.execute("TRUNCATE TABLE report_hours")
    code, out = runner("rebuild-reports")
    assert code == 0, out
    assert out.splitlines()[-1].endswith("month(s) of events")
    assert ch.execute("SELECT sumMerge(impressions), sumMerge(clicks) FROM report_hours WHERE dim = 'placement'") == before
