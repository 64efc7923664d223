"""The app on a single Redis server, or on the Redis Cluster with four stream partitions: fixtures that
a test module imports to run its tests in both modes, the same code path and the same expectations.

``redis_mode`` is "single" unless a test asks for both (``@pytest.mark.parametrize("redis_mode",
MODES, indirect=True)``, or ``pytest_generate_tests`` for a whole module). On the cluster, which is
shared and not flushed, tests read only their own keys (each has its own stream key and visitors).
"""

from __future__ import annotations

import pytest

from tests.cluster.conftest import cluster, cluster_settings, cluster_stores  # noqa: F401 - fixtures
from tests.conftest import drain as drain_one
from tests.conftest import server_settings
from tests.stream_events import events_waiting
from tracker.partitions import Partitions
from tracker.writer.fleet import partition_writers

CLUSTER_PARTITIONS = "4"
MODES = ["single", "cluster"]


@pytest.fixture
def redis_mode(request) -> str:
    return getattr(request, "param", "single")


@pytest.fixture
def settings(settings, redis_mode, request, clickhouse_url):
    """The server settings, or the same on the Redis Cluster with four stream partitions."""
    if redis_mode == "single":
        return settings
    redis_url = request.getfixturevalue("cluster").redis_url
    return server_settings(settings.data_dir, redis_url, clickhouse_url,
                           ADSERVER_STREAM_PARTITIONS=CLUSTER_PARTITIONS)


@pytest.fixture
def redis_client(redis_client, redis_mode, request):
    """The flushed Redis server, or the (shared) Redis Cluster."""
    return redis_client if redis_mode == "single" else request.getfixturevalue("cluster_stores").redis("web")


@pytest.fixture
def writers(settings, ch, redis_client):
    """A writer per stream partition (one on a single server)."""
    found = partition_writers(redis_client, ch, Partitions(settings.stream_key, settings.stream_partitions),
                              list(range(settings.stream_partitions)), "test-writer", batch_size=1000,
                              batch_seconds=0.01)
    for w in found:
        w.ensure_group()
    return found


def drain_all(writers) -> int:
    """Run every partition's writer until its stream holds nothing unread or unacknowledged."""
    return sum(drain_one(w) for w in writers)


def stream_length(redis_client, settings) -> int:
    """Events in every partition of the test's stream (an entry may hold several)."""
    return events_waiting(redis_client, Partitions(settings.stream_key, settings.stream_partitions).streams())
