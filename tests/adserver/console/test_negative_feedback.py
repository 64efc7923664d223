"""Negative feedback in reports: "not interested" answers and their rate beside the CTR, per campaign,
placement and product, from the pre-aggregated tables and (the same) from raw events."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from adserver.console import queries
from adserver.console.export import to_csv
from adserver.console.report import ReportRequest, run_report
from tests.adserver.serving.test_ads import ad
from tests.adserver.serving.test_feedback import CHROME, answer, hide_token
from tests.conftest import drain


@pytest.fixture
def traffic(app, demo_loaded, writer):
    """Four demo ads to four readers; two of them answer "not interested" (a product, then a store)."""
    hidden = []
    for i in range(4):
        reader = app.test_client()
        reader.environ_base["HTTP_USER_AGENT"] = CHROME
        decision = ad(reader, "300x250")
        assert decision["advertiser"] == "demo" and decision["campaign"] == "demo-retargeting"
        if i < 2:
            sku = decision["products"][0]["sku"]
            assert answer(reader, hide_token(decision), "product" if i == 0 else "store", sku,
                          beacon="1").status_code == 204
            hidden.append(sku)
    drain(writer)
    return hidden


def _window() -> tuple[int, int]:
    now = int(time.time())
    return now // 3600 * 3600 - 3600, now // 3600 * 3600 + 3600


@pytest.mark.parametrize("source", ["agg", "raw"])
def test_hides_per_campaign_placement_and_product(ch, traffic, source):
    start, end = _window()
    stats = {group: queries.ad_stats(ch, "demo", start, end, group, "UTC", source)
             for group in ("total", "campaign", "placement", "sku", "reason")}
    assert stats["total"]["total"].hides == 2 and stats["total"]["total"].impressions == 4
    assert stats["campaign"]["demo-retargeting"].hides == 2
    assert stats["placement"]["demo-feed"].hides == 2
    by_sku = {sku: s.hides for sku, s in stats["sku"].items() if s.hides}
    expected: dict[str, int] = {}
    for sku in traffic:
        expected[sku] = expected.get(sku, 0) + 1
    assert by_sku == expected
    assert {s.hides for s in stats["reason"].values()} == {None}  # answers are not about a reason
    assert set(stats["reason"]) <= {"recent", "similar", "popular"}


def test_report_rows_show_the_negative_feedback_rate_beside_the_ctr(ch, traffic):
    today = datetime.now(UTC).date()
    report = run_report(ch, ReportRequest("demo", today, today, group_by="placement"))
    [row] = [r for r in report.rows if r.key == "demo-feed"]
    assert (row.impressions, row.hides, row.hide_rate) == (4, 2, 0.5)
    assert report.totals.hide_rate == 0.5 and report.totals.as_dict()["hide_rate"] == 0.5
    header, *lines = to_csv(report, report.rows).splitlines()
    columns = header.split(",")
    assert columns[columns.index("ctr") + 1:columns.index("ctr") + 3] == ["hides", "hide_rate"]
    assert any(line.startswith("demo-feed,") and ",2,0.5," in line for line in lines)


def test_the_dashboard_and_the_api_carry_the_rate(app, ch, traffic, runner):
    token = runner("create-token", "demo")[1].strip().splitlines()[-1]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    response = app.test_client().get(f"/api/v1/reports?advertiser=demo&from={today}&to={today}&group_by=campaign",
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    [row] = [r for r in body["rows"] if r["key"] == "demo-retargeting"]
    assert row["hides"] == 2 and row["hide_rate"] == 0.5
    assert body["totals"]["hide_rate"] == 0.5
