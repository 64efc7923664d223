"""The demo's reporting side: a marketer account and two weeks of generated ad traffic.

``python -m adserver demo`` (``make run``) calls :func:`setup_demo`. Sign in at ``/reports`` as
``demo@example.com`` with the password ``demo-password``. Running it again does not add the
traffic twice: each day is generated once (days already present are skipped).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from adserver.catalog.registry import save_advertiser
from adserver.console import accounts
from adserver.console.prices import get_price, set_price
from adserver.demo import synth
from tracker.clickhouse import ClickHouse

DEMO_ADVERTISER = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_TIMEZONE = "Asia/Shanghai"
DEMO_PLACEMENTS = ("demo-feed", "demo-sidebar")
DAYS = 14
IMPRESSIONS_PER_DAY = 2500
TAG = "synthetic:demo"
DEMO_CAMPAIGN = "demo-retargeting"  # the CPC campaign `python -m adserver demo` creates
DEMO_CPC = 0.6


def setup_demo(ch: ClickHouse, now: float | None = None) -> str:
    """Time zone, marketer, price and traffic of the demo advertiser; returns a one-line summary."""
    rows = ch.execute("SELECT name, currency FROM advertisers FINAL WHERE id = %(a)s AND deleted = 0",
                      {"a": DEMO_ADVERTISER})
    name, currency = rows[0] if rows else ("Demo store", "CNY")
    save_advertiser(ch, DEMO_ADVERTISER, name, currency, DEMO_TIMEZONE)
    accounts.save_user(ch, DEMO_EMAIL, DEMO_PASSWORD, [DEMO_ADVERTISER])
    if get_price(ch, DEMO_ADVERTISER) is None:
        set_price(ch, DEMO_ADVERTISER, "cpc", DEMO_CPC)
    added = demo_traffic(ch, now)
    return (f"demo marketer {DEMO_EMAIL} / {DEMO_PASSWORD} (reports at /reports); "
            f"{added:,} demo ad impressions added")


def demo_traffic(ch: ClickHouse, now: float | None = None) -> int:
    """Generate the demo traffic of each of the last ``DAYS`` days (today up to now) not there yet."""
    now = time.time() if now is None else now
    zone = ZoneInfo(DEMO_TIMEZONE)
    today = datetime.fromtimestamp(now, zone).date()
    first = today - timedelta(days=DAYS - 1)
    start = int(datetime.combine(first, datetime.min.time(), zone).timestamp())
    present = {r[0] for r in ch.execute(
        "SELECT DISTINCT stream_id FROM events WHERE advertiser = %(a)s AND event = 'impression' "
        "AND ts >= toDateTime(%(start)s) AND stream_id LIKE 'synthetic:demo:%%'",
        {"a": DEMO_ADVERTISER, "start": start},
    )}
    catalog = [r[0] for r in ch.execute(
        "SELECT sku FROM products FINAL WHERE advertiser = %(a)s AND deleted = 0 ORDER BY sku", {"a": DEMO_ADVERTISER})]
    if not catalog:
        return 0
    added = 0
    for i in range(DAYS):
        day = first + timedelta(days=i)
        tag = f"{TAG}:{day.isoformat()}"
        if tag in present:
            continue
        day_start = int(datetime.combine(day, datetime.min.time(), zone).timestamp())
        traffic = synth.Traffic(
            advertiser=DEMO_ADVERTISER, start=day_start, days=1, impressions=IMPRESSIONS_PER_DAY,
            catalog=catalog, placements=list(DEMO_PLACEMENTS), utc_offset_hours=8, visitors=900,
            currency="CNY", seed=1000 + day.toordinal(), tag=tag, until=int(now),
            ctr_bp=120, click_order_pct=8, view_order_pcm=120,
            campaign=DEMO_CAMPAIGN, pricing="cpc", price=DEMO_CPC,
        )
        added += synth.generate(ch, traffic)
    return added
