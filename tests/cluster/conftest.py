"""The cluster the cluster tests talk to: ``python -m scripts.testservers run --cluster`` (``make test-cluster``)
starts ZooKeeper, ClickHouse as 2 shards x 2 replicas and a Redis Cluster of 3 primaries with a replica
each, and names them in ``ADSERVER_TEST_CLUSTER_*``.  Without them these tests are skipped (a run on
single-node servers), unless ``ADSERVER_TEST_REQUIRE_CLUSTER=1`` (``make test``) makes that a failure.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis

from scripts.testservers.clickhouse import clickhouse_env
from scripts.testservers.clickhouse_cluster import read_layout
from scripts.testservers.common import tail
from scripts.testservers.processes import find_our_servers, spawn, terminate
from tests import waiting
from tests.conftest import SECRET
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.settings import Settings, load_settings
from tracker.settings_parsers import parse_clickhouse_url
from tracker.stores import Stores

CLUSTER_VARIABLES = ("ADSERVER_TEST_CLUSTER_REDIS_URL", "ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL",
                     "ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES", "ADSERVER_TEST_CLICKHOUSE_CLUSTER")


@dataclass(frozen=True)
class ClusterServers:
    redis_url: str
    clickhouse_url: str
    clickhouse_nodes: tuple[str, ...]  # shard by shard, replica by replica
    name: str


@pytest.fixture(scope="session")
def cluster() -> ClusterServers:
    missing = [name for name in CLUSTER_VARIABLES if not os.environ.get(name)]
    if missing and os.environ.get("ADSERVER_TEST_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"ADSERVER_TEST_REQUIRE_CLUSTER=1 but {', '.join(missing)} unset: run the tests with "
                    "`python -m scripts.testservers run --cluster`", pytrace=False)
    if missing:
        pytest.skip(f"no test cluster ({', '.join(missing)} unset): run `make test-cluster`")
    env = os.environ
    return ClusterServers(env["ADSERVER_TEST_CLUSTER_REDIS_URL"], env["ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL"],
                       tuple(env["ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES"].split(",")),
                       env["ADSERVER_TEST_CLICKHOUSE_CLUSTER"])


@pytest.fixture(scope="session")
def cluster_settings(cluster: ClusterServers, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The product's settings in cluster mode, as an operator sets them."""
    return load_settings({
        "ADSERVER_REDIS_URL": cluster.redis_url,
        "ADSERVER_CLICKHOUSE_URL": cluster.clickhouse_url,
        "ADSERVER_CLICKHOUSE_CLUSTER": cluster.name,
        "ADSERVER_SECRET_KEY": SECRET,
        "ADSERVER_DATA_DIR": str(tmp_path_factory.mktemp("cluster-data")),
    })


@pytest.fixture
def cluster_stores(cluster_settings: Settings) -> Iterator[Stores]:
    stores = Stores(cluster_settings)
    yield stores
    stores.close()


@pytest.fixture(scope="session")
def cluster_ch(cluster: ClusterServers) -> Iterator[DriverClickHouse]:
    """A database of its own on the test cluster, migrated in its cluster form, dropped at the end.

    Its own name gives it its own ZooKeeper paths: a kept cluster can run the tests again, and xdist
    workers do not share tables."""
    url = parse_clickhouse_url(cluster.clickhouse_url)
    database = f"{url.database}_{secrets.token_hex(3)}"
    ch = DriverClickHouse(replace(url, database=database), connect_timeout=5, timeout=120, cluster=cluster.name)
    ch.create_database()
    schema.migrate(ch)
    yield ch
    ch.close()
    admin = DriverClickHouse(replace(url, database="default"), connect_timeout=5, timeout=120)
    admin.execute(f"DROP DATABASE IF EXISTS {database} ON CLUSTER {cluster.name}")
    admin.close()


def truncate_cluster(ch: DriverClickHouse) -> None:
    """Empty every table holding rows on any replica, and wait until every replica has emptied it.

    A replicated table is emptied on one replica of each shard (``schema.truncate_stored``); the other
    applies it from the replication log a moment later, so each node is waited for."""
    nodes = ch.replicas()
    try:
        filled: set[str] = set()
        for node in nodes:
            filled |= {row[0] for row in node.execute(
                "SELECT DISTINCT table FROM system.parts WHERE database = %(db)s AND active", {"db": ch.database})}
        emptied = []
        for table in schema.TABLES:
            stored = f"{table}_local" if schema.LAYOUTS[table] is not None else table
            if stored in filled:
                schema.truncate_stored(ch, table)
                emptied.append(stored)
        for node in nodes:
            for stored in emptied:
                node.execute(f"SYSTEM SYNC REPLICA {ch.database}.{stored}")
    finally:
        for node in nodes:
            node.close()


def sync_replicas(ch: DriverClickHouse, *tables: str) -> None:
    """Wait until every replica has fetched every part its twin holds of ``tables`` (their ``_local``
    tables). A read through ``Distributed`` picks one replica per shard, and the one it picks may not
    have fetched the last insert yet: a drill counts what is stored only after this."""
    for replica in ch.replicas():
        try:
            for table in tables:
                replica.execute(f"SYSTEM SYNC REPLICA {ch.database}.{table}_local")
        finally:
            replica.close()


@pytest.fixture
def cluster_any_ch(cluster_ch: DriverClickHouse) -> DriverClickHouse:
    """The cluster as a store like the others, emptied (the ``cluster`` case of ``any_ch``)."""
    truncate_cluster(cluster_ch)
    return cluster_ch


@dataclass(frozen=True)
class ClickHouseNode:
    """One ClickHouse server of the test cluster as ``servers.json`` records it, for drills that stop it
    and start it again (from its recorded command and folder, with the variables its config reads)."""

    host: str  # its replica name in remote_servers
    shard: int
    port: int  # native protocol
    cmd: tuple[str, ...]
    cwd: Path

    def client(self, database: str) -> DriverClickHouse:
        return DriverClickHouse(parse_clickhouse_url(f"clickhouse://127.0.0.1:{self.port}/{database}"),
                                connect_timeout=2, timeout=60, retries=0)

    def stop(self) -> None:
        """SIGTERM, as an operator stops a server, and wait until it is gone."""
        # by its folder, not the recorded pid: a node an earlier drill restarted has another one
        pids = find_our_servers(self.cwd)
        assert pids, f"ClickHouse {self.host} is not running"
        terminate(pids, grace=30)

    def start(self, timeout: float = 60) -> None:
        """Start it again and wait until it answers and has its ZooKeeper session (replication works)."""
        if not find_our_servers(self.cwd):
            spawn(self.cmd, cwd=self.cwd, log_path=self.cwd / "clickhouse-stdout.log", detached=True,
                  env=clickhouse_env(read_layout().node_env(self.host)))

        def answers() -> bool:
            ch = self.client("default")
            try:
                ch.execute("SELECT count() FROM system.zookeeper WHERE path = '/'")
                return True
            finally:
                ch.close()

        def logs() -> str:
            return f"ClickHouse {self.host} back with its ZooKeeper session; its logs end:\n" + "\n".join(
                f"{path}:\n{tail(path, 15)}" for path in (
                    self.cwd / "clickhouse-stdout.log", self.cwd / "clickhouse-log" / "clickhouse-server.err.log"))

        waiting.wait_for(answers, timeout, logs, tolerate=(Exception,), interval=0.2)  # any error: not up yet


def settle_ddl(nodes: list[ClickHouseNode], cluster: str, database: str) -> None:
    """Wait until every node's DDL worker has worked through the cluster's DDL queue (a node started
    again reads the whole queue first): a no-op ``ON CLUSTER`` statement returns only when every node
    ran it, so the next test's migrations do not meet a node still catching up."""
    ch = nodes[0].client("default")
    try:
        ch.execute(f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}")
    finally:
        ch.close()


@pytest.fixture(scope="session")
def clickhouse_nodes(cluster: ClusterServers) -> list[ClickHouseNode]:
    """The cluster's ClickHouse servers, shard by shard, replica by replica (as ``clickhouse_nodes`` URLs)."""
    info = json.loads((Path(os.environ["ADSERVER_TEST_SERVERS_DIR"]) / "servers.json").read_text())
    nodes = [ClickHouseNode(n["host"], n["shard"], n["tcp_port"], tuple(n["cmd"]), Path(n["cwd"]))
             for n in info["cluster"]["clickhouse"]]
    by_port = {n.port: n for n in nodes}
    return [by_port[parse_clickhouse_url(url).port] for url in cluster.clickhouse_nodes]


def wait_for(check, seconds: float, what: str, tolerate: tuple[type[Exception], ...] = (redis.RedisError,)):
    """``tests.waiting.wait_for`` where a Redis error counts as "not yet" (a node restarting, a failover under way)."""
    return waiting.wait_for(check, seconds, what, tolerate)


def drill_settings(cluster: ClusterServers, database: str, nodes: list[ClickHouseNode], partitions: int,
                   data_dir: Path) -> Settings:
    """The product's settings for a drill: the cluster's Redis, every ClickHouse node named in the URL (in
    ``nodes``' order, so a client goes on through the next one when one stops), a stream of its own."""
    every_node = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    return load_settings({
        "ADSERVER_REDIS_URL": cluster.redis_url,
        "ADSERVER_CLICKHOUSE_URL": f"clickhouse://{every_node}/{database}",
        "ADSERVER_CLICKHOUSE_CLUSTER": cluster.name,
        "ADSERVER_STREAM_PARTITIONS": str(partitions),
        "ADSERVER_STREAM_KEY": f"drill:events:{secrets.token_hex(4)}",
        "ADSERVER_SECRET_KEY": SECRET,
        "ADSERVER_DATA_DIR": str(data_dir),
    })
