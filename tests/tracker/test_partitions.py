"""The stream's partitions: which visitor goes where, and the names that keep a hit's keys in one slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from tracker.partitions import Partitions, hash_tag


def test_hash_tag_follows_redis_cluster():
    assert hash_tag("adserver:events") == "adserver:events"
    assert hash_tag("{adserver:events:3}") == "adserver:events:3"
    assert hash_tag("p:{abc}:x{y}") == "abc"
    assert hash_tag("a{}b{c}") == "a{}b{c}"  # an empty first tag: the whole key is hashed
    for key in ("adserver:events", "{adserver:events:3}", "p:{abc}:x{y}", "a{}b{c}"):
        assert key_slot(key.encode()) == key_slot(hash_tag(key).encode())


@pytest.mark.parametrize("count", [1, 4, 16])
def test_a_visitors_keys_share_their_partitions_slot(count):
    parts = Partitions("adserver:events", count)
    seen = set()
    for n in range(400):
        uid = f"visitor-{n}"
        p = parts.of(uid)
        seen.add(p)
        assert p == parts.of(uid)  # stable
        slot = key_slot(parts.stream(p).encode())
        assert key_slot(parts.metrics(p).encode()) == slot
        assert key_slot(f"{parts.profile(uid)}:rv:shop".encode()) == slot
    assert seen == set(range(count))  # visitors spread over every partition
    assert len({key_slot(s.encode()) for s in parts.streams()}) == count


def test_one_partition_keeps_the_stream_key():
    assert Partitions("adserver:events").streams() == ["adserver:events"]
    assert Partitions("adserver:events", 4).streams() == [f"{{adserver:events:{p}}}" for p in range(4)]


def test_a_partitioned_stream_key_holds_no_braces():
    with pytest.raises(ValueError):
        Partitions("ev{x}", 4)
    with pytest.raises(ValueError):
        Partitions("ev}x", 1)
    with pytest.raises(ValueError):
        Partitions("ev", 0)
    assert Partitions("ev{x}", 1).profile("u") == "p:{x}:u"
