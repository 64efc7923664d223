"""Reading other processes from Linux's ``/proc``: what runs, where, with which files open.

Every reader answers ``None`` (or an empty value) for a process that vanished or that we may not
look into: the callers scan every process on the machine, and those come and go during a scan.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")
SERVER_NAMES = ("redis", "clickhouse")
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def pids() -> Iterator[int]:
    """Every process id on the machine, our own excluded."""
    own = os.getpid()
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != own:
            yield int(entry.name)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may hold spaces).
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (field 22 of its stat)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def exe_name(pid: int) -> str | None:
    """The file name of the process's executable (``redis-server``, ``clickhouse``, ...)."""
    try:
        return os.path.basename(os.readlink(PROC / str(pid) / "exe"))
    except OSError:
        return None


def is_server(pid: int) -> bool:
    """True for a Redis or ClickHouse executable, or a java running ZooKeeper (the cluster mode's).

    Judging by the executable, not by the command line, means a shell or an editor whose command
    line mentions a server is never taken for one, and a recycled pid is never mistaken for one.
    ZooKeeper's executable is java, so there its main class must be on the command line too.
    """
    name = exe_name(pid)
    if name is None:
        return False
    if name == "java":
        return ZOOKEEPER_MAIN in cmdline(pid)
    return name.startswith(SERVER_NAMES)


def cwd(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    """The arguments of the process (empty if unreadable)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def arguments(pid: int) -> list[str]:
    """The arguments after the program's own path, which says where it is installed, not where it works.

    Redis replaces its command line with a title (``/path/redis-server 127.0.0.1:6379``, one string):
    the words after the first are its arguments then.
    """
    args = cmdline(pid)
    if len(args) == 1:
        return args[0].split()[1:]
    return args[1:]


def open_files(pid: int) -> list[str]:
    """Absolute paths of the files and folders the process holds open (sockets and pipes left out)."""
    folder = PROC / str(pid) / "fd"
    out = []
    with contextlib.suppress(OSError):
        for fd in folder.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("/"):
                    out.append(target.removesuffix(" (deleted)"))
    return out


def environ(pid: int) -> dict[str, str] | None:
    """The environment the process was started with (``None`` if we may not read it)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


def inside(path: str, root: str) -> bool:
    """True if ``path`` is ``root`` or lies below it (both absolute, ``root`` without trailing slash)."""
    return path == root or path.startswith(root + os.sep)


def mentions(args: list[str], root: str) -> bool:
    """True if one of ``args`` names ``root`` or a path below it (``R``, ``--config-file=R/config.xml``)."""
    return any(arg == root or arg.endswith(("=" + root, " " + root)) or root + os.sep in arg for arg in args)
