"""A ClickHouse URL naming several nodes: the client goes on through the next node when the first one
stops, reading and inserting through the Distributed tables, with no change of settings."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import pytest

from tests.cluster.conftest import ClickHouseNode, settle_ddl
from tracker.clickhouse import DriverClickHouse
from tracker.errors import StoreUnavailable
from tracker.settings_parsers import parse_clickhouse_url


def _answering(ch: DriverClickHouse) -> str:
    """The replica name of the node the client is connected to."""
    return ch.execute("SELECT substitution FROM system.macros WHERE macro = 'replica'")[0][0]


def _rows(n: int, tag: str) -> list[tuple]:
    now = int(time.time())
    return [(now, "failover", "view_item", f"{tag}-{i}", f"{tag}/{i}") for i in range(n)]


COLUMNS = ("ts", "advertiser", "event", "uid", "stream_id")


def test_a_closed_first_node_is_skipped_for_the_next(clickhouse_url):
    """On a single server too: a first node that refuses connections costs an attempt, not the query."""
    url = parse_clickhouse_url(clickhouse_url)
    listed = parse_clickhouse_url(f"clickhouse://127.0.0.1:1,{url.host}:{url.port}/{url.database}")
    ch = DriverClickHouse(listed, connect_timeout=2, timeout=30)
    try:
        assert ch.execute("SELECT 1") == [(1,)]
    finally:
        ch.close()
    alone = DriverClickHouse(listed.node("127.0.0.1", 1), connect_timeout=2, timeout=30, retries=0)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:1"):
        alone.execute("SELECT 1")


@pytest.mark.slow
def test_a_client_whose_first_node_is_stopped_reads_and_inserts_through_the_next(
        cluster, cluster_ch, clickhouse_nodes: list[ClickHouseNode]):
    first, twin, *others = clickhouse_nodes  # the URL names the first replica of shard 1 first
    url = replace(parse_clickhouse_url(cluster.clickhouse_url), database=cluster_ch.database)
    listed = replace(url, host="127.0.0.1", port=first.port,
                     alt_hosts=tuple(("127.0.0.1", n.port) for n in (twin, *others)))
    ch = DriverClickHouse(listed, connect_timeout=2, timeout=60, cluster=cluster.name)
    tag = secrets.token_hex(4)
    try:
        ch.insert("events", COLUMNS, _rows(100, f"{tag}-before"))
        assert _answering(ch) == first.host
        first.stop()
        try:
            alone = first.client(cluster_ch.database)
            with pytest.raises(StoreUnavailable):  # the first node is really gone
                alone.execute("SELECT 1")
            alone.close()
            ch.insert("events", COLUMNS, _rows(100, f"{tag}-during"))
            (count,), = ch.execute("SELECT count() FROM events WHERE uid LIKE %(tag)s", {"tag": f"{tag}-%"})
            assert count == 200
            assert _answering(ch) == twin.host  # the next node of the URL answers
        finally:
            first.start()
            settle_ddl(clickhouse_nodes, cluster.name, cluster_ch.database)
        # the first node catches up with its shard: its twin's rows of the outage reach it too
        counts = []
        for node in (first, twin):
            direct = node.client(cluster_ch.database)
            try:
                direct.execute(f"SYSTEM SYNC REPLICA {cluster_ch.database}.events_local")
                counts.append(direct.execute(
                    "SELECT countIf(uid LIKE %(during)s), count(), uniqExact(stream_id) FROM events_local "
                    "WHERE uid LIKE %(tag)s", {"tag": f"{tag}-%", "during": f"{tag}-during-%"})[0])
            finally:
                direct.close()
        assert counts[0] == counts[1]
        during, count, distinct = counts[0]
        assert 0 < during < count == distinct  # rows of shard 1 from before and during the outage, once each
    finally:
        ch.close()
