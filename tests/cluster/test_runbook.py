"""The runbook's "add a Redis primary" step where it can be tested: moving the hash slot of one stream partition
from its primary to another with the real ``redis-cli`` while hits are written to that partition.

A partition's stream, counters and its visitors' profiles share one hash tag, so one slot holds them all
and moving it moves the partition whole (docs/scaling.md). The slot is moved with the primitives that
``redis-cli --cluster reshard`` runs for each slot (``CLUSTER SETSLOT ... IMPORTING / MIGRATING``,
``MIGRATE ... KEYS``, ``CLUSTER SETSLOT ... NODE``), because reshard picks which slots of a source it moves
and this test must move one chosen slot. The move is harmless to later tests (any primary may own any
slot); the cluster is left whole."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time

import pytest
import redis

from scripts.testservers.redis_cluster import cluster_problem
from tests.cluster.conftest import wait_for
from tracker.partitions import Partitions
from tracker.settings_parsers import parse_redis_cluster_url
from tracker.stream import EventStream
from tracker.writer.fleet import partition_writers, run_all, stop_all

pytestmark = pytest.mark.slow


PARTITIONS = 4
MOVED = 1  # the partition whose slot moves


def redis_cli(port: int, *args: str) -> str:
    """One command through the real redis-cli, as an operator types it; its output, or the test fails."""
    binary = shutil.which("redis-cli")
    assert binary, "redis-cli is part of the cluster's packages (redis-tools)"
    done = subprocess.run([binary, "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=30, check=True)
    assert not done.stdout.startswith("ERR"), f"redis-cli {' '.join(args)}: {done.stdout}"
    return done.stdout.strip()


def primaries(port: int) -> dict[str, int]:
    """Node id -> port of every primary, from CLUSTER NODES as redis-cli prints it."""
    found = {}
    for line in redis_cli(port, "CLUSTER", "NODES").splitlines():
        node_id, address, flags = line.split()[:3]
        if "master" in flags.split(","):
            found[node_id] = int(address.split("@")[0].rsplit(":", 1)[1])
    return found


def owner(port: int, slot: int) -> str:
    """The id of the primary owning ``slot``, as the node at ``port`` sees it."""
    for line in redis_cli(port, "CLUSTER", "NODES").splitlines():
        fields = line.split()
        for part in fields[8:]:
            if part.startswith("["):
                continue  # a slot in migration, listed beside its owner's ranges
            lo, _, hi = part.partition("-")
            if int(lo) <= slot <= int(hi or lo):
                return fields[0]
    raise AssertionError(f"no node owns slot {slot}")


def move_slot(slot: int, source: str, target: str, nodes: dict[str, int], between_batches) -> int:
    """Move ``slot`` from primary ``source`` to ``target`` (node ids), key batch by key batch; returns keys moved."""
    redis_cli(nodes[target], "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source)
    redis_cli(nodes[source], "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target)
    moved = 0
    while True:
        keys = redis_cli(nodes[source], "CLUSTER", "GETKEYSINSLOT", str(slot), "10").split()
        if not keys:
            break
        redis_cli(nodes[source], "MIGRATE", "127.0.0.1", str(nodes[target]), "", "0", "5000", "KEYS", *keys)
        moved += len(keys)
        between_batches()  # hits keep coming while the slot is half moved
    for port in (nodes[target], nodes[source], *(p for n, p in nodes.items() if n not in (source, target))):
        redis_cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target)
    return moved


def visitors_of(partitions: Partitions, partition: int, count: int) -> list[str]:
    found = []
    while len(found) < count:
        uid = "runbook-" + secrets.token_hex(6)
        if partitions.of(uid) == partition:
            found.append(uid)
    return found


def test_moving_a_partitions_slot_to_another_primary_under_traffic_keeps_every_hit_once(
        cluster, cluster_stores, cluster_any_ch):
    ports = [port for _, port in parse_redis_cluster_url(cluster.redis_url).nodes]
    partitions = Partitions("runbook:" + secrets.token_hex(3), PARTITIONS)
    client = cluster_stores.redis("web")
    stream = EventStream(client, partitions.stream_key, partitions=PARTITIONS)
    advertiser = "runbook-" + secrets.token_hex(3)
    recorded: list[str] = []  # skus of the hits the stream accepted, each once
    refused: list[str] = []  # why a hit was refused (and sent again)

    def hit(uid: str) -> None:
        """One pixel hit; a refused one is sent again, as the pixel's spool replays it."""
        sku = f"S{len(recorded)}-{secrets.token_hex(2)}"
        for attempt in range(50):
            try:
                stream.record({"ts": time.time(), "advertiser": advertiser, "event": "view_item", "uid": uid,
                               "skus": [sku]}, uid=uid)
                recorded.append(sku)
                return
            except Exception as exc:  # noqa: BLE001 - counted, and the hit sent again
                refused.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("a hit was refused 50 times")

    probe, *others = visitors_of(partitions, MOVED, 11)
    writers = partition_writers(cluster_stores.redis("writer"), cluster_any_ch, partitions, list(range(PARTITIONS)),
                                "runbook", batch_size=500, batch_seconds=0.05)
    for writer in writers:
        writer.ensure_group()
    draining = threading.Thread(target=run_all, args=(writers,), name="runbook-writers", daemon=True)
    draining.start()
    stop_traffic = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop_traffic.is_set():
            hit(others[n % len(others)])
            n += 1
            time.sleep(0.005)

    try:
        hit(probe)
        before_sku = recorded[-1]
        sender = threading.Thread(target=traffic, name="runbook-traffic", daemon=True)
        sender.start()
        wait_for(lambda: len(recorded) > 50, 30, "hits before the move")

        slot = client.keyslot(partitions.stream(MOVED))
        assert {client.keyslot(key) for key in (partitions.metrics(MOVED), partitions.profile(probe) + ":adv")} \
            == {slot}  # the partition's keys all move with its slot
        nodes = primaries(ports[0])
        source = owner(ports[0], slot)
        target = next(node for node in sorted(nodes) if node != source)
        during = len(recorded)
        moved = move_slot(slot, source, target, nodes, lambda: time.sleep(0.2))
        assert moved >= 3  # the stream, the counters, the visitors' profile keys
        wait_for(lambda: cluster_problem(ports) is None, 60, "the cluster whole again")
        assert all(owner(port, slot) == target for port in ports)
        assert len(recorded) > during  # hits went on while the slot moved

        wait_for(lambda: len(recorded) > during + 50, 30, "hits after the move")
        hit(probe)
        after_sku = recorded[-1]
        stop_traffic.set()
        sender.join(timeout=30)

        # the probe's profile kept what it had and took what came after, on the new primary
        (interest,), _ = stream.interests(probe)
        assert interest.advertiser == advertiser and {before_sku, after_sku} <= set(interest.recent)
        direct = client.get_node_from_key(partitions.profile(probe) + ":adv")
        assert direct.port == nodes[target]

        def stored() -> bool:
            rows = cluster_any_ch.execute("SELECT count() FROM events WHERE advertiser = %(a)s", {"a": advertiser})
            return rows[0][0] >= len(recorded)

        wait_for(stored, 60, f"{len(recorded)} hits in ClickHouse")
        time.sleep(0.5)  # anything stored twice would arrive with the last batches
        rows = cluster_any_ch.execute("SELECT sku, count(), uniqExact(stream_id) FROM events "
                                      "WHERE advertiser = %(a)s GROUP BY sku", {"a": advertiser})
        stored_skus = {sku: n for sku, n, _ in rows}
        assert set(stored_skus) == set(recorded)  # nothing accepted is lost
        assert all(n == ids for _, n, ids in rows)  # the writer stored no stream entry twice
        twice = {sku: n for sku, n in stored_skus.items() if n > 1}
        print(f"slot {slot} moved with {moved} keys under {len(recorded)} hits; {len(refused)} refusals "
              f"({sorted(set(refused))}); stored more than once: {twice}")
        assert not twice, (f"{len(twice)} of {len(recorded)} hits stored more than once {twice}, after "
                           f"{len(refused)} refusals: {sorted(set(refused))}")
    finally:
        stop_traffic.set()
        stop_all(writers)
        draining.join(timeout=30)
        for key in partitions.streams():
            client.delete(key)


def test_a_hit_refused_while_its_slot_moves_writes_nothing_and_its_replay_is_stored_once(cluster, cluster_stores):
    """The case the traffic above meets by chance, set up on purpose: everything the hit names is still on
    the source, but a key its ``@PROMOTE`` step finds in the visitor's index has already moved. The call
    must be refused before its first write (the stream entry) and, sent again once the slot has moved,
    appended once."""
    ports = [port for _, port in parse_redis_cluster_url(cluster.redis_url).nodes]
    partitions = Partitions("runbook:" + secrets.token_hex(3), 2)
    client = cluster_stores.redis("web")
    stream = EventStream(client, partitions.stream_key, partitions=2)
    uid = visitors_of(partitions, 0, 1)[0]
    prefix = partitions.profile(uid)
    stored, moved_early = "runbook-a-" + secrets.token_hex(2), "runbook-b-" + secrets.token_hex(2)

    def event(advertiser: str, name: str, sku: str) -> dict:
        return {"ts": time.time(), "advertiser": advertiser, "event": name, "uid": uid, "skus": [sku]}

    # a first visit: its keys live the young TTL, so the next hit's @PROMOTE walks the index
    for advertiser in (stored, moved_early):
        stream.record(event(advertiser, "view_item", "S1"), uid=uid, first_visit=True)
    stream.record(event(stored, "purchase", "S1"), uid=uid, first_visit=True)
    slot = client.keyslot(partitions.stream(0))
    assert client.keyslot(f"{prefix}:rv:{moved_early}") == slot
    nodes = primaries(ports[0])
    source = owner(ports[0], slot)
    target = next(node for node in sorted(nodes) if node != source)
    source_node = redis.Redis(port=nodes[source], socket_timeout=10)
    length = source_node.xlen(partitions.stream(0))
    try:
        redis_cli(nodes[target], "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source)
        redis_cli(nodes[source], "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target)
        redis_cli(nodes[source], "MIGRATE", "127.0.0.1", str(nodes[target]), "", "0", "5000",
                  "KEYS", f"{prefix}:rv:{moved_early}")

        with pytest.raises(redis.RedisError):
            stream.record(event(stored, "view_item", "S2"), uid=uid)
        assert source_node.xlen(partitions.stream(0)) == length  # refused before its first write
        assert source_node.zscore(f"{prefix}:rv:{stored}", "S2") is None
    finally:
        move_slot(slot, source, target, nodes, lambda: None)
        wait_for(lambda: cluster_problem(ports) is None, 60, "the cluster whole again")
        source_node.close()

    stream.record(event(stored, "view_item", "S2"), uid=uid)  # the replay, as the spool sends it
    entries = client.xrange(partitions.stream(0))
    assert len(entries) == length + 1
    (interest, *_), _ = stream.interests(uid)
    assert interest.recent[:1] == ["S2"]
    assert client.ttl(f"{prefix}:rv:{moved_early}") > 3600  # promoted with the rest, on the new primary
    for key in partitions.streams():
        client.delete(key)
