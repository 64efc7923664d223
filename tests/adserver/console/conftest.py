"""Helpers for report tests: events written straight into ClickHouse (the views fill the report
tables from them), and report calls with small, readable arguments."""

from __future__ import annotations

import functools
import itertools
import time
from datetime import date, datetime, timedelta

import pytest

from adserver.console import attribution
from adserver.console.report import ReportRequest, run_report
from tracker import schema

_ids = itertools.count(1)
T0 = datetime(2026, 3, 10, 12, 0, 0)  # a Tuesday, noon UTC


def at(**delta) -> datetime:
    """``T0`` shifted, e.g. ``at(days=-2, hours=3)``."""
    return T0 + timedelta(**delta)


def row(ts: datetime, advertiser: str, event: str, uid: str = "", skus=(), reasons=(), order_id: str = "",
        value: float = 0.0, currency: str = "", placement: str = "", impression_id: str = "",
        addressable: int | None = None) -> tuple:
    skus = list(skus)
    if addressable is None:
        addressable = 1 if uid else 0
    return (ts, advertiser, event, uid, skus[0] if skus else "", skus, list(reasons), order_id, value, currency,
            placement, impression_id, "300x250" if event == "impression" else "", addressable, "desktop", "", "",
            f"t-{next(_ids)}", "", 0.0, 0.0, 0, 0, 0, "", 0)


def impression(ts, uid="", skus=("A", "B"), reasons=("recent", "popular"), placement="feed", advertiser="shop"):
    return row(ts, advertiser, "impression", uid, skus, reasons, placement=placement,
               impression_id=f"imp{next(_ids)}")


def click(ts, uid="", sku="A", reason="recent", placement="feed", advertiser="shop"):
    return row(ts, advertiser, "click", uid, [sku], [reason], placement=placement, impression_id=f"imp{next(_ids)}")


def purchase(ts, uid, order_id, value=100.0, skus=("A",), advertiser="shop", currency="CNY"):
    return row(ts, advertiser, "purchase", uid, skus, order_id=order_id, value=value, currency=currency,
               addressable=1)


def insert(ch, rows) -> None:
    ch.insert("events", schema.EVENTS_COLUMNS, rows)


@pytest.fixture
def report(any_ch):
    """``report(start, end, group_by="day", **options)`` on the ``any_ch`` backend."""

    def run(start: date = date(2026, 3, 1), end: date = date(2026, 3, 31), group_by: str = "day",
            advertiser: str = "shop", source: str = "agg", price=None, **options):
        request = ReportRequest(advertiser, start, end, group_by, **options)
        attribution.forget_kept()  # each report keeps the resolutions of settled orders at once
        return run_report(any_ch, request, price=price, source=source)

    return run


PASSWORD = "correct horse battery"


@functools.cache
def password_hash() -> str:
    """``PASSWORD`` hashed once per run: a hash costs 128 MiB and about half a second."""
    from adserver.console.accounts import hash_password

    return hash_password(PASSWORD)


def add_user(ch, email: str, password_hash: str, advertisers: list[str]) -> None:
    """A user as ``save_user`` stores it, with a hash made beforehand."""
    from adserver.console.accounts import set_memberships
    from tracker.schema import USERS_COLUMNS

    ch.insert("users", USERS_COLUMNS, [(email, password_hash, 0, time.time_ns(), datetime.now())])
    set_memberships(ch, email, advertisers)


@pytest.fixture
def tenants(ch):
    """Two advertisers with a marketer each (plus one who sees both) and an API token each."""
    from adserver.catalog.registry import save_advertiser
    from adserver.catalog.tokens import create_token

    save_advertiser(ch, "shop-a", "Shop A <b>&</b>", "CNY", "Asia/Shanghai")
    save_advertiser(ch, "shop-b", "Shop B", "EUR", "Europe/Paris")
    add_user(ch, "alice@a.example", password_hash(), ["shop-a"])
    add_user(ch, "bob@b.example", password_hash(), ["shop-b"])
    add_user(ch, "carol@agency.example", password_hash(), ["shop-a", "shop-b"])
    return {"shop-a": create_token(ch, "shop-a"), "shop-b": create_token(ch, "shop-b")}


def seed(ch, advertiser: str, day: datetime = T0, placement: str = "feed", clicks: int = 2) -> None:
    """A small, known day of traffic: 10 ads (2 products each), ``clicks`` clicks, 1 attributed order."""
    rows = [impression(day + timedelta(minutes=i), f"{advertiser}-u{i}", ["A1", "B2"], ["recent", "popular"],
                       placement, advertiser) for i in range(10)]
    rows += [click(day + timedelta(minutes=i, seconds=30), f"{advertiser}-u{i}", "A1", "recent", placement, advertiser)
             for i in range(clicks)]
    rows.append(purchase(day + timedelta(hours=1), f"{advertiser}-u0", f"{advertiser}-{day:%d%H%M}", 88.0, ["A1"],
                         advertiser))
    insert(ch, rows)


def csrf_of(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client, email: str, password: str = PASSWORD, ip: str = "203.0.113.7"):
    page = client.get("/reports/login", environ_base={"REMOTE_ADDR": ip})
    token = csrf_of(page.get_data(as_text=True))
    return client.post("/reports/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})
