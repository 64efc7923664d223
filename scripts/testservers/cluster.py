"""The cluster mode (``start --cluster``, ``run --cluster``): ZooKeeper, a replicated and sharded ClickHouse
cluster and a Redis Cluster, on loopback, next to the single-node servers.

Every server is started at once and then waited for, so the start-up takes about as long as the slowest
part (joining the Redis Cluster and the ClickHouse nodes' first ZooKeeper session), not the sum.  The
servers live in ``<folder>/cluster/``: stopping and the left-over check find them there like the others.
Variables handed to the tests::

    ADSERVER_TEST_CLUSTER_REDIS_URL          redis+cluster://127.0.0.1:P1,...  (every node, as seeds)
    ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL     clickhouse://127.0.0.1:TCP/adserver_test  (the first node)
    ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES   every node's URL, comma-separated, shard by shard
    ADSERVER_TEST_CLICKHOUSE_CLUSTER         the cluster's name in remote_servers
    ADSERVER_TEST_CLUSTER_ZOOKEEPER          127.0.0.1:PORT
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from . import clickhouse_cluster as chc
from . import redis_cluster as rc
from .clickhouse import clickhouse_ping, launch_clickhouse
from .clickhouse_config import ClickHousePorts
from .common import CLUSTER_DEADLINE_S, LOOPBACK, START_ATTEMPTS, SetupError, exit_status, pick_free_ports, say, tail
from .install import ensure_cluster_binaries
from .processes import ServerStartError, spawn, stop_processes
from .redis import RedisServer, redis_ping
from .zookeeper import ZooKeeperServer, zookeeper_command, zookeeper_ok


@dataclass
class Cluster:
    """The running cluster servers of one folder."""

    folder: Path
    layout: chc.ClusterLayout
    zookeeper: ZooKeeperServer
    clickhouse: list[chc.ClusterNode]
    redis: list[RedisServer]
    ready_s: float = 0.0

    def env(self) -> dict[str, str]:
        seeds = ",".join(f"{LOOPBACK}:{node.port}" for node in self.redis)
        return {
            "ADSERVER_TEST_CLUSTER_REDIS_URL": f"redis+cluster://{seeds}",
            "ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL": self.clickhouse[0].url,
            "ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES": ",".join(node.url for node in self.clickhouse),
            "ADSERVER_TEST_CLICKHOUSE_CLUSTER": self.layout.name,
            "ADSERVER_TEST_CLUSTER_ZOOKEEPER": self.zookeeper.address,
        }

    def procs(self) -> list[Popen[bytes]]:
        return [self.zookeeper.proc, *(n.server.proc for n in self.clickhouse), *(n.proc for n in self.redis)]

    def describe(self) -> dict[str, Any]:
        """The cluster's entry in servers.json."""
        return {
            "name": self.layout.name,
            "dir": str(self.folder),
            "ready_s": round(self.ready_s, 1),
            "zookeeper": self.zookeeper.describe(),
            "clickhouse": [node.describe() for node in self.clickhouse],
            "redis": [node.describe() for node in self.redis],
        }


def recorded_pids(info: dict[str, Any]) -> list[int]:
    """The pids of the ``cluster`` entry of servers.json (none if there is no such entry)."""
    cluster = info.get("cluster") or {}
    entries = [cluster.get("zookeeper") or {}, *cluster.get("clickhouse", []), *cluster.get("redis", [])]
    return [int(entry["pid"]) for entry in entries if "pid" in entry]


Watched = Sequence[tuple[str, Popen[bytes], Sequence[Path]]]


def _wait(what: str, problem: Callable[[], str | None], watched: Watched, deadline: float) -> None:
    """Poll ``problem()`` until it says nothing is wrong; fail early if a watched server exits."""
    while True:
        last = problem()
        if last is None:
            return
        for name, proc, logs in watched:
            if proc.poll() is not None:
                details = "\n".join(f"--- {log} (tail):\n{tail(log)}" for log in logs)
                raise ServerStartError(f"{name} exited with status {exit_status(proc.returncode)} while waiting "
                                       f"for {what}\n{details}", logs)
        if time.monotonic() > deadline:
            logs = [log for _, _, server_logs in watched for log in server_logs]
            raise ServerStartError(f"{what} not ready after {CLUSTER_DEADLINE_S:.0f} s: {last}", logs)
        time.sleep(0.2)


def _launch(folder: Path, binaries: tuple[str, str, str], children: list[Popen[bytes]], *,
            detached: bool) -> Cluster:
    """Start every server of the cluster (no waiting), recording each child at once in ``children``."""
    redis_bin, clickhouse_bin, java = binaries
    layout = chc.read_layout()
    ports = iter(pick_free_ports(1 + 3 * len(layout.hosts) + 2 * rc.NODES))
    zk_port = next(ports)
    zk_folder = folder / "zookeeper"
    zk_folder.mkdir(parents=True)
    zk_cmd, zk_config = zookeeper_command(java, zk_folder, zk_port)
    zk_log = zk_folder / "zookeeper.log"
    zk_proc = spawn(zk_cmd, cwd=zk_folder, log_path=zk_log, detached=detached)
    children.append(zk_proc)
    zookeeper = ZooKeeperServer(zk_port, zk_cmd, zk_folder, zk_config, zk_log, zk_proc)

    redis_nodes = []
    for number in range(1, rc.NODES + 1):
        port, bus_port = next(ports), next(ports)
        node_folder = folder / f"redis-{number}"
        node_folder.mkdir()
        cmd = rc.redis_node_command(redis_bin, node_folder, port, bus_port)
        log = node_folder / "redis.log"
        proc = spawn(cmd, cwd=node_folder, log_path=log, detached=detached)
        children.append(proc)
        redis_nodes.append(RedisServer(port, cmd, node_folder, log, proc, 0.0))

    all_ports = {host: ClickHousePorts(next(ports), next(ports), next(ports)) for host in layout.hosts}
    cluster_xml = chc.render_cluster_xml(chc.CLUSTER_XML, {h: p.tcp for h, p in all_ports.items()}, zk_port)
    config_d = {"cluster.xml": cluster_xml, "memory.xml": chc.MEMORY_XML.read_text()}
    nodes = []
    for shard, replicas in enumerate(layout.shards, start=1):
        for host in replicas:
            node_folder = folder / host
            node_folder.mkdir()
            server = launch_clickhouse(clickhouse_bin, node_folder, all_ports[host], detached=detached,
                                       config_d=config_d, extra_env=layout.node_env(host))
            children.append(server.proc)
            nodes.append(chc.ClusterNode(host, shard, server))
    return Cluster(folder, layout, zookeeper, nodes, redis_nodes)


def _first_problem(checks: Sequence[Callable[[], str | None]]) -> str | None:
    return next(filter(None, (check() for check in checks)), None)


def _node_check(node: chc.ClusterNode, layout: chc.ClusterLayout) -> Callable[[], str | None]:
    def check() -> str | None:
        if not clickhouse_ping(node.server.ports):
            return f"{node.host} does not answer yet"
        try:
            return chc.node_problem(node, layout.name, len(layout.hosts))
        except SetupError as exc:
            return str(exc)

    return check


def _wait_healthy(cluster: Cluster, redis_cli: str) -> None:
    """Wait until every part answers, join the Redis Cluster, and wait until it is whole."""
    started = time.monotonic()
    deadline = started + CLUSTER_DEADLINE_S
    redis_watch = [(f"redis-server {n.port}", n.proc, [n.log]) for n in cluster.redis]
    zk = cluster.zookeeper
    zk_watch = [("zookeeper", zk.proc, [zk.log])]
    ch_watch = [(f"clickhouse-server {n.host}", n.server.proc, n.server.logs) for n in cluster.clickhouse]
    ports = [node.port for node in cluster.redis]

    _wait("the Redis nodes", lambda: _first_problem(
        [lambda p=p: None if redis_ping(p) else f"node {p} does not answer" for p in ports]), redis_watch, deadline)
    rc.create_cluster(redis_cli, ports, cluster.folder / "redis-cluster-create.log")
    say(f"redis cluster created after {time.monotonic() - started:.1f} s")
    _wait("ZooKeeper", lambda: None if zookeeper_ok(zk.port) else "ruok unanswered", zk_watch, deadline)
    _wait("the ClickHouse nodes", lambda: _first_problem([_node_check(n, cluster.layout) for n in cluster.clickhouse]),
          [*ch_watch, *zk_watch], deadline)
    say(f"clickhouse cluster ready after {time.monotonic() - started:.1f} s")
    _wait("the Redis Cluster", lambda: rc.cluster_problem(ports), redis_watch, deadline)


def start_cluster(folder: Path, redis_bin: str, clickhouse_bin: str, children: list[Popen[bytes]], *,
                  detached: bool) -> Cluster:
    """Start the cluster in ``folder`` (made afresh) and wait until it is healthy.

    A port taken by someone else between our probe and a server's bind() makes the whole cluster start
    again on fresh ports (each node's config names the others' ports); the failed attempt's folder is
    kept beside, for its logs.
    """
    java, redis_cli = ensure_cluster_binaries()
    for old in (folder, *folder.parent.glob(f"{folder.name}.attempt*")):
        shutil.rmtree(old, ignore_errors=True)  # a previous start's: its nodes.conf would rejoin an old cluster
    for attempt in range(1, START_ATTEMPTS + 1):
        started = time.monotonic()
        ours = len(children)  # children before ours are the single-node servers: not to be stopped here
        try:
            cluster = _launch(folder, (redis_bin, clickhouse_bin, java), children, detached=detached)
            _wait_healthy(cluster, redis_cli)
        except (ServerStartError, SetupError) as exc:
            stop_processes(folder, children[ours:], grace=5.0)
            clash = isinstance(exc, ServerStartError) and exc.port_clash()
            if clash and attempt < START_ATTEMPTS:
                folder.rename(folder.with_name(f"{folder.name}.attempt{attempt}"))
                say("a cluster port was taken meanwhile; starting the cluster again on other ports")
                continue
            raise
        cluster.ready_s = time.monotonic() - started
        return cluster
    raise AssertionError("unreachable")
