"""The cluster mode's Redis Cluster: six private nodes joined as three primaries with one replica each.

Each node runs the deploy files (``deploy/redis/redis.conf`` plus ``deploy/cluster/redis/cluster.conf``,
as in production) with its ports, folder and persistence overridden on the command line, and a short
``cluster-node-timeout`` so that a failover drill takes seconds (and a short replication ping period, below).  The nodes are joined with
``redis-cli --cluster create``, the command an operator runs.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import CHECKOUT, LOOPBACK, SetupError

REDIS_CONF = CHECKOUT / "deploy" / "redis" / "redis.conf"
CLUSTER_CONF = CHECKOUT / "deploy" / "cluster" / "redis" / "cluster.conf"
NODES = 6
REPLICAS = 1  # per primary
NODE_TIMEOUT_MS = 2000
CREATE_TIMEOUT_S = 60.0


def redis_node_command(binary: str, folder: Path, port: int, bus_port: int) -> list[str]:
    """The command line of one node, its data in ``folder`` (nodes.conf: its identity)."""
    return [
        binary, str(REDIS_CONF),
        "--include", str(CLUSTER_CONF),
        "--bind", LOOPBACK,
        "--port", str(port),
        "--cluster-port", str(bus_port),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        # Replicas of a primary that has no writes yet keep offset 0, and CLUSTER SLOTS leaves them out
        # until a replication PING moves it (every 10 s by default): 1 s makes the new cluster whole sooner.
        "--repl-ping-replica-period", "1",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip


def _read_reply(stream) -> Any:
    """One RESP2 reply: simple, error, integer, bulk string or array (a list of replies)."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise SetupError(f"Redis answered an error: {body.decode(errors='replace')}")
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [_read_reply(stream) for _ in range(size)]
    raise OSError(f"unexpected Redis reply {line[:40]!r}")


def redis_command(port: int, *args: str) -> Any:
    """Send one command in RESP and read its reply (no redis-py: the package uses the stdlib only)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
    with socket.create_connection((LOOPBACK, port), timeout=2.0) as sock:
        sock.sendall(payload)
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


def _fields(text: bytes | int | None) -> dict[str, str]:
    """``key:value`` lines of CLUSTER INFO / INFO."""
    lines = text.decode(errors="replace").splitlines() if isinstance(text, bytes) else []
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


def _roles(text: bytes | int | None) -> dict[str, int]:
    """How many primaries and replicas a node's CLUSTER NODES lists (a replica flagged ``fail`` not counted)."""
    roles = {"master": 0, "slave": 0}
    for line in text.decode(errors="replace").splitlines() if isinstance(text, bytes) else []:
        flags = line.split()[2].split(",") if len(line.split()) > 2 else []
        for role in roles:
            if role in flags and "fail" not in flags and "fail?" not in flags:
                roles[role] += 1
    return roles


def create_cluster(redis_cli: str, ports: Sequence[int], log: Path) -> None:
    """Join the nodes: the first half become primaries, each other node a replica of one of them."""
    cmd = [redis_cli, "--cluster", "create", *(f"{LOOPBACK}:{p}" for p in ports),
           "--cluster-replicas", str(REPLICAS), "--cluster-yes"]
    with log.open("ab") as out:
        try:
            result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    timeout=CREATE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise SetupError(f"redis-cli --cluster create took over {CREATE_TIMEOUT_S:.0f} s (see {log})") from None
    if result.returncode != 0:
        raise SetupError(f"redis-cli --cluster create failed with status {result.returncode} (see {log})")


def cluster_problem(ports: Sequence[int]) -> str | None:
    """None when the cluster is whole, else what is still missing.

    Whole means: every node says ``cluster_state:ok``, knows all the others and their roles, there are
    ``len(ports) / (REPLICAS + 1)`` primaries with ``REPLICAS`` replicas each, and every replica's link to its primary
    is up (its copy is in sync, so a failover drill loses nothing).
    """
    try:
        primaries = 0
        for port in ports:
            info = _fields(redis_command(port, "CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(ports)):
                return f"node {port}: cluster_state {info.get('cluster_state')}, " \
                       f"{info.get('cluster_known_nodes')} known nodes"
            view = _roles(redis_command(port, "CLUSTER", "NODES"))
            if view != {"master": len(ports) // (REPLICAS + 1), "slave": len(ports) - len(ports) // (REPLICAS + 1)}:
                return f"node {port} sees {view}"  # gossip has not told it every replica's role yet
            # Clients learn replicas from CLUSTER SLOTS, which leaves out those whose offset it has not heard of.
            slots = redis_command(port, "CLUSTER", "SLOTS") or []
            if any(len(entry) != 3 + REPLICAS for entry in slots):
                return f"node {port}: CLUSTER SLOTS does not list a replica for every range yet"
            replication = _fields(redis_command(port, "INFO", "replication"))
            if replication.get("role") == "master":
                primaries += 1
                if replication.get("connected_slaves") != str(REPLICAS):
                    return f"primary {port}: {replication.get('connected_slaves')} replicas, expected {REPLICAS}"
            elif replication.get("master_link_status") != "up":
                return f"replica {port}: link to its primary is {replication.get('master_link_status')}"
    except OSError as exc:
        return f"a node does not answer: {exc}"
    wanted = len(ports) // (REPLICAS + 1)
    return None if primaries == wanted else f"{primaries} primaries, expected {wanted}"
