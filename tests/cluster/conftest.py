"""The cluster the cluster tests talk to: ``python -m scripts.testservers run --cluster`` (``make test-cluster``)
starts ZooKeeper, ClickHouse as 2 shards x 2 replicas and a Redis Cluster of 3 primaries with a replica
each, and names them in ``ADSERVER_TEST_CLUSTER_*``.  Without them these tests are skipped (a run on
single-node servers), unless ``ADSERVER_TEST_REQUIRE_CLUSTER=1`` (``make test``) makes that a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

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

    ``TRUNCATE ... ON CLUSTER`` of a replicated table runs on one replica of each shard; the other
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
                ch.execute("TRUNCATE TABLE " + schema.stored_table(ch, table))
                emptied.append(stored)
        for node in nodes:
            for stored in emptied:
                node.execute(f"SYSTEM SYNC REPLICA {ch.database}.{stored}")
    finally:
        for node in nodes:
            node.close()


@pytest.fixture
def cluster_any_ch(cluster_ch: DriverClickHouse) -> DriverClickHouse:
    """The cluster as a store like the others, emptied (the ``cluster`` case of ``any_ch``)."""
    truncate_cluster(cluster_ch)
    return cluster_ch
