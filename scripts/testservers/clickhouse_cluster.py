"""The cluster mode's ClickHouse: the nodes of ``deploy/cluster/clickhouse/cluster.xml``, each a private server.

The nodes, their shards and replicas are read from that file, the one production installs, and the file
is given to every node as ``config.d/cluster.xml`` with only the hosts and ports rewritten (loopback and
the node's free ports; ZooKeeper's too).  What differs per node comes from its environment, as in
production (``CLICKHOUSE_SHARD``, ``CLICKHOUSE_REPLICA``, ...: see the file).  So a change to the
example is what the tests run, and an example that stops working fails them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clickhouse import ClickHouseServer, clickhouse_query
from .common import CHECKOUT, LOOPBACK, TEST_DATABASE, SetupError

CLUSTER_XML = CHECKOUT / "deploy" / "cluster" / "clickhouse" / "cluster.xml"
MEMORY_XML = CHECKOUT / "deploy" / "clickhouse" / "memory.xml"


@dataclass(frozen=True)
class ClusterLayout:
    """What ``cluster.xml`` declares: the cluster's name and the host of each replica, shard by shard."""

    name: str
    shards: tuple[tuple[str, ...], ...]

    @property
    def hosts(self) -> list[str]:
        return [host for shard in self.shards for host in shard]

    def node_env(self, host: str) -> dict[str, str]:
        """The variables ``cluster.xml`` reads (from_env) on the node ``host``, for loopback."""
        shard = next(number for number, replicas in enumerate(self.shards, start=1) if host in replicas)
        return {"CLICKHOUSE_SHARD": str(shard), "CLICKHOUSE_REPLICA": host, "CLICKHOUSE_INTERSERVER_HOST": LOOPBACK,
                "CLICKHOUSE_USER": "default", "CLICKHOUSE_PASSWORD": ""}


def _cluster_element(root: ET.Element, source: Path) -> ET.Element:
    remote = root.find("remote_servers")
    clusters = list(remote) if remote is not None else []
    if len(clusters) != 1:
        raise SetupError(f"{source} must declare exactly one cluster in <remote_servers>, found {len(clusters)}")
    return clusters[0]


def read_layout(source: Path = CLUSTER_XML) -> ClusterLayout:
    """The cluster declared by ``source``; an error if it is not one cluster of distinct hosts."""
    root = ET.parse(source).getroot()
    cluster = _cluster_element(root, source)
    shards = tuple(tuple((r.findtext("host") or "").strip() for r in shard.findall("replica"))
                   for shard in cluster.findall("shard"))
    hosts = [host for shard in shards for host in shard]
    if not shards or not all(shards) or "" in hosts or len(set(hosts)) != len(hosts):
        raise SetupError(f"{source}: every shard needs replicas, each with a <host> of its own")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", cluster.tag):
        raise SetupError(f"{source}: the cluster's name {cluster.tag!r} must be a plain identifier (it goes into SQL)")
    if root.find("zookeeper/node") is None:
        raise SetupError(f"{source} has no <zookeeper><node>: replicated tables need one")
    return ClusterLayout(cluster.tag, shards)


def render_cluster_xml(source: Path, tcp_ports: dict[str, int], zookeeper_port: int) -> str:
    """``source`` with each replica's host/port set to loopback and ``tcp_ports[host]``, ZooKeeper's too.

    Nothing else changes: the nodes run the example as production does.
    """
    tree = ET.parse(source, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    root = tree.getroot()
    for replica in _cluster_element(root, source).iter("replica"):
        host = replica.find("host")
        port = replica.find("port")
        if host is None or port is None or (host.text or "").strip() not in tcp_ports:
            raise SetupError(f"{source}: a <replica> without <host>/<port>, or with an unknown host")
        port.text = str(tcp_ports[(host.text or "").strip()])
        host.text = LOOPBACK
    nodes = root.findall("zookeeper/node")
    if len(nodes) != 1:
        raise SetupError(f"{source}: the test servers run one ZooKeeper, the file lists {len(nodes)}")
    for tag, value in (("host", LOOPBACK), ("port", str(zookeeper_port))):
        element = nodes[0].find(tag)
        if element is None:
            raise SetupError(f"{source}: <zookeeper><node> has no <{tag}>")
        element.text = value
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


@dataclass
class ClusterNode:
    """One ClickHouse server of the cluster: its replica (host name in cluster.xml) and shard."""

    host: str
    shard: int
    server: ClickHouseServer

    @property
    def url(self) -> str:
        return self.server.url

    def describe(self) -> dict[str, Any]:
        return {"host": self.host, "shard": self.shard, **self.server.describe()}


def node_problem(node: ClusterNode, cluster: str, size: int) -> str | None:
    """None when the node is ready for the tests, else what is still missing.

    Ready means: it reaches ZooKeeper (system.zookeeper needs a live session), it sees the whole
    cluster, and the test database exists.
    """
    port = node.server.ports.http
    try:
        clickhouse_query(port, "SELECT count() FROM system.zookeeper WHERE path = '/'")
    except SetupError as exc:
        return f"{node.host} does not reach ZooKeeper yet: {exc}"
    seen = clickhouse_query(port, f"SELECT count() FROM system.clusters WHERE cluster = '{cluster}'").strip()
    if seen != str(size):
        return f"{node.host} lists {seen} nodes of {cluster}, expected {size}"
    clickhouse_query(port, f"CREATE DATABASE IF NOT EXISTS {TEST_DATABASE}")
    node.server.version = node.server.version or clickhouse_query(port, "SELECT version()").strip()
    return None
