"""The registry never makes a request wait for ClickHouse once it has a copy."""

from __future__ import annotations

import threading

from adserver.catalog.registry import Registry, save_advertiser
from tracker.clickhouse import DriverClickHouse
from tracker.settings import parse_clickhouse_url


def test_stale_registry_refreshes_in_the_background(ch):
    save_advertiser(ch, "shop-a")
    gate = threading.Event()
    calls = []

    def factory():
        calls.append(1)
        if len(calls) > 1:  # every reload after the first waits until the test lets it go
            assert gate.wait(20)
        return ch

    registry = Registry(factory, ttl=0.0)
    assert registry.known_advertiser("shop-a")  # first load: synchronous
    save_advertiser(ch, "shop-b")
    # Stale: a background reload starts (held at the gate) and the answer comes from the copy at once.
    assert registry.advertiser_ids() == ["shop-a"]
    refresh = registry._refreshing
    assert refresh is not None and refresh.is_alive()
    gate.set()
    refresh.join(timeout=20)
    assert registry.advertiser_ids() == ["shop-a", "shop-b"]


def test_database_away_keeps_the_copy_and_skips_lookups(ch):
    save_advertiser(ch, "shop-a")
    dead = DriverClickHouse(parse_clickhouse_url("clickhouse://127.0.0.1:1/x"), 0.2, 0.5, retries=0)
    current = {"ch": ch}
    registry = Registry(lambda: current["ch"], ttl=3600)
    registry.reload()
    current["ch"] = dead
    registry.reload()  # fails: the copy stays, the registry knows the database is away
    assert registry.advertiser_ids() == ["shop-a"]
    loads = []
    registry._ch = lambda: loads.append(1) or dead
    registry._loaded_at -= 10
    assert registry.known_advertiser("unknown-shop") is False
    assert loads == []  # no synchronous lookup while the database is away


def test_reserved_and_malformed_advertiser_ids_are_refused(runner):
    for bad, message in (("campaigns", "is reserved"), ("login", "is reserved"), ("Shop", "lowercase"),
                         ("a/b", "lowercase"), ("x" * 65, "lowercase")):
        code, out = runner("create-advertiser", bad)
        assert code != 0 and message in out, (bad, out)


def test_concurrent_first_lookups_wait_for_the_first_load(ch):
    """A fresh worker's first requests arrive together: none may see an empty registry while another
    thread is loading it (it would serve unpaid house ads, or nothing, instead of the campaigns)."""
    import threading
    import time

    from adserver.catalog.registry import Registry, save_advertiser, save_placement

    save_advertiser(ch, "shop")
    save_placement(ch, "slot", "site.example", ["300x250"], ["shop"], floor=1.5)

    def slow_clickhouse():  # the real server, reached slowly, as under load
        time.sleep(0.3)
        return ch

    registry = Registry(slow_clickhouse)
    found: list = []
    threads = [threading.Thread(target=lambda: found.append((registry.placement("slot"), registry.advertiser_ids())))
               for _ in range(8)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    assert len(found) == 8
    assert all(p is not None and p.floor == 1.5 and ids == ["shop"] for p, ids in found), found
