"""The ClickHouse cluster of the cluster mode: replicated tables created ON CLUSTER, and a Distributed
table over them that spreads rows over the shards by visitor and lands each on both replicas."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from clickhouse_driver import Client

from tracker.clickhouse import DriverClickHouse
from tracker.settings_parsers import parse_clickhouse_url

pytestmark = pytest.mark.slow

ROWS = 10_000


def node(url: str) -> DriverClickHouse:
    return DriverClickHouse(parse_clickhouse_url(url), connect_timeout=5, timeout=60)


@pytest.fixture
def replicated_table(cluster, cluster_stores) -> Iterator[tuple[str, str]]:
    """A ReplicatedMergeTree table on every node and a Distributed table over it (names of both)."""
    ch = cluster_stores.clickhouse()
    db = parse_clickhouse_url(cluster.clickhouse_url).database
    local = f"visits_{secrets.token_hex(4)}"  # its own ZooKeeper path: a kept cluster may run the test again
    ch.execute(f"CREATE TABLE {db}.{local} ON CLUSTER {cluster.name} (uid String, n UInt32) "
               f"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}') "
               "ORDER BY uid")
    ch.execute(f"CREATE TABLE {db}.{local}_all ON CLUSTER {cluster.name} AS {db}.{local} "
               f"ENGINE = Distributed({cluster.name}, {db}, {local}, cityHash64(uid))")
    yield db, local
    ch.execute(f"DROP TABLE IF EXISTS {db}.{local}_all ON CLUSTER {cluster.name}")
    ch.execute(f"DROP TABLE IF EXISTS {db}.{local} ON CLUSTER {cluster.name}")


def test_distributed_rows_land_on_both_replicas_of_their_shard(cluster, replicated_table):
    db, local = replicated_table
    url = parse_clickhouse_url(cluster.clickhouse_url)
    rows = [(secrets.token_hex(8), n) for n in range(ROWS)]
    client = Client(url.host, port=url.port, database=db, settings={"insert_distributed_sync": 1})
    try:
        client.execute(f"INSERT INTO {db}.{local}_all (uid, n) VALUES", rows)
    finally:
        client.disconnect()

    for url in cluster.clickhouse_nodes:
        ch = node(url)
        try:
            # a Distributed insert writes one replica of each shard; the other fetches the part afterwards
            ch.execute(f"SYSTEM SYNC REPLICA {db}.{local}")
        finally:
            ch.close()
    counts = {}
    for shard_url in cluster.clickhouse_nodes:
        ch = node(shard_url)
        try:
            (count, misplaced), = ch.execute(
                f"SELECT count(), countIf(modulo(cityHash64(uid), 2) != %(index)s) FROM {db}.{local}",
                {"index": cluster.clickhouse_nodes.index(shard_url) // 2})
            (total,), = ch.execute(f"SELECT count() FROM {db}.{local}_all")
        finally:
            ch.close()
        counts[shard_url] = count
        assert misplaced == 0  # the Distributed table sends a row to shard cityHash64(uid) % shards
        assert total == ROWS  # any node reads the whole table through the Distributed one
    first, second = cluster.clickhouse_nodes[:2], cluster.clickhouse_nodes[2:]
    assert counts[first[0]] == counts[first[1]] and counts[second[0]] == counts[second[1]]
    assert counts[first[0]] + counts[second[0]] == ROWS
    assert min(counts.values()) > ROWS * 0.4  # both shards take a fair share


def test_every_node_sees_its_replicas_active(cluster, replicated_table):
    db, local = replicated_table
    for url in cluster.clickhouse_nodes:
        ch = node(url)
        try:
            (readonly, active, total), = ch.execute(
                "SELECT is_readonly, active_replicas, total_replicas FROM system.replicas "
                "WHERE database = %(db)s AND table = %(table)s", {"db": db, "table": local})
        finally:
            ch.close()
        assert (readonly, active, total) == (0, 2, 2)
