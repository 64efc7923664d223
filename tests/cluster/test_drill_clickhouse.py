"""Drill: one ClickHouse replica of each shard is stopped while events come in, then started again.

Writers drain the stream partitions into the cluster's ``Distributed`` tables through a client whose
URL lists every node, the stopped ones first; a marketer's report is asked for throughout. With one
replica of each shard up, inserts and reports go on; started again, the stopped replicas fetch what
their twins stored meanwhile, and every replica of a shard ends up with exactly its shard's rows.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from adserver.console.report import ReportRequest, run_report
from tests.cluster.conftest import ClickHouseNode, drill_settings, settle_ddl
from tests.waiting import poll
from tracker.partitions import Partitions
from tracker.stores import Stores
from tracker.stream import EventStream
from tracker.writer.fleet import partition_writers, run_all, stop_all

pytestmark = pytest.mark.slow

PARTITIONS = 2


@dataclass
class Impressions:
    """Impressions of distinct visitors appended to the stream, each with its own impression id."""

    stream: EventStream
    advertiser: str
    sent: int = 0
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            n = self.sent + self.refused
            uid = secrets.token_hex(8)
            row = {"ts": time.time(), "advertiser": self.advertiser, "event": "impression", "uid": uid,
                   "skus": ["A", "B"], "reasons": ["popular", "popular"], "placement": "feed",
                   "impression_id": f"imp-{n}", "size": "300x250", "addressable": 1}
            try:
                self.stream.record(row, uid=uid)
                self.sent += 1
            except Exception:  # noqa: BLE001 - Redis is not what this drill stops: counted, and asserted 0
                self.refused += 1
            time.sleep(0.002)


@dataclass
class Reports:
    """A marketer asking for today's report every half second."""

    ch: object
    advertiser: str
    asked: int = 0
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def ask(self) -> int:
        today = datetime.now(UTC).date()
        return run_report(self.ch, ReportRequest(self.advertiser, today, today, "day", "UTC")).totals.impressions

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.asked += 1
            try:
                self.ask()
                self.answered += 1
            except Exception as exc:  # noqa: BLE001 - counted and shown
                self.errors.append(repr(exc))


def _replicated_tables(node: ClickHouseNode, database: str) -> list[str]:
    ch = node.client(database)
    try:
        return [name for (name,) in ch.execute(
            "SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE 'Replicated%%'", {"db": database})]
    finally:
        ch.close()


def _sync(node: ClickHouseNode, database: str) -> None:
    """Wait until the node has fetched every part its twin has, in every replicated table (reports too)."""
    ch = node.client(database)
    try:
        for name in _replicated_tables(node, database):
            ch.execute(f"SYSTEM SYNC REPLICA `{database}`.`{name}`")
    finally:
        ch.close()


def _held(node: ClickHouseNode, database: str, advertiser: str) -> tuple[int, int, int]:
    """(rows, distinct impression ids, rows of the other shard) the node's local table holds for the drill."""
    ch = node.client(database)
    try:
        return ch.execute("SELECT count(), uniqExact(impression_id), countIf(modulo(cityHash64(uid), 2) != %(i)s) "
                          "FROM events_local WHERE advertiser = %(a)s", {"a": advertiser, "i": node.shard - 1})[0]
    finally:
        ch.close()


def test_stopping_a_replica_of_each_shard_under_traffic_loses_and_doubles_nothing(
        cluster, cluster_ch, clickhouse_nodes: list[ClickHouseNode], tmp_path):
    stopped = [n for n in clickhouse_nodes if n.host.endswith("-1")]  # replica 1 of each shard
    assert [n.shard for n in stopped] == [1, 2] and clickhouse_nodes[0] in stopped
    settings = drill_settings(cluster, cluster_ch.database, clickhouse_nodes, PARTITIONS, tmp_path / "var")  # the first to stop is named first
    advertiser = f"drill-{secrets.token_hex(4)}"
    database = cluster_ch.database
    writer_stores, web_stores, check_stores = Stores(settings), Stores(settings), Stores(settings)
    redis_client = writer_stores.redis("writer")
    partitions = Partitions(settings.stream_key, PARTITIONS)
    writers = partition_writers(redis_client, writer_stores.clickhouse(), partitions, list(range(PARTITIONS)),
                                "drill-writer", batch_size=500, batch_seconds=0.05)
    traffic = Impressions(EventStream(web_stores.redis("web"), settings.stream_key, partitions=PARTITIONS), advertiser)
    reports = Reports(web_stores.clickhouse(), advertiser)

    def stored_through_distributed() -> tuple[int, int]:
        return check_stores.clickhouse().execute(
            "SELECT count(), uniqExact(impression_id) FROM events WHERE advertiser = %(a)s", {"a": advertiser})[0]

    threads = [threading.Thread(target=run_all, args=(writers,), daemon=True),
               threading.Thread(target=traffic.run, daemon=True), threading.Thread(target=reports.run, daemon=True)]
    down: list[ClickHouseNode] = []
    try:
        for thread in threads:
            thread.start()
        time.sleep(2)
        for node in stopped:
            node.stop()
            down.append(node)
        outage_started, sent_before = stored_through_distributed()[0], traffic.sent
        asked_before = reports.asked
        time.sleep(4)
        during, sent_during = stored_through_distributed()[0] - outage_started, traffic.sent - sent_before
        reports_during = reports.asked - asked_before
        restarted_at = time.monotonic()
        for node in stopped:
            node.start()
            down.remove(node)
        for node in stopped:
            _sync(node, database)
        catch_up = time.monotonic() - restarted_at
        time.sleep(1)
        traffic.stop.set()
        reports.stop.set()
        threads[1].join(timeout=30)
        threads[2].join(timeout=30)

        poll(lambda: stored_through_distributed()[0] >= traffic.sent, 60, interval=0.2)
        time.sleep(1)  # a late second copy would show here
        for node in clickhouse_nodes:
            _sync(node, database)
        held = {node.host: _held(node, database, advertiser) for node in clickhouse_nodes}
        rows, distinct = stored_through_distributed()
        failures = sum(w.failures for w in writers)
        print(f"\ndrill clickhouse: sent {traffic.sent}, stored {distinct}, duplicates {rows - distinct}, "
              f"insert failures {failures}, reports answered {reports.answered}/{reports.asked}, "
              f"catch-up {catch_up:.1f} s (during the outage: sent {sent_during}, stored {during}; per replica {held})")

        assert traffic.refused == 0
        assert during > 0  # inserts went on with one replica of each shard
        assert reports_during > 0 and reports.answered == reports.asked, reports.errors[:3]
        assert rows == distinct == traffic.sent
        for shard in (1, 2):
            twins = [held[n.host] for n in clickhouse_nodes if n.shard == shard]
            assert twins[0] == twins[1]  # the restarted replica holds exactly what its twin holds
            assert twins[0][0] == twins[0][1] > 0 and twins[0][2] == 0  # once each, only its shard's rows
        assert sum(held[n.host][0] for n in clickhouse_nodes if n.host.endswith("-1")) == traffic.sent
        assert reports.ask() == traffic.sent  # the report tables, filled on each shard, count each once
    finally:
        traffic.stop.set()
        reports.stop.set()
        stop_all(writers)
        for thread in threads:
            thread.join(timeout=60)
        for node in down:
            node.start()
        settle_ddl(clickhouse_nodes, cluster.name, database)
        for stores in (writer_stores, web_stores, check_stores):
            stores.close()
