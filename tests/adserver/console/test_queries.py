"""The pre-aggregated report tables give exactly what the raw events give, on both backends and on the
ClickHouse cluster (each shard aggregates its own events; reports read through Distributed tables)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from adserver.console import attribution, queries
from adserver.console.maintenance import rebuild_reports
from adserver.console.report import ReportRequest, run_report
from adserver.demo import synth
from tests.adserver.console.conftest import click, impression, insert, purchase
from tests.cluster.conftest import cluster, cluster_any_ch, cluster_ch  # noqa: F401 - fixtures of the cluster case
from tests.conftest import truncate
from tracker import schema

GROUPS = ["day", "hour", "placement", "sku", "reason"]


@pytest.fixture(params=["server", "chdb", "cluster"])
def any_ch(request):
    """Both backends and the cluster (skipped without one), emptied."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_any_ch")
    ch = request.getfixturevalue("server_ch" if request.param == "server" else "chdb_ch")
    truncate(ch)
    return ch


def generate(ch, days: int = 6, impressions: int = 12_000) -> None:
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    synth.generate(ch, synth.Traffic(
        advertiser="shop", start=start, days=days, impressions=impressions,
        catalog=[f"S{i:03d}" for i in range(80)], placements=["feed", "side", "news"], utc_offset_hours=8,
        visitors=400, seed=7, ctr_bp=150, click_order_pct=20, view_order_pcm=400,
    ), chunk=5000)


def snapshot(report) -> list[tuple]:
    return [(r.key, r.impressions, r.clicks, r.visitors, r.addressable, round(r.share, 6), r.conversions,
             r.post_click_conversions, r.post_view_conversions, round(r.revenue, 4)) for r in [*report.rows, report.totals]]


@pytest.mark.parametrize("timezone", ["Asia/Shanghai", "Asia/Kolkata"])
def test_pre_aggregated_reports_equal_the_raw_event_queries(any_ch, timezone):
    generate(any_ch)
    counts = dict(any_ch.execute("SELECT event, count() FROM events GROUP BY event"))
    assert counts["impression"] == 12_000 and counts["click"] > 100 and counts["purchase"] > 20
    for group_by in GROUPS:
        # from the 2nd: ranges that start and end inside UTC days, so both table grains are read
        request = ReportRequest("shop", date(2026, 3, 2), date(2026, 3, 5), group_by, timezone)
        attribution.forget_kept()
        agg, raw = run_report(any_ch, request), run_report(any_ch, request, source="raw")
        assert snapshot(agg) == snapshot(raw), group_by
        assert agg.totals.conversions > 5 and agg.totals.impressions > 5000


def test_kept_resolutions_give_the_same_conversions(any_ch):
    generate(any_ch, days=3, impressions=6000)
    start, end = ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 3)).bounds()
    args = (any_ch, "shop", start, end, "placement", "UTC", 30 * 86400, 86400)
    attribution.forget_kept()
    assert any_ch.execute("SELECT count() FROM report_order_touches") == [(0,)]
    kept_now = attribution.keep_resolutions(any_ch, "shop", start, end)
    assert kept_now > 0 and any_ch.execute("SELECT count() FROM report_order_touches") == [(kept_now,)]
    assert attribution.keep_resolutions(any_ch, "shop", start, end) == 0  # nothing left to keep
    assert attribution.conversions(*args) == attribution.conversions(*args, source="raw")


def test_orders_are_resolved_in_batches(any_ch, monkeypatch):
    monkeypatch.setattr(attribution, "BATCH_SIZE", 7)
    generate(any_ch, days=2, impressions=5000)
    start, end = ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 2)).bounds()
    args = (any_ch, "shop", start, end, "sku", "UTC", 30 * 86400, 86400)
    monkeypatch.setattr(attribution, "_maybe_keep", lambda *a: None)  # all on the fly, 7 orders at a time
    on_the_fly = attribution.conversions(*args)
    assert sum(c.conversions for c in on_the_fly.values()) > 7
    assert on_the_fly == attribution.conversions(*args, source="raw")


def test_recent_orders_are_counted_but_not_kept(any_ch):
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    insert(any_ch, [click(now.replace(hour=0, minute=0, second=0), "u1"), purchase(now, "u1", "fresh", 5.0)])
    today = now.date()
    attribution.forget_kept()
    report = run_report(any_ch, ReportRequest("shop", today, today))
    assert report.totals.conversions == 1
    assert any_ch.execute("SELECT count() FROM report_order_touches") == [(0,)]


def test_rebuild_recomputes_the_same_tables(any_ch):
    generate(any_ch, days=2, impressions=4000)
    request = ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 2), "reason", "Asia/Shanghai")
    before = snapshot(run_report(any_ch, request))
    schema.truncate_stored(any_ch, "report_hours")
    assert snapshot(run_report(any_ch, request)) != before
    assert rebuild_reports(any_ch) == 1
    assert snapshot(run_report(any_ch, request)) == before


def test_day_split_covers_the_range_exactly():
    start, end = ReportRequest("shop", date(2026, 3, 2), date(2026, 3, 5), timezone="Asia/Shanghai").bounds()
    split = queries.day_split(start, end)
    assert (split["day_lo"] - start, end - split["day_hi"]) == (8 * 3600, 16 * 3600)
    assert (split["day_lo_date"], split["day_hi_date"]) == (date(2026, 3, 2), date(2026, 3, 5))
    one_day = ReportRequest("shop", date(2026, 3, 2), date(2026, 3, 2), timezone="Asia/Shanghai").bounds()
    split = queries.day_split(*one_day)
    assert split["day_lo"] == split["day_hi"] == one_day[1]  # no whole UTC day: hours only


def test_addressable_share_visitors_and_product_impressions(any_ch, report):
    t = datetime(2026, 3, 10, 12)
    insert(any_ch, [
        impression(t, "u1", ["A", "B", "C", "D"], ["recent", "similar", "popular", "popular"]),
        impression(t, "u1", ["A", "B"], ["recent", "popular"]),
        impression(t, "u2", ["A", "B"], ["recent", "popular"]),
        impression(t, "", ["C", "D"], ["popular", "popular"]),
        click(t, "u1", "B", "popular"),
    ])
    r = report(date(2026, 3, 10), date(2026, 3, 10))
    assert (r.totals.impressions, r.totals.clicks, r.totals.visitors, r.totals.addressable) == (4, 1, 2, 3)
    assert r.totals.ctr == 0.25 and r.totals.addressable_share == 0.75
    sku = {row.key: row for row in report(date(2026, 3, 10), date(2026, 3, 10), group_by="sku").rows}
    assert (sku["A"].impressions, sku["B"].clicks, sku["C"].impressions, sku["D"].addressable) == (3, 1, 2, 1)
    assert sku["A"].share == pytest.approx(0.25 + 0.5 + 0.5) and sku["A"].visitors is None
    reason = {row.key: row for row in report(date(2026, 3, 10), date(2026, 3, 10), group_by="reason").rows}
    assert (reason["popular"].impressions, reason["popular"].clicks, reason["popular"].visitors) == (6, 1, 2)
    assert sum(row.share for row in reason.values()) == pytest.approx(4.0)  # product shares add up to the ads


def test_cost_and_roas_from_the_price(any_ch, report):
    from adserver.console.prices import Price

    t = datetime(2026, 3, 10, 12)
    insert(any_ch, [impression(t, "u1", ["A", "B"]), impression(t, "u2", ["A", "B"]), click(t, "u1", "A"),
                    purchase(t.replace(hour=13), "u1", "o1", 30.0, ["A"])])
    day = date(2026, 3, 10)
    cpc = report(day, day, price=Price("cpc", 1.5))
    assert (cpc.totals.cost, cpc.totals.roas) == (1.5, 20.0)
    cpm = report(day, day, group_by="sku", price=Price("cpm", 1000.0))
    assert cpm.totals.cost == 2.0  # two ads at 1000 per 1000
    assert {r.key: r.cost for r in cpm.rows} == {"A": 1.0, "B": 1.0}  # each of the two products pays half an ad
    assert report(day, day).totals.cost is None


def test_keeping_is_bounded_per_report_and_keep_all_finishes(any_ch):
    generate(any_ch, days=2, impressions=4000)
    start, end = ReportRequest("shop", date(2026, 3, 1), date(2026, 3, 2)).bounds()
    assert attribution.keep_resolutions(any_ch, "shop", start, end, limit=5) == 5
    rest = attribution.keep_all(any_ch)
    orders = any_ch.execute("SELECT uniqExact(order_id) FROM events WHERE event = 'purchase' AND uid != ''")[0][0]
    assert rest > 5 and 5 + rest == orders == any_ch.execute("SELECT count() FROM report_order_touches FINAL")[0][0]
    assert attribution.keep_all(any_ch) == 0
