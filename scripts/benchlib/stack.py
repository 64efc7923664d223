"""The processes of one benchmark run: throw-away servers, the product under gunicorn, its writer."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def run_testservers(action: str, folder: Path, *options: str, **kwargs) -> subprocess.CompletedProcess:
    """``python -m scripts.testservers start|stop [options] --dir folder``, from the checkout."""
    return subprocess.run([PY, "-m", "scripts.testservers", action, *options, "--dir", str(folder)], cwd=ROOT,
                          **kwargs)


class Stack:
    """Servers and processes of one benchmark run; everything is stopped by ``close``."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.servers: dict = {}  # servers.json of scripts.testservers

    def start_servers(self, cluster: bool = False) -> None:
        """Single-node Redis and ClickHouse (their settings go to ``env``); ``cluster`` also starts the loopback
        cluster (``scripts.testservers start --cluster``), described in ``servers["cluster"]``."""
        servers = self.workdir / "servers"
        run_testservers("start", servers, *(["--cluster"] if cluster else []), check=True)
        info = self.servers = json.loads((servers / "servers.json").read_text())
        self.env.update({
            "ADSERVER_REDIS_URL": info["env"]["ADSERVER_TEST_REDIS_URL"],
            "ADSERVER_CLICKHOUSE_URL": info["env"]["ADSERVER_TEST_CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/adserver",
            "ADSERVER_SECRET_KEY": secrets.token_urlsafe(32),
            "ADSERVER_DATA_DIR": str(self.workdir / "var"),
            "ADSERVER_WORKERS": str(self.workers),
        })

    def spawn(self, cmd: list[str], log: str, **env: str) -> subprocess.Popen:
        out = open(self.workdir / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def gunicorn(self, app: str, port: int, log: str, *options: str, **env: str) -> subprocess.Popen:
        """``app`` under gunicorn with ``deploy/gunicorn.conf.py`` (``options`` added on its command line,
        ``env`` over the stack's environment)."""
        return self.spawn([PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), *options, app], log,
                          **{**env, "ADSERVER_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT)})

    def cli(self, *args: str, **env: str) -> str:
        """``python -m adserver <args>`` with ``env`` over the stack's environment; returns its output."""
        return subprocess.run([PY, "-m", "adserver", *args], cwd=ROOT, env={**self.env, **env}, check=True,
                              capture_output=True, text=True).stdout

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        run_testservers("stop", self.workdir / "servers")


def server_pids(servers_dir: Path) -> dict[str, int]:
    """Process ids of the Redis and ClickHouse servers ``scripts.testservers`` started there."""
    try:
        info = json.loads((servers_dir / "servers.json").read_text())
    except OSError:
        return {}
    return {name: info[name]["pid"] for name in ("redis", "clickhouse") if info.get(name, {}).get("pid")}


def redis_client(env: dict):
    """A client of the Redis that ``env`` names: a server, or a Redis Cluster (``redis+cluster://``)."""
    import redis

    from tracker.settings_parsers import is_redis_cluster_url, parse_redis_cluster_url

    url = env["ADSERVER_REDIS_URL"]
    if is_redis_cluster_url(url):
        from redis.cluster import ClusterNode, RedisCluster

        nodes = parse_redis_cluster_url(url).nodes
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes], socket_timeout=10)
    return redis.Redis.from_url(url, socket_timeout=10)


def clickhouse(env: dict):
    """A client of the ClickHouse that ``env`` names, with the cluster's session settings in cluster mode."""
    from tracker.clickhouse import DriverClickHouse
    from tracker.settings import parse_clickhouse_url

    return DriverClickHouse(parse_clickhouse_url(env["ADSERVER_CLICKHOUSE_URL"]), 5, 120,
                            cluster=env.get("ADSERVER_CLICKHOUSE_CLUSTER") or None)
