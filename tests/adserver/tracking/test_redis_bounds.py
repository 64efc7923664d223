"""What public traffic can make Redis hold, through the endpoints on real servers: only catalog skus
enter profiles and popularity (all of them stay in the event row), purchases cannot grow a visitor's
profile without bound, cookieless hits leave a bounded, short-lived trace, and a spool that fills up
while Redis is down drops what does not fit, counted in ``/metrics``."""

from __future__ import annotations

import logging

import pytest

from tests.adserver.conftest import product, visitor_uid
from tests.conftest import SECRET, drain
from tracker.settings import load_settings
from tracker.stream import BOUGHT_MAX

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/126.0.0.0 Safari/537.36"}
SKUS = [f"P{i:03d}" for i in range(BOUGHT_MAX + 20)]


@pytest.fixture
def shop(app, create_advertiser, import_feed, runner) -> None:
    """A store with a catalog larger than a bought set may hold, a campaign and a placement to show it."""
    create_advertiser("shop")
    code, out = import_feed("shop", [product(sku) for sku in SKUS])
    assert code == 0, out
    for command in (("create-campaign", "shop-retargeting", "--advertiser", "shop", "--pricing", "cpc", "--price",
                     "1"), ("create-placement", "shop-feed", "--site", "news.example")):
        code, out = runner(*command)
        assert code == 0, out
    app.extensions["adserver"].registry.reload()


def hit(client, query: str) -> None:
    response = client.get("/px.gif?" + query, headers=BROWSER)
    assert response.status_code == 200 and response.mimetype == "image/gif"


def profile_keys(redis_client, uid: str = "*") -> list[bytes]:
    return sorted(redis_client.scan_iter("p:*}:%s:*" % uid if uid != "*" else "p:*"))


def members(redis_client, pattern: str) -> set[str]:
    """Members of the sorted sets (or sets) whose names match."""
    found: set[str] = set()
    for key in redis_client.scan_iter(pattern):
        found |= {m.decode() for m in (redis_client.smembers(key) if redis_client.type(key) == b"set"
                                       else redis_client.zrange(key, 0, -1))}
    return found


def test_unknown_skus_leave_no_redis_trace_but_stay_in_the_event_row(client, shop, redis_client, writer, ch):
    hit(client, "a=shop&e=view_item&sku=P001,NOPE-1")
    uid = visitor_uid(client)
    hit(client, "a=shop&e=add_to_cart&sku=NOPE-2")
    hit(client, "a=shop&e=purchase&order=O1&sku=P002,NOPE-3")
    assert members(redis_client, "p:*}:%s:rv:*" % uid) == {"P001"}
    assert members(redis_client, "p:*}:%s:bought:*" % uid) == {"P002"}
    assert members(redis_client, "pop:*") == {"P001", "P002"}
    assert not [k for k in redis_client.scan_iter("*") if b"NOPE" in k]
    drain(writer)
    rows = ch.execute("SELECT event, skus FROM events WHERE uid = %(uid)s", {"uid": uid})
    assert sorted(rows) == [("add_to_cart", ["NOPE-2"]), ("purchase", ["P002", "NOPE-3"]),
                            ("view_item", ["P001", "NOPE-1"])]


def test_a_visitor_buying_everything_keeps_a_capped_bought_set(client, shop, redis_client):
    hit(client, "a=shop&e=view_item&sku=P000")
    uid = visitor_uid(client)
    for start in range(0, len(SKUS), 50):
        hit(client, f"a=shop&e=purchase&order=O{start}&sku=" + ",".join(SKUS[start:start + 50]))
    bought = members(redis_client, "p:*}:%s:b*" % uid)
    assert len(bought) == BOUGHT_MAX and bought <= set(SKUS)
    response = client.get("/ad.json?p=shop-feed&size=300x250", headers=BROWSER)
    assert response.status_code == 200
    decision = response.get_json()
    assert decision["path"] == "personalised" and decision["advertiser"] == "shop"
    shown = {p["sku"] for p in decision["products"]}
    assert shown and not shown & bought  # the ad read what was kept: only products bought too long ago show


def test_cookieless_hits_leave_few_short_lived_keys(app, shop, redis_client, settings):
    hits = 20
    for n in range(hits):
        hit(app.test_client(), f"a=shop&e=view_item&sku={SKUS[n]}")  # a new client: no cookie, a new uid each
        hit(app.test_client(), f"a=shop&e=add_to_cart&sku=UNKNOWN-{n}")
    keys = profile_keys(redis_client)
    assert len(keys) == 2 * hits  # the viewed list and the advertiser index of each catalog hit, nothing else
    short = settings.new_visitor_ttl_minutes * 60
    assert all(0 < redis_client.ttl(k) <= short for k in keys)
    assert list(redis_client.scan_iter("pop:*")) and members(redis_client, "pop:*") == set(SKUS[:hits])


def test_the_cookie_coming_back_keeps_the_profile(client, shop, redis_client, settings):
    hit(client, "a=shop&e=view_item&sku=P001")
    uid = visitor_uid(client)
    assert all(redis_client.ttl(k) <= settings.new_visitor_ttl_minutes * 60 for k in profile_keys(redis_client, uid))
    hit(client, "a=shop&e=view_home")
    keys = profile_keys(redis_client, uid)
    assert len(keys) == 2 and all(redis_client.ttl(k) > (settings.profile_ttl_days - 1) * 86400 for k in keys)


def test_a_full_spool_drops_counts_and_logs(tmp_path, clickhouse_url, ch, caplog):
    from adserver import create_app
    from tests.adserver.test_health import scrape, value

    app = create_app(load_settings({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": "redis://127.0.0.1:1/0",
        "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_DATA_DIR": str(tmp_path / "var"),
        "ADSERVER_REDIS_TIMEOUT": "0.2", "ADSERVER_SPOOL_MAX_MB": "1",
        "ADSERVER_PIXEL_LINGER_MS": "0",  # each hit spooled before its answer: the count is exact
    }))
    spool = app.extensions["adserver"].spool
    try:
        client = app.test_client()
        url = "https://store.example/" + "u" * 2000
        with caplog.at_level(logging.ERROR, logger="tracker.spool"):
            sent = 0
            while spool.dropped() < 3:
                hit(client, f"a=demo&e=view_home&url={url}&n={sent}")
                sent += 1
                assert sent < 2000, "the spool never filled up"
        assert spool.pending_bytes() <= 1024 * 1024
        assert spool.pending_records() + spool.dropped() == sent
        assert any("spool is full" in r.getMessage() for r in caplog.records)
        assert value(scrape(client), "adserver_spool_dropped_total") == 3
    finally:
        spool.stop()
        app.extensions["adserver"].close()
