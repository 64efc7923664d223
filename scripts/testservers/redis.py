"""The private Redis server: in memory only, on a free loopback port."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from .common import LOOPBACK, REDIS_DEADLINE_S, START_ATTEMPTS, pick_free_ports, say
from .processes import ServerStartError, set_aside, spawn, stop_processes, wait_ready


def redis_ping(port: int) -> bool:
    """Send PING in raw RESP and expect +PONG (no redis-py needed)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A running private Redis, and what is needed to restart it."""

    port: int
    cmd: list[str]
    cwd: Path
    log: Path
    proc: Popen[bytes]
    ready_s: float

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def describe(self) -> dict[str, Any]:
        """This server's entry in servers.json."""
        return {
            "pid": self.proc.pid,
            "port": self.port,
            "url": self.url,
            "cmd": self.cmd,
            "cwd": str(self.cwd),
            "log": str(self.log),
        }


def start_redis(binary: str, folder: Path, *, detached: bool) -> RedisServer:
    """Start redis-server on a free port: no persistence, loopback only.

    ``--save ""`` and ``--appendonly no`` keep it purely in memory: tests
    must not see data from a previous run, and nothing has to be fsynced.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        (port,) = pick_free_ports(1)
        log = folder / "redis.log"
        cmd = [
            binary,
            "--bind", LOOPBACK,
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
            "--daemonize", "no",
        ]  # fmt: skip
        proc = spawn(cmd, cwd=folder, log_path=log, detached=detached)
        try:
            took = wait_ready(
                "redis-server",
                proc,
                lambda p=port: redis_ping(p),
                REDIS_DEADLINE_S,
                [log],
            )
        except ServerStartError as exc:
            stop_processes(folder, [proc], grace=5.0, sweep=False)  # not the other server
            if exc.port_clash() and attempt < START_ATTEMPTS:
                set_aside(exc.logs, attempt)
                say(f"redis port {port} was taken meanwhile; retrying with another")
                continue
            raise
        return RedisServer(port, cmd, folder, log, proc, took)
    raise AssertionError("unreachable")
