"""``create-campaign`` and ``list-campaigns`` (what campaigns do in the auction: tests/adserver/serving)."""

from __future__ import annotations

import pytest

HEADER = "id\tadvertiser\tstatus\tpricing\tprice\tdaily_budget\tstart\tend\tcap/day\tmin_gap_s"


@pytest.fixture
def shops(runner) -> None:
    for shop in ("shop-a", "shop-b"):
        code, out = runner("create-advertiser", shop)
        assert code == 0, out


def test_create_then_change_only_the_options_given(runner, shops, settings):
    code, out = runner("create-campaign", "spring", "--advertiser", "shop-a", "--pricing", "cpm", "--price", "4.5",
                       "--daily-budget", "200", "--start", "2026-03-01", "--end", "2026-05-31", "--cap-per-day", "3")
    assert code == 0, out
    assert out == (f"campaign spring of shop-a: active, CPM 4.5 {settings.currency}, 200/day, "
                   "2026-03-01 to 2026-05-31\n")
    code, out = runner("create-campaign", "spring", "--status", "paused", "--daily-budget", "0")
    assert code == 0, out
    assert out == f"campaign spring of shop-a: paused, CPM 4.5 {settings.currency}, no daily budget, " \
                  "2026-03-01 to 2026-05-31\n"
    code, out = runner("list-campaigns")
    assert code == 0, out
    assert out.splitlines() == [HEADER, "spring\tshop-a\tpaused\tcpm\t4.5\t0\t2026-03-01\t2026-05-31\t3\t0"]


def test_list_campaigns_of_one_advertiser(runner, shops):
    runner("create-campaign", "a1", "--advertiser", "shop-a", "--price", "1")
    runner("create-campaign", "b1", "--advertiser", "shop-b", "--price", "1")
    code, out = runner("list-campaigns", "--advertiser", "shop-b")
    assert code == 0, out
    assert [line.split("\t")[0] for line in out.splitlines()] == ["id", "b1"]
    assert runner("list-campaigns", "--advertiser", "nobody") == (0, HEADER + "\n")


def test_a_campaign_stays_with_its_advertiser(runner, shops):
    runner("create-campaign", "a1", "--advertiser", "shop-a", "--price", "1")
    code, out = runner("create-campaign", "a1", "--advertiser", "shop-b")
    assert code == 2 and out == "error: campaign 'a1' belongs to 'shop-a'\n"
    code, out = runner("create-campaign", "new", "--price", "1")
    assert code == 2 and out == "error: campaign 'new' does not exist yet: --advertiser is required\n"


@pytest.mark.parametrize("options,message", [
    (("--start", "2026-02-30"), "not a date (YYYY-MM-DD): '2026-02-30'"),
    (("--end", "tomorrow"), "not a date (YYYY-MM-DD): 'tomorrow'"),
    (("--price", "cheap"), "'cheap' is not a valid float"),
    (("--pricing", "cpa"), "'cpa' is not one of 'cpc', 'cpm'"),
    (("--cap-per-day", "1e3"), "'1e3' is not a valid integer"),
])
def test_bad_option_values_are_usage_errors(runner, shops, ch, options, message):
    code, out = runner("create-campaign", "c1", "--advertiser", "shop-a", *options)
    assert code == 2 and message in out, out
    assert ch.execute("SELECT count() FROM campaigns") == [(0,)]
