"""Attribution computed by hand, on both ClickHouse backends (server 18.16 and chdb).

Defaults: post-click window 30 days, post-view 1 day; a click beats any impression; the last touch
of the winning kind wins; an order counts once whatever the number of pixels.
"""

from __future__ import annotations

from datetime import date

import pytest

from tests.adserver.console.conftest import T0, at, click, impression, insert, purchase

DAY = 86400


def by_key(report):
    return {r.key: r for r in report.rows}


def test_click_then_purchase_inside_the_window_is_a_post_click_conversion(any_ch, report):
    insert(any_ch, [
        impression(at(days=-10, seconds=-5), "u1", ["A", "B"], ["recent", "popular"], "feed"),
        click(at(days=-10), "u1", "A", "recent", "feed"),
        purchase(at(), "u1", "o1", 120.0, ["A"]),
    ])
    r = report(group_by="placement")
    assert (r.totals.conversions, r.totals.post_click_conversions, r.totals.post_view_conversions) == (1, 1, 0)
    assert r.totals.revenue == 120.0
    assert by_key(r)["feed"].conversions == 1
    sku = by_key(report(group_by="sku"))
    assert sku["A"].conversions == 1 and sku["A"].revenue == 120.0
    assert by_key(report(group_by="reason"))["recent"].conversions == 1
    day = by_key(report(group_by="day"))
    assert day["2026-03-10"].conversions == 1  # the purchase's day
    assert "2026-02-28" not in day and day["2026-03-01"].clicks == 0  # the click was before the range


def test_click_outside_the_window_does_not_count_unless_the_window_is_longer(any_ch, report):
    insert(any_ch, [
        click(at(days=-31), "u1", "A", "recent", "feed"),
        purchase(at(), "u1", "o1", 50.0),
    ])
    assert report().totals.conversions == 0
    longer = report(click_window=40 * DAY)
    assert (longer.totals.conversions, longer.totals.post_click_conversions) == (1, 1)


def test_window_edges_are_inclusive(any_ch, report):
    insert(any_ch, [
        click(at(seconds=-30 * DAY), "u1"), purchase(at(), "u1", "exact"),
        click(at(seconds=-30 * DAY - 1), "u2"), purchase(at(), "u2", "one-second-late"),
        impression(at(seconds=-DAY), "u3"), purchase(at(), "u3", "view-exact"),
        impression(at(seconds=-DAY - 1), "u4"), purchase(at(), "u4", "view-late"),
        click(at(), "u5"), purchase(at(), "u5", "same-second"),
    ])
    r = report()
    assert (r.totals.conversions, r.totals.post_click_conversions, r.totals.post_view_conversions) == (3, 2, 1)


def test_view_only_inside_and_outside_the_post_view_window(any_ch, report):
    insert(any_ch, [
        impression(at(hours=-2), "u1", ["A", "B", "C"], ["recent", "similar", "popular"], "side"),
        purchase(at(), "u1", "o1", 80.0, ["C", "Z"]),
        impression(at(hours=-25), "u2", ["A", "B"], ["recent", "popular"], "side"),
        purchase(at(), "u2", "o2", 70.0, ["A"]),
    ])
    r = report(group_by="placement")
    assert (r.totals.conversions, r.totals.post_click_conversions, r.totals.post_view_conversions) == (1, 0, 1)
    assert r.totals.revenue == 80.0
    # post-view: the first product of the ad that the order contains, and its reason
    assert by_key(report(group_by="sku"))["C"].conversions == 1
    assert by_key(report(group_by="reason"))["popular"].conversions == 1
    assert report(view_window=0).totals.conversions == 0
    assert report(view_window=2 * DAY).totals.conversions == 2


def test_post_view_order_without_a_shown_product_goes_to_the_ads_first_product(any_ch, report):
    insert(any_ch, [impression(at(hours=-1), "u1", ["A", "B"], ["similar", "popular"]),
                    purchase(at(), "u1", "o1", 10.0, ["Q"])])
    assert set(by_key(report(group_by="sku"))) == {"A", "B"}
    assert by_key(report(group_by="sku"))["A"].conversions == 1
    assert by_key(report(group_by="reason"))["similar"].conversions == 1


def test_click_wins_over_a_later_view(any_ch, report):
    insert(any_ch, [
        click(at(days=-5), "u1", "A", "recent", "feed"),
        impression(at(hours=-1), "u1", ["B"], ["popular"], "side"),
        purchase(at(), "u1", "o1", 99.0, ["B"]),
    ])
    r = report(group_by="placement")
    assert r.totals.post_click_conversions == 1 and r.totals.post_view_conversions == 0
    rows = by_key(r)
    assert rows["feed"].conversions == 1 and rows["side"].conversions == 0


def test_two_clicks_the_last_one_wins(any_ch, report):
    insert(any_ch, [
        click(at(days=-3), "u1", "A", "recent", "feed"),
        click(at(days=-1), "u1", "B", "similar", "side"),
        purchase(at(), "u1", "o1", 40.0, ["A", "B"]),
    ])
    rows = by_key(report(group_by="placement"))
    assert rows["side"].conversions == 1 and rows["feed"].conversions == 0
    assert by_key(report(group_by="sku"))["B"].conversions == 1
    assert by_key(report(group_by="reason"))["similar"].conversions == 1
    assert report().totals.conversions == 1


def test_purchase_before_the_click_is_not_attributed(any_ch, report):
    insert(any_ch, [
        purchase(at(), "u1", "o1", 40.0),
        click(at(seconds=1), "u1", "A"),
        impression(at(minutes=5), "u1"),
    ])
    r = report()
    assert r.totals.conversions == 0 and r.totals.clicks == 1 and r.totals.impressions == 1


def test_duplicate_order_pixel_counts_once_with_the_first_pixels_value(any_ch, report):
    insert(any_ch, [
        click(at(hours=-1), "u1", "A"),
        purchase(at(), "u1", "o1", 100.0),
        purchase(at(seconds=20), "u1", "o1", 100.0),
        purchase(at(minutes=1), "u1", "o1", 250.0),  # a reload with another value: still the first one
    ])
    r = report()
    assert (r.totals.conversions, r.totals.revenue) == (1, 100.0)


def test_a_duplicate_pixel_in_a_later_period_is_not_counted_again(any_ch, report):
    insert(any_ch, [
        click(at(days=-20), "u1"),
        purchase(at(days=-12), "u1", "o1", 60.0),  # 2026-02-26
        purchase(at(), "u1", "o1", 60.0),  # the same order again on 2026-03-10
    ])
    assert report(date(2026, 3, 1), date(2026, 3, 31)).totals.conversions == 0
    assert report(date(2026, 2, 1), date(2026, 2, 28)).totals.conversions == 1


def test_touches_of_other_visitors_and_advertisers_do_not_count(any_ch, report):
    insert(any_ch, [
        click(at(hours=-1), "u2", "A"),
        click(at(hours=-1), "u1", "A", advertiser="other"),
        impression(at(hours=-1), "", ["A"], ["popular"]),  # no cookie: no visitor to match
        purchase(at(), "u1", "o1", 10.0),
    ])
    assert report().totals.conversions == 0


def test_time_zone_day_boundary(any_ch, report):
    # 15:30 UTC is 23:30 in Shanghai (UTC+8), 16:30 UTC is 00:30 the next day there.
    evening, after_midnight = T0.replace(hour=15, minute=30), T0.replace(hour=16, minute=30)
    insert(any_ch, [
        impression(evening, "u1", ["A"], ["recent"]),
        click(evening.replace(minute=31), "u1", "A"),
        purchase(after_midnight, "u1", "o1", 30.0),
    ])
    shanghai = by_key(report(date(2026, 3, 10), date(2026, 3, 11), timezone="Asia/Shanghai"))
    assert (shanghai["2026-03-10"].impressions, shanghai["2026-03-10"].clicks) == (1, 1)
    assert (shanghai["2026-03-10"].conversions, shanghai["2026-03-11"].conversions) == (0, 1)
    utc = by_key(report(date(2026, 3, 10), date(2026, 3, 11), timezone="UTC"))
    assert (utc["2026-03-10"].impressions, utc["2026-03-10"].conversions, utc["2026-03-11"].conversions) == (1, 1, 0)
    hours = by_key(report(date(2026, 3, 10), date(2026, 3, 11), group_by="hour", timezone="Asia/Shanghai"))
    assert len(hours) == 48
    assert hours["2026-03-10 23:00:00"].impressions == 1
    assert hours["2026-03-11 00:00:00"].conversions == 1
    # a one-day report in Shanghai on the 11th sees the conversion, not the impression
    r = report(date(2026, 3, 11), date(2026, 3, 11), timezone="Asia/Shanghai")
    assert (r.totals.impressions, r.totals.conversions) == (0, 1)


@pytest.mark.parametrize("group_by", ["day", "hour", "placement", "sku", "reason"])
def test_every_breakdown_adds_up_to_the_totals(any_ch, report, group_by):
    insert(any_ch, [
        click(at(days=-2), "u1", "A", "recent", "feed"), purchase(at(), "u1", "o1", 10.0, ["A"]),
        impression(at(hours=-3), "u2", ["B", "C"], ["similar", "popular"], "side"),
        purchase(at(hours=-1), "u2", "o2", 20.0, ["C"]),
        click(at(days=-1), "u3", "D", "popular", "side"), purchase(at(days=1), "u3", "o3", 30.0, ["D"]),
    ])
    r = report(date(2026, 3, 8), date(2026, 3, 12), group_by=group_by)
    assert sum(row.conversions for row in r.rows) == r.totals.conversions == 3
    assert sum(row.revenue for row in r.rows) == r.totals.revenue == 60.0
