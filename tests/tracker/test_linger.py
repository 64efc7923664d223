"""Lingering event writes (``tracker.linger``) on a Redis server and on the Redis Cluster with four
partitions: a batch leaves Redis exactly as the same events written one by one, each visitor's
events stay in order and land once, a full queue is flushed by its caller, a failed batch is
spilled in order, and a normal exit sends what is queued."""

from __future__ import annotations

import json
import random
import secrets
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.connection import Connection

from tests.cluster.conftest import cluster, cluster_settings, cluster_stores  # noqa: F401 - fixtures
from tests.stream_events import events_waiting, stream_events
from tracker.breaker import CircuitBreaker
from tracker.linger import Linger, bulk, encode, encode_keys
from tracker.stream import EventStream

ROOT = Path(__file__).resolve().parents[2]
MODES = ["server", "cluster"]


@pytest.fixture(params=MODES)
def layout(request) -> tuple[redis.Redis, int]:
    """A Redis and the stream partitions to use there (tests name their own keys and advertisers)."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_stores").redis("web"), 4
    return request.getfixturevalue("redis_client"), 1


def _stream(layout, key: str | None = None) -> EventStream:
    client, partitions = layout
    return EventStream(client, key or f"t:lg:{secrets.token_hex(4)}", profile_size=5, profile_ttl_days=30,
                       new_visitor_ttl=600, partitions=partitions)


class Spilled(list):
    """The spill callback: records in the order given."""

    def __call__(self, records: list[dict]) -> None:
        self.extend(records)


def _linger(stream: EventStream, linger: float = 0.001, **kwargs) -> tuple[Linger, Spilled, CircuitBreaker]:
    spilled, breaker = Spilled(), CircuitBreaker()
    return Linger(lambda: stream, breaker, spilled, linger, **kwargs), spilled, breaker


def _workload(shops: list[str], visitors: int = 40, seed: int = 7) -> list[tuple[str, dict, dict]]:
    """Every kind of event a web process records: ("ev" or "bad", row, keyword arguments of ``record``)."""
    rng = random.Random(seed)
    now = time.time()
    out = []
    for v in range(visitors):
        uid = f"v{v}-{secrets.token_hex(3)}"
        for n in range(rng.randint(2, 8)):
            shop = rng.choice(shops)
            event = rng.choice(["view_item", "view_item", "add_to_cart", "purchase", "view_home", "impression",
                                "click"])
            skus = rng.sample(["A", "B", "C", "D", "E", "F", "G"], rng.randint(1, 3))
            row = {"ts": now + v + n / 10, "advertiser": shop, "event": event, "uid": uid, "skus": skus, "seq": n}
            if event == "impression":
                row["campaign"] = rng.choice(["c1", "c2"])
            if rng.random() < 0.1:
                row["invalid"] = 1
            kwargs = {"uid": uid, "counter": rng.choice([None, "pixel_accepted"]),
                      "profile_skus": skus[:2] if rng.random() < 0.5 else None, "first_visit": n == 0 and v % 3 == 0}
            out.append(("ev", row, kwargs))
        if v % 5 == 0:
            out.append(("bad", {"ts": now, "advertiser": shop, "event": "?", "uid": uid, "errors": ["x"]},
                        {"counter": "pixel_rejected"}))
    return out


def _offer(linger: Linger, stream: EventStream, kind: str, row: dict, kwargs: dict) -> None:
    call = stream.prepare_bad(row, kwargs.get("counter")) if kind == "bad" else stream.prepare(row, **kwargs)
    linger.offer({"kind": kind, "row": row, **kwargs}, stream, call)


def _state(stream: EventStream, shops: list[str]) -> tuple[dict, dict, list]:
    """What Redis holds for this stream and these shops, with their names replaced by placeholders:
    (key -> value, key -> TTL, the rejected hits' entries, which go to any partition)."""
    client = stream.client
    names = {stream.stream_key.encode(): b"<S>", **{s.encode(): b"<A%d>" % i for i, s in enumerate(shops)}}

    def plain(data: bytes) -> bytes:
        for name, placeholder in names.items():
            data = data.replace(name, placeholder)
        return data

    # the senders' sets of applied call ids (``@ONCE``) count calls, which batching changes by design
    keys = {key for key in client.scan_iter(match=f"*{stream.stream_key}*", count=1000)
            if not key.startswith(b"adserver:once:")}
    for shop in shops:
        keys |= set(client.scan_iter(match=f"pop:{{{shop}}}:*", count=1000))
    values, ttls, bad = {}, {}, []
    for key in keys:
        kind = client.type(key)
        if kind == b"stream":  # its events: a batch packs them into fewer entries by design
            events = stream_events(client, key, plain)
            bad += sorted(json.dumps(e, sort_keys=True) for k, e in events if k == b"bad")
            value = [e for k, e in events if k != b"bad"]
        elif kind == b"zset":
            value = [(plain(m), s) for m, s in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"hash":
            value = {plain(k): v for k, v in client.hgetall(key).items() if b"pixel_rejected" not in k}
        else:
            raise AssertionError(f"unexpected {kind} at {key}")
        values[plain(key)] = value
        ttls[plain(key)] = client.ttl(key)
    return values, ttls, sorted(bad)


def test_the_wire_encoding_is_redis_pys():
    values = ["EVALSHA", "é字", b"\x00\xff", 0, -17, 2**70, 1.5, 1e-07, float(3), "", 1, "1", 1.0, "x" * 40, 10**12]
    packed = b"".join(Connection().pack_command(*values))
    assert b"*%d\r\n" % len(values) + b"".join(map(bulk, values)) == packed
    for _ in range(2):  # the second time from the table of common values
        assert b"*%d\r\n" % len(values) + encode(values) == packed
    repeated = values + values  # long strings and large numbers again: from the hit's memo
    memo: dict = {}
    body = packed[packed.index(b"\r\n") + 2:]
    assert encode(repeated, memo) == body + body
    assert {"x" * 40, 2**70, 10**12} <= set(memo)
    keys = ["x" * 40, "EVALSHA", "k" * 50]
    assert encode_keys(keys, memo) == tuple(map(bulk, keys))
    for wrong in (True, None, {"a": 1}, [1]):
        with pytest.raises(redis.DataError):
            bulk(wrong)
        with pytest.raises(redis.DataError):
            encode([1, wrong])


def test_a_batch_leaves_redis_as_the_same_events_written_one_by_one(layout):
    one, two = [f"shop{secrets.token_hex(3)}" for _ in range(2)], [f"shop{secrets.token_hex(3)}" for _ in range(2)]
    work = _workload(one)
    direct = _stream(layout)
    for kind, row, kwargs in work:
        if kind == "bad":
            direct.record_bad(row, **kwargs)
        else:
            direct.record(row, **kwargs)
    batched = _stream(layout)
    linger, spilled, _ = _linger(batched, linger=60)  # nothing leaves before the flush below
    renamed = {a: b for a, b in zip(one, two)}
    for kind, row, kwargs in work:
        _offer(linger, batched, kind, {**row, "advertiser": renamed[row["advertiser"]]}, kwargs)
    assert linger.queued == len(work) and _state(batched, two)[0] == {}
    linger.flush()
    assert spilled == [] and linger.queued == 0
    assert linger.flushes == (1 if layout[1] == 1 else 4)  # one script call per slot
    want, want_ttl, want_bad = _state(direct, one)
    got, got_ttl, got_bad = _state(batched, two)
    assert sorted(got) == sorted(want) and got == want and got_bad == want_bad
    assert {k: abs(got_ttl[k] - want_ttl[k]) <= 5 for k in want} == {k: True for k in want}
    linger.close()


def test_each_visitors_events_land_once_and_in_order_under_concurrent_offers(layout):
    stream = _stream(layout)
    linger, spilled, _ = _linger(stream, linger=0.001, max_queue=50, max_batch=40)  # full queues flush in callers
    shop = f"shop{secrets.token_hex(3)}"
    now = time.time()

    def visitor_traffic(first: int) -> None:
        for seq in range(30):
            for v in range(first, first + 10):
                row = {"ts": now + seq, "advertiser": shop, "event": "view_item", "skus": [f"S{seq}"],
                       "uid": f"u{v}", "seq": seq}
                linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid=f"u{v}"))

    threads = [threading.Thread(target=visitor_traffic, args=(10 * t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    linger.close()
    assert spilled == []
    seen: dict[str, list[int]] = {}
    for key in stream.partitions.streams():
        for _, row in stream_events(stream.client, key):
            seen.setdefault(row["uid"], []).append(row["seq"])
    assert sorted(seen) == sorted(f"u{v}" for v in range(80))
    assert {uid: seqs for uid, seqs in seen.items() if seqs != list(range(30))} == {}
    newest = stream.client.zrevrange(f"{stream.prefix('u42')}:rv:{shop}", 0, -1)
    assert newest == [b"S29", b"S28", b"S27", b"S26", b"S25"]  # the profile saw them in order too


def test_a_full_queue_is_flushed_by_the_caller_and_never_drops(layout):
    stream = _stream(layout)
    linger, spilled, breaker = _linger(stream, linger=60, max_queue=5)
    rows = [{"ts": time.time(), "advertiser": "shop", "event": "view_home", "uid": f"u{n}"} for n in range(12)]
    for row in rows[:5]:
        linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid=row["uid"]))
    assert linger.queued == 5 and events_waiting(stream.client, stream.partitions.streams()) == 0
    linger.offer({"kind": "ev", "row": rows[5]}, stream, stream.prepare(rows[5], uid=rows[5]["uid"]))
    assert linger.queued == 0 and events_waiting(stream.client, stream.partitions.streams()) == 6
    breaker.failure()  # Redis failed a moment ago: a full queue goes to the spool, in order
    for row in rows[6:]:
        linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid=row["uid"]))
    assert linger.queued == 0 and [r["row"]["uid"] for r in spilled] == [f"u{n}" for n in range(6, 12)]
    linger.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_batch_redis_does_not_take_is_spilled_in_order_and_opens_the_breaker():
    down = redis.Redis(host="127.0.0.1", port=_free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    stream = EventStream(down, "t:lg:down")
    linger, spilled, breaker = _linger(stream, linger=60)
    rows = [{"ts": time.time(), "advertiser": "shop", "event": "view_item", "skus": ["A"], "uid": f"u{n % 3}",
             "seq": n} for n in range(30)]
    for row in rows:
        linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid=row["uid"]))
    linger.offer({"kind": "ev", "row": {"seq": 30}}, None, None)  # no client could be made for this one
    linger.flush()
    assert [r["row"]["seq"] for r in spilled] == list(range(31)) and breaker.is_open
    linger.close()


def test_a_batch_sent_to_the_wrong_cluster_primary_follows_the_redirection(request):
    client = request.getfixturevalue("cluster_stores").redis("web")
    stream = EventStream(client, f"t:lg:{secrets.token_hex(4)}", partitions=1)
    linger, spilled, _ = _linger(stream, linger=60)
    slot = client.keyslot(stream.stream_key)
    owner = client.nodes_manager.get_node_from_slot(slot).name
    linger._slots[stream.stream_key] = next(  # noqa: SLF001 - a stale slot table, as after a resharding
        s for s in range(16384) if client.nodes_manager.get_node_from_slot(s).name != owner)
    rows = [{"ts": time.time(), "advertiser": "shop", "event": "view_home", "uid": f"u{n}"} for n in range(5)]
    for row in rows:
        linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid=row["uid"]))
    linger.flush()
    assert spilled == [] and events_waiting(client, [stream.stream_key]) == 5
    linger.close()


def test_a_normal_exit_sends_what_is_queued(redis_url, redis_client):
    key = f"t:lg:{secrets.token_hex(4)}"
    script = textwrap.dedent(f"""
        import sys, time
        import redis
        from tracker.breaker import CircuitBreaker
        from tracker.linger import Linger
        from tracker.stream import EventStream

        stream = EventStream(redis.Redis.from_url({redis_url!r}), {key!r})
        spilled = []
        linger = Linger(lambda: stream, CircuitBreaker(), spilled.extend, 60)  # would wait a minute
        for n in range(50):
            row = {{"ts": time.time(), "advertiser": "shop", "event": "view_home", "uid": f"u{{n}}"}}
            linger.offer({{"kind": "ev", "row": row}}, stream, stream.prepare(row, uid=row["uid"]))
        print(linger.queued, stream.client.exists({key!r}), flush=True)
        sys.exit(0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["50", "0"]  # queued, not sent, when the process began to exit
    assert events_waiting(redis_client, [key]) == 50
