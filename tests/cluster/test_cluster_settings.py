"""Cluster mode's settings (no servers): the Redis Cluster URL, the ClickHouse cluster's name and the stream's
partitions, and the client a cluster URL gives."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.conftest import SECRET
from tracker.settings import SettingsError, load_settings
from tracker.settings_parsers import RedisClusterURL, parse_redis_cluster_url
from tracker.stores import Stores


def test_a_redis_cluster_url_lists_seed_nodes():
    assert parse_redis_cluster_url("redis+cluster://10.0.0.1:7000, redis-2:7001,[::1]:7002/0") == RedisClusterURL(
        (("10.0.0.1", 7000), ("redis-2", 7001), ("::1", 7002)))
    secured = parse_redis_cluster_url("rediss+cluster://app:p%40ss@h1:6380,h2:6380")
    assert (secured.username, secured.password, secured.ssl, secured.nodes) == (
        "app", "p@ss", True, (("h1", 6380), ("h2", 6380)))
    assert parse_redis_cluster_url("redis+cluster://:secret@h:6379").username is None


def test_cluster_settings_load(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": SECRET,
           "ADSERVER_REDIS_URL": "redis+cluster://r1:6379,r2:6379", "ADSERVER_CLICKHOUSE_URL": "clickhouse://ch-2-1/ads",
           "ADSERVER_CLICKHOUSE_CLUSTER": "adserver_cluster", "ADSERVER_STREAM_PARTITIONS": "8"}
    settings = load_settings(env)
    assert settings.redis_cluster.nodes == (("r1", 6379), ("r2", 6379))
    assert (settings.clickhouse_cluster, settings.stream_partitions, settings.database) == ("adserver_cluster", 8, "ads")
    assert not settings.embedded
    single = load_settings({**env, "ADSERVER_REDIS_URL": "redis://r1:6379/0", "ADSERVER_CLICKHOUSE_CLUSTER": ""})
    assert single.redis_cluster is None and single.clickhouse_cluster is None and single.redis_url == "redis://r1:6379/0"


@pytest.mark.parametrize("url", ["redis+cluster://h1:7000;h2:7001", "redis+cluster://h1", "redis+cluster://h1:0",
                                 "redis+cluster://h 1:7000", "redis+cluster://h1:7000/2"])
def test_malformed_cluster_urls_are_refused_naming_the_variable(tmp_path, url):
    with pytest.raises(SettingsError, match="^ADSERVER_REDIS_URL"):
        load_settings({"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_REDIS_URL": url})


def test_an_unreachable_cluster_is_a_connection_error_naming_its_seeds(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        settings = load_settings({"ADSERVER_REDIS_URL": f"redis+cluster://127.0.0.1:{port}",
                                  "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_DATA_DIR": str(tmp_path)})
        stores = Stores(settings)
        with pytest.raises(redis.ConnectionError, match=f"127.0.0.1:{port}"):
            stores.redis("web")
