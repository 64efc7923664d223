"""The private ZooKeeper of the cluster mode: Debian's package, run with java directly on a loopback port.

Its configuration is ``deploy/cluster/zookeeper/zoo.cfg``, the file production uses, with only the data
folder and the listening address and port rewritten: the example cannot drift from what the tests run.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from .common import CHECKOUT, LOOPBACK, SetupError
from .install import ZOOKEEPER_JARS
from .procfs import ZOOKEEPER_MAIN

ZOO_CFG = CHECKOUT / "deploy" / "cluster" / "zookeeper" / "zoo.cfg"
MAIN_CLASS = ZOOKEEPER_MAIN
# Debian's conf folder holds the log4j.properties that the logger setting below picks.
CLASSPATH = (*ZOOKEEPER_JARS, "/etc/zookeeper/conf")
# Metadata only: a small heap keeps the cluster mode's memory modest (the deploy notes say the same).
JAVA_OPTIONS = ("-Xmx256m", "-Xss512k", "-XX:+UseSerialGC", "-Dzookeeper.root.logger=INFO,CONSOLE")


def render_zoo_cfg(source: Path, data_dir: Path, port: int, host: str = LOOPBACK) -> str:
    """``source`` with ``dataDir``, ``clientPort`` and ``clientPortAddress`` set; every other line kept.

    A key the file does not have is appended; one it lacks that we must set (``dataDir``,
    ``clientPort``) means the file is not a ZooKeeper config any more, which is an error.
    """
    wanted = {"dataDir": str(data_dir), "clientPort": str(port), "clientPortAddress": host}
    lines, seen = [], set()
    for line in source.read_text().splitlines():
        key = line.partition("=")[0].strip()
        if not line.lstrip().startswith("#") and key in wanted:
            lines.append(f"{key}={wanted[key]}")
            seen.add(key)
        else:
            lines.append(line)
    missing = {"dataDir", "clientPort"} - seen
    if missing:
        raise SetupError(f"{source} has no {' or '.join(sorted(missing))}: is it still a ZooKeeper config?")
    lines += [f"{key}={value}" for key, value in wanted.items() if key not in seen]
    return "\n".join(lines) + "\n"


def zookeeper_ok(port: int) -> bool:
    """The four-letter command ``ruok`` answers ``imok`` (whitelisted in zoo.cfg)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
            sock.sendall(b"ruok")
            return sock.recv(16) == b"imok"
    except OSError:
        return False


@dataclass
class ZooKeeperServer:
    """A running private ZooKeeper, and what is needed to restart it."""

    port: int
    cmd: list[str]
    cwd: Path
    config: Path
    log: Path
    proc: Popen[bytes]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def describe(self) -> dict[str, Any]:
        return {"pid": self.proc.pid, "port": self.port, "address": self.address, "cmd": self.cmd,
                "cwd": str(self.cwd), "config": str(self.config), "log": str(self.log)}


def zookeeper_command(java: str, folder: Path, port: int) -> tuple[list[str], Path]:
    """Write ``folder/zoo.cfg`` for ``port`` and return the command line that runs it, and the file."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = folder / "zoo.cfg"
    config.write_text(render_zoo_cfg(ZOO_CFG, data, port))
    return [java, *JAVA_OPTIONS, "-cp", ":".join(CLASSPATH), MAIN_CLASS, str(config)], config
