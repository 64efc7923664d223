"""The Redis Cluster of the cluster mode, through the client the product builds from its settings."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from scripts.testservers.processes import find_our_servers
from scripts.testservers.redis_cluster import cluster_problem
from tests.cluster.conftest import wait_for
from tracker.settings_parsers import parse_redis_cluster_url

pytestmark = pytest.mark.slow


def node_client(host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, socket_timeout=5)


def test_three_primaries_each_with_a_replica_in_sync(cluster):
    host, port = parse_redis_cluster_url(cluster.redis_url).nodes[0]
    with node_client(host, port) as seed:
        nodes = seed.execute_command("CLUSTER NODES")
    primaries = {info["node_id"]: address for address, info in nodes.items() if "master" in info["flags"]}
    replicas = {address: info["master_id"] for address, info in nodes.items() if "slave" in info["flags"]}
    assert len(primaries) == 3 and len(replicas) == 3
    assert sorted(replicas.values()) == sorted(primaries)  # one replica for each primary
    assert all(info["connected"] for info in nodes.values())
    slots = sum(int(end) - int(start) + 1 for info in nodes.values() for start, end, *_ in
                ([*s] if len(s) == 2 else [s[0], s[0]] for s in info["slots"]))
    assert slots == 16384
    for address in replicas:
        replica_host, replica_port = address.split("@")[0].rsplit(":", 1)
        with node_client(replica_host, int(replica_port)) as replica:
            assert replica.info("replication")["master_link_status"] == "up"


def test_the_client_from_our_settings_writes_and_reads_across_slots(cluster_settings, cluster_stores):
    client = cluster_stores.redis("web")
    assert isinstance(client, RedisCluster)
    # the web role keeps its short timeout, node by node
    for node in client.get_primaries():
        kwargs = node.redis_connection.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == cluster_settings.redis_timeout
    prefix = f"cluster-test:{secrets.token_hex(4)}"
    keys = [f"{prefix}:{n}" for n in range(200)]
    owners = {client.get_node_from_key(key).name for key in keys}
    assert len(owners) == 3, owners  # the keys are spread over every primary

    pipe = client.pipeline()
    for n, key in enumerate(keys):
        pipe.set(key, n, ex=600)
    assert pipe.execute() == [True] * len(keys)
    assert client.mget_nonatomic(keys) == [str(n).encode() for n in range(len(keys))]
    writer = cluster_stores.redis("writer")
    assert writer is not client and writer.get(keys[7]) == b"7"
    writer_timeout = cluster_settings.redis_writer_timeout + cluster_settings.writer_batch_seconds
    assert {n.redis_connection.connection_pool.connection_kwargs["socket_timeout"] for n in writer.get_primaries()} \
        == {writer_timeout}  # longer: it blocks in XREADGROUP

    # each key is on the primary owning its slot, and replicated to that primary's replica
    key = keys[0]
    primary = client.get_node_from_key(key)
    with node_client(primary.host, primary.port) as direct:
        assert direct.get(key) == b"0"
        assert direct.wait(1, 5000) == 1
    replica = client.get_node_from_key(key, replica=True)
    assert replica.name != primary.name
    with node_client(replica.host, replica.port) as direct:
        direct.execute_command("READONLY")
        assert direct.get(key) == b"0"
    client.delete(*keys)  # one DEL per slot: the client splits it
    assert client.exists(*keys) == 0


def test_keys_sharing_a_hash_tag_share_a_slot_and_a_pipeline(cluster_stores):
    client = cluster_stores.redis("web")
    uid = secrets.token_hex(8)
    keys = [f"rv:{{{uid}}}:shop-{n}" for n in range(5)]
    assert len({client.keyslot(key) for key in keys}) == 1
    pipe = client.pipeline()
    for key in keys:
        pipe.zadd(key, {"sku-1": 1.0})
        pipe.expire(key, 600)
    pipe.execute()
    # multi-key commands work within one slot (a cross-slot one is refused by the cluster)
    assert client.zunionstore(keys[0], keys) == 1
    assert client.delete(*keys) == len(keys)


def test_failover_drill_a_replica_takes_over_a_killed_primary(cluster, cluster_stores):
    """The test cluster's short cluster-node-timeout makes this take seconds: the drill later steps rely on."""
    info = json.loads((Path(os.environ["ADSERVER_TEST_SERVERS_DIR"]) / "servers.json").read_text())
    nodes = {node["port"]: node for node in info["cluster"]["redis"]}
    client = cluster_stores.redis("writer")
    key = f"cluster-test:failover:{secrets.token_hex(4)}"
    client.set(key, "kept", ex=600)
    primary = client.get_node_from_key(key)
    with node_client(primary.host, primary.port) as direct:
        assert direct.wait(1, 5000) == 1  # the replica has it before the primary dies
    replica = client.get_node_from_key(key, replica=True)
    victim = nodes[primary.port]
    # by its folder, not the recorded pid: a node an earlier drill restarted has another one
    (pid,) = find_our_servers(Path(victim["cwd"]))

    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    with node_client(replica.host, replica.port) as promoted:
        wait_for(lambda: promoted.info("replication")["role"] == "master", 30, "the replica took over")
    took = time.monotonic() - started
    assert wait_for(lambda: client.get(key), 15, "the key read from the new primary") == b"kept"

    # back as a replica of the new primary, from its recorded command and folder (nodes.conf)
    subprocess.run([*victim["cmd"], "--daemonize", "yes", "--logfile", str(Path(victim["cwd"]) / "redis.log")],
                   cwd=victim["cwd"], check=True, timeout=30)
    wait_for(lambda: cluster_problem(list(nodes)) is None, 60, "the cluster whole again")
    with node_client(primary.host, primary.port) as returned:
        assert returned.info("replication")["role"] == "slave"
    client.delete(key)
    print(f"failover took {took:.1f} s")
