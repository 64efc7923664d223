"""The pair of servers of one folder (and the cluster, in cluster mode), and the files describing them
(``servers.json``, ``env.sh``).

``servers.json`` (format 1) is read by ``stop``, by fault-injection tests and by the benchmarks:
pids, ports, command lines, working directories, config and log paths; in cluster mode, a
``cluster`` entry describes every cluster server the same way.  Its shape must stay readable by
every copy of this tool that may stop a folder started by another.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from .clickhouse import ClickHouseServer, start_clickhouse
from .cluster import Cluster, recorded_pids, start_cluster
from .common import ENV_SH, SERVERS_JSON, SetupError, exit_status, say
from .install import ensure_binaries
from .processes import stop_processes
from .redis import RedisServer, start_redis


@dataclass
class Servers:
    """The pair of servers of one folder (plus the cluster, with ``cluster``), and the files describing them."""

    folder: Path
    mode: str
    cluster_mode: bool = False
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    redis: RedisServer | None = None
    clickhouse: ClickHouseServer | None = None
    cluster: Cluster | None = None

    def env(self) -> dict[str, str]:
        """Variables handed to the tests."""
        if self.redis is None or self.clickhouse is None:
            raise RuntimeError("servers not started")
        return {
            "ADSERVER_TEST_REDIS_URL": self.redis.url,
            "ADSERVER_TEST_CLICKHOUSE_URL": self.clickhouse.url,
            "ADSERVER_TEST_CLICKHOUSE_HTTP": self.clickhouse.http_url,
            "ADSERVER_TEST_SERVERS_DIR": str(self.folder),
            **(self.cluster.env() if self.cluster is not None else {}),
        }

    def write_files(self) -> None:
        """Write servers.json (for fault tests and ``stop``) and env.sh."""
        if self.redis is None or self.clickhouse is None:
            raise RuntimeError("servers not started")
        info = {
            "format": 1,
            "mode": self.mode,
            "dir": str(self.folder),
            "started_by_pid": os.getpid(),
            "env": self.env(),
            "redis": self.redis.describe(),
            "clickhouse": self.clickhouse.describe(),
        }
        if self.cluster is not None:
            info["cluster"] = self.cluster.describe()
        path = self.folder / SERVERS_JSON
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(path)  # readers never see half a file
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env().items()]
        (self.folder / ENV_SH).write_text("# written by scripts/testservers\n" + "\n".join(lines) + "\n")

    def start(self, *, detached: bool) -> None:
        """Start Redis then ClickHouse (then the cluster), recording each child at once."""
        redis_bin, clickhouse_bin = ensure_binaries()
        self.redis = start_redis(redis_bin, self.folder, detached=detached)
        self.children.append(self.redis.proc)
        say(f"redis-server ready on port {self.redis.port} in {self.redis.ready_s:.1f} s (pid {self.redis.proc.pid})")
        self.clickhouse = start_clickhouse(clickhouse_bin, self.folder, detached=detached)
        self.children.append(self.clickhouse.proc)
        ch = self.clickhouse
        say(
            f"clickhouse-server {ch.version} ready on "
            f"tcp {ch.ports.tcp} / http {ch.ports.http} "
            f"in {ch.ready_s:.1f} s (pid {ch.proc.pid})"
        )
        if self.cluster_mode:
            say("starting the cluster: ZooKeeper, ClickHouse 2 shards x 2 replicas, Redis Cluster 3 x 2")
            self.cluster = start_cluster(self.folder / "cluster", redis_bin, clickhouse_bin, self.children,
                                         detached=detached)
            say(f"cluster ready in {self.cluster.ready_s:.1f} s")
        self.write_files()

    def reap_children(self, _signum: int, _frame: FrameType | None) -> None:
        """SIGCHLD handler: collect a server that exited while tests run.

        A fault test that stops a server waits for its pid to vanish; as its
        parent, we must reap it at once or it lingers as a zombie (and
        ``kill(pid, 0)`` keeps succeeding).  It also tells whoever reads the
        log that a server went away, which explains the failures that follow.
        """
        for child in self.children:
            if child.returncode is None and child.poll() is not None:
                name = Path(child.args[0]).name if isinstance(child.args, list) else "server"
                say(f"note: {name} (pid {child.pid}) exited with status {exit_status(child.returncode)}")

    def stop(self) -> None:
        """Stop every server of the folder, ours or restarted by a test."""
        recorded = []
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            info = json.loads((self.folder / SERVERS_JSON).read_text())
            recorded = [int(info[name]["pid"]) for name in ("redis", "clickhouse")] + recorded_pids(info)
        stop_processes(self.folder, self.children, recorded)


def load_recorded_pids(folder: Path) -> list[int]:
    """The pids in ``folder/servers.json`` (empty if there is no such file)."""
    try:
        info = json.loads((folder / SERVERS_JSON).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {folder / SERVERS_JSON}: {exc}") from exc
    return [int(info[name]["pid"]) for name in ("redis", "clickhouse") if name in info] + recorded_pids(info)
