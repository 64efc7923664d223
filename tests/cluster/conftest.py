"""The cluster the cluster tests talk to: ``python -m scripts.testservers run --cluster`` (``make test-cluster``)
starts ZooKeeper, ClickHouse as 2 shards x 2 replicas and a Redis Cluster of 3 primaries with a replica
each, and names them in ``ADSERVER_TEST_CLUSTER_*``.  Without them these tests are skipped (a run on
single-node servers), unless ``ADSERVER_TEST_REQUIRE_CLUSTER=1`` (``make test``) makes that a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import SECRET
from tracker.settings import Settings, load_settings
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
