"""The private ClickHouse server: started with its own config, checked over HTTP and the native port."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from .clickhouse_config import CLICKHOUSE_MALLOC_CONF, ClickHousePorts, write_clickhouse_config
from .common import (
    CLICKHOUSE_DEADLINE_S,
    LOOPBACK,
    START_ATTEMPTS,
    TEST_DATABASE,
    SetupError,
    no_proxy_opener,
    pick_free_ports,
    say,
    tcp_accepts,
)
from .processes import ServerStartError, set_aside, spawn, stop_processes, wait_ready


def clickhouse_ping(ports: ClickHousePorts) -> bool:
    """HTTP /ping says ``Ok.`` and the native port accepts connections.

    Both are checked because the listeners come up one after the other, and
    the application talks native protocol (clickhouse-driver).
    """
    try:
        with no_proxy_opener().open(f"http://{LOOPBACK}:{ports.http}/ping", timeout=2.0) as response:
            if response.read().strip() != b"Ok.":
                return False
    except (OSError, urllib.error.URLError):
        return False
    return tcp_accepts(ports.tcp)


def clickhouse_query(http_port: int, sql: str) -> str:
    """Run one statement over HTTP (POST, so DDL is allowed)."""
    request = urllib.request.Request(f"http://{LOOPBACK}:{http_port}/", data=sql.encode(), method="POST")
    try:
        with no_proxy_opener().open(request, timeout=30.0) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise SetupError(f"ClickHouse refused {sql!r}: {body}") from exc
    except (OSError, urllib.error.URLError) as exc:
        raise SetupError(f"ClickHouse query {sql!r} failed: {exc}") from exc


@dataclass
class ClickHouseServer:
    """A running private ClickHouse, and what is needed to restart it."""

    ports: ClickHousePorts
    cmd: list[str]
    cwd: Path
    config: Path
    users_config: Path
    logs: list[Path]
    proc: Popen[bytes]
    ready_s: float
    version: str = ""

    @property
    def url(self) -> str:
        return f"clickhouse://{LOOPBACK}:{self.ports.tcp}/{TEST_DATABASE}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.http}"

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.proc.pid,
            "tcp_port": self.ports.tcp,
            "http_port": self.ports.http,
            "interserver_http_port": self.ports.interserver_http,
            "url": self.url,
            "http_url": self.http_url,
            "database": TEST_DATABASE,
            "version": self.version,
            "cmd": self.cmd,
            "cwd": str(self.cwd),
            "config": str(self.config),
            "users_config": str(self.users_config),
            "logs": [str(p) for p in self.logs],
        }


def clickhouse_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of clickhouse-server: ours, with its jemalloc options (and ``extra``)."""
    conf = os.environ.get("ADSERVER_TEST_CLICKHOUSE_MALLOC_CONF", CLICKHOUSE_MALLOC_CONF)
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_CONF"}
    if conf:
        env["MALLOC_CONF"] = conf
    return {**env, **(extra or {})}


def launch_clickhouse(
    binary: str,
    folder: Path,
    ports: ClickHousePorts,
    *,
    detached: bool,
    config_d: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> ClickHouseServer:
    """Write the private config (plus ``config_d``: file name -> XML) and start the server; no waiting.

    ``ready_s`` and ``version`` are filled in by whoever waits for it.
    """
    config, users = write_clickhouse_config(folder, ports)
    if config_d:
        folder_d = folder / "config.d"  # merged into config.xml by the server, as in /etc/clickhouse-server
        folder_d.mkdir(exist_ok=True)
        for name, text in config_d.items():
            (folder_d / name).write_text(text)
    stdout_log = folder / "clickhouse-stdout.log"
    log_dir = folder / "clickhouse-log"
    logs = [
        stdout_log,
        log_dir / "clickhouse-server.err.log",
        log_dir / "clickhouse-server.log",
    ]
    cmd = [binary, f"--config-file={config}"]
    proc = spawn(cmd, cwd=folder, log_path=stdout_log, detached=detached, env=clickhouse_env(extra_env))
    return ClickHouseServer(ports, cmd, folder, config, users, logs, proc, 0.0)


def start_clickhouse(binary: str, folder: Path, *, detached: bool) -> ClickHouseServer:
    """Start clickhouse-server with a private config; create the test database."""
    for attempt in range(1, START_ATTEMPTS + 1):
        server = launch_clickhouse(binary, folder, ClickHousePorts(*pick_free_ports(3)), detached=detached)
        try:
            server.ready_s = wait_ready(
                "clickhouse-server",
                server.proc,
                lambda p=server.ports: clickhouse_ping(p),
                CLICKHOUSE_DEADLINE_S,
                server.logs,
            )
        except ServerStartError as exc:
            stop_processes(folder, [server.proc], grace=5.0, sweep=False)  # not the other server
            if exc.port_clash() and attempt < START_ATTEMPTS:
                set_aside(exc.logs, attempt)
                say("a clickhouse port was taken meanwhile; retrying with others")
                continue
            raise
        server.version = clickhouse_query(server.ports.http, "SELECT version()").strip()
        clickhouse_query(server.ports.http, f"CREATE DATABASE IF NOT EXISTS {TEST_DATABASE}")
        return server
    raise AssertionError("unreachable")
