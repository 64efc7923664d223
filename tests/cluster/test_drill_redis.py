"""Drill: a Redis Cluster primary is killed (SIGKILL) while pixels come in.

The product runs in cluster mode as deployed: the app (pixel hits through its WSGI stack), writers
draining every stream partition into the ClickHouse cluster. Hits whose partition lived on the dead
primary fail until its replica is promoted; they go to the app's spool, which replays them once the
client has learnt the new slot owner. Every hit the pixel answered must end up in ``events`` once.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from werkzeug.test import Client

from adserver import create_app
from adserver.catalog.registry import save_advertiser
from scripts.testservers.processes import find_our_servers
from scripts.testservers.redis_cluster import cluster_problem
from tests.cluster.conftest import ClickHouseNode, drill_settings, sync_replicas, wait_for
from tracker.partitions import Partitions
from tracker.stores import Stores
from tracker.writer.fleet import partition_writers, run_all, stop_all

pytestmark = pytest.mark.slow

PARTITIONS = 6  # two per primary on average: the killed primary owns some, the others keep answering
DESKTOP_CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
                  "Safari/537.36")


@dataclass
class Traffic:
    """Pixel hits of distinct new visitors, each carrying its number as its sku."""

    client: Client
    advertiser: str
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    sent_at: list[float] = field(default_factory=list)  # monotonic time of each hit, by number - 1

    def run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            self.sent_at.append(time.monotonic())
            try:
                response = self.client.get(f"/px.gif?a={self.advertiser}&e=view_item&sku=D{self.sent}",
                                           headers={"User-Agent": DESKTOP_CHROME})
                ok = response.status_code == 200 and response.mimetype == "image/gif"
                self.statuses["ok" if ok else str(response.status_code)] += 1
            except Exception as exc:  # noqa: BLE001 - counted: the pixel must never fail
                self.statuses["exception"] += 1
                self.failures.append(repr(exc))
            time.sleep(0.002)


def lost_hits(ch, advertiser: str, traffic: Traffic, killed_at: float, failover: float) -> str:
    """Which answered hits are missing and when each was sent: what tells the failover's window from a later loss."""
    stored = {sku for (sku,) in ch.execute("SELECT sku FROM events WHERE advertiser = %(a)s", {"a": advertiser})}
    lost = [(n, round(traffic.sent_at[n - 1] - killed_at, 3)) for n in range(1, traffic.sent + 1)
            if f"D{n}" not in stored]
    return f"{len(lost)} hits not stored (hit, seconds after the kill; promoted after {failover:.1f} s): {lost[:40]}"


def test_killing_a_redis_primary_under_traffic_loses_no_hit(cluster, cluster_ch, clickhouse_nodes: list[ClickHouseNode],
                                                           tmp_path):
    info = json.loads((Path(os.environ["ADSERVER_TEST_SERVERS_DIR"]) / "servers.json").read_text())
    redis_nodes = {node["port"]: node for node in info["cluster"]["redis"]}
    settings = drill_settings(cluster, cluster_ch.database, clickhouse_nodes, PARTITIONS, tmp_path / "var")
    advertiser = f"drill-{secrets.token_hex(4)}"
    save_advertiser(cluster_ch, advertiser)
    partitions = Partitions(settings.stream_key, PARTITIONS)

    writer_stores = Stores(settings)
    writer_redis = writer_stores.redis("writer")
    owners = {writer_redis.get_node_from_key(stream).name for stream in partitions.streams()}
    assert len(owners) == 3, owners  # every primary holds partitions
    victim_node = writer_redis.get_node_from_key(partitions.stream(0))
    victim = redis_nodes[victim_node.port]

    app = create_app(settings)
    services = app.extensions["adserver"]
    spooled = Counter()
    append = services.spool.append

    def counting_append(record: dict) -> bool:  # a hit spooled at once or from a failed lingered batch
        spooled["spooled"] += 1
        return append(record)

    services.spool.append = counting_append
    traffic = Traffic(Client(app, use_cookies=False), advertiser)
    writers = partition_writers(writer_redis, writer_stores.clickhouse(), partitions, list(range(PARTITIONS)),
                                "drill-writer", batch_size=500, batch_seconds=0.05)
    writer_thread = threading.Thread(target=run_all, args=(writers,), daemon=True)
    traffic_thread = threading.Thread(target=traffic.run, daemon=True)
    restarted = False
    try:
        writer_thread.start()
        traffic_thread.start()
        time.sleep(2)
        (pid,) = find_our_servers(Path(victim["cwd"]))  # by folder: an earlier drill may have restarted it
        replica = writer_redis.get_node_from_key(partitions.stream(0), replica=True)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with redis.Redis(host=replica.host, port=replica.port, socket_timeout=5) as promoted:
            wait_for(lambda: promoted.info("replication")["role"] == "master", 30, "the replica took over")
        failover = time.monotonic() - killed_at
        time.sleep(3)  # traffic goes on on the new primary

        # back as a replica of the new primary, from its recorded command and folder (nodes.conf)
        subprocess.run([*victim["cmd"], "--daemonize", "yes", "--logfile", str(Path(victim["cwd"]) / "redis.log")],
                       cwd=victim["cwd"], check=True, timeout=30)
        restarted = True
        wait_for(lambda: cluster_problem(list(redis_nodes)) is None, 60, "the cluster is whole again")
        time.sleep(1)
        traffic.stop.set()
        traffic_thread.join(timeout=30)

        wait_for(lambda: not services.spool.pending_files(), 60, "the spool replayed everything")
        answered = traffic.statuses["ok"]

        def stored() -> tuple[int, int]:
            return cluster_ch.execute("SELECT count(), uniqExact(sku) FROM events WHERE advertiser = %(a)s",
                                      {"a": advertiser})[0]

        try:
            wait_for(lambda: stored()[1] >= answered, 60, "the writers stored every answered hit")
        except AssertionError:
            pass  # reported below, with the figures
        time.sleep(1)  # a late duplicate would show here
        sync_replicas(cluster_ch, "events")  # the count above may have read the replica that was ahead
        rows, distinct = stored()
        print(f"\ndrill redis: sent {traffic.sent}, answered ok {answered}, "
              f"errors {traffic.sent - answered}, spooled {spooled['spooled']}, stored {distinct}, "
              f"duplicates {rows - distinct}, failover {failover:.1f} s")
        assert traffic.sent - answered == 0, (traffic.statuses, traffic.failures[:3])
        assert spooled["spooled"] > 0  # the drill did hit the outage
        assert services.spool.dropped() == 0
        assert rows - distinct == 0
        assert distinct == answered, lost_hits(cluster_ch, advertiser, traffic, killed_at, failover)
    finally:
        traffic.stop.set()
        traffic_thread.join(timeout=30)
        stop_all(writers)
        writer_thread.join(timeout=30)
        services.spool.stop()
        services.close()
        writer_stores.close()
        if not restarted and not find_our_servers(Path(victim["cwd"])):
            subprocess.run([*victim["cmd"], "--daemonize", "yes", "--logfile",
                            str(Path(victim["cwd"]) / "redis.log")], cwd=victim["cwd"], check=True, timeout=30)
        wait_for(lambda: cluster_problem(list(redis_nodes)) is None, 60, "the cluster is whole again")
