#!/usr/bin/env python3
"""Throw-away Redis and ClickHouse servers for the test suite.

The ad server needs a real Redis and a real ClickHouse in its integration
tests: fakes would hide exactly the bugs the tests are there to catch
(serialisation, TTLs, ClickHouse type coercion, ...).  This script gives every
test run its own private pair of servers, so that:

* tests never touch a developer's (or a machine's) system-wide services;
* two runs can happen side by side (every port is picked free at start);
* nothing survives the run: both servers are stopped and their data folder
  is deleted, whatever happens (test failure, Ctrl-C, SIGTERM from CI).

Usage::

    python scripts/test_servers.py run [--keep] -- <command...>
    python scripts/test_servers.py start --dir D     # detached, for humans
    python scripts/test_servers.py stop --dir D

``run`` starts both servers, runs the command with these variables added to
its environment, then stops the servers and exits with the command's status::

    ADSERVER_TEST_REDIS_URL       redis://127.0.0.1:P/0
    ADSERVER_TEST_CLICKHOUSE_URL  clickhouse://127.0.0.1:TCP/adserver_test
    ADSERVER_TEST_CLICKHOUSE_HTTP http://127.0.0.1:HTTP
    ADSERVER_TEST_SERVERS_DIR     the throw-away folder

(and 127.0.0.1/localhost appended to NO_PROXY/no_proxy, so an http_proxy of
the machine never sees test traffic).  The database ``adserver_test`` is
created before the command runs.

Fault-injection tests: the folder holds ``servers.json`` (pids, ports,
command lines, working directory, config and log paths).  A test may
SIGTERM a server (this script reaps it at once, so its pid really vanishes)
and start it again with the recorded ``cmd`` and ``cwd``: same ports, same
data.  A server restarted that way is still stopped at the end: cleanup also
sweeps every redis/clickhouse process whose working directory or command
line lies inside the folder, not only the pids this script started.  If this
script is killed outright (SIGKILL), Linux sends the servers it started a
SIGTERM (PR_SET_PDEATHSIG); only the folder is then left behind.

Status 5 from the command (pytest: "no tests were collected") is turned into
1: a run that tested nothing must not look green.  Status 2 means the servers
could not be set up.

Only the standard library is used on purpose: the script must work before
the project's virtualenv exists, and must not import project code (which
could itself be what is broken).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
TEST_DATABASE = "adserver_test"

REDIS_DEADLINE_S = 20.0
CLICKHOUSE_DEADLINE_S = 60.0
STOP_GRACE_S = 15.0
# A free port can be taken by someone else between our probe and the server's
# bind(); when that happens we simply try again with fresh ports.
START_ATTEMPTS = 3

EXIT_SETUP_FAILED = 2
EXIT_NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED

APT_PACKAGES = ("redis-server", "clickhouse-server", "clickhouse-client", "chromium", "fonts-noto-cjk", "wrk")
# The browser tests (reports dashboard) drive Debian's Chromium and need a CJK font for Chinese text;
# the soak test measures the maximum rate with wrk.
BROWSER_FILES = (Path("/usr/bin/chromium"), Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                 Path("/usr/bin/wrk"))
# Debian puts clickhouse-server in /usr/sbin, which is not on a normal user's
# PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
CLICKHOUSE_ETC = Path("/etc/clickhouse-server")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

# Absolute path prefixes of the packaged ClickHouse config, mapped into our
# folder.  Catching them by prefix (instead of a fixed list of tags) keeps the
# rewrite correct for newer configs that add e.g. access/ or user_scripts/.
CLICKHOUSE_DATA_PREFIX = "/var/lib/clickhouse"
CLICKHOUSE_LOG_PREFIX = "/var/log/clickhouse-server"
# Listeners we do not want: they would need certificates or ports we did not
# reserve, and a clash on any of them makes the server exit.
CLICKHOUSE_UNWANTED_PORTS = (
    "https_port",
    "tcp_port_secure",
    "mysql_port",
    "postgresql_port",
    "grpc_port",
    "interserver_https_port",
    "prometheus",
)

# What keeps clickhouse-server's resident memory flat under a steady stream of
# small inserts (measured with scripts/soak.py, docs/soak.md; the same settings
# are in deploy/clickhouse/memory.xml and deploy/systemd/clickhouse-server.service.d/):
#
# * jemalloc options (MALLOC_CONF: Debian's 18.16 uses the system libjemalloc,
#   which reads it): background threads purge freed pages after 1 s.  Without
#   them a page goes back to the kernel only when its arena allocates again, and
#   with 8 arenas for ~30 threads much of the memory freed after inserts and
#   merges stayed resident (~220 MB against ~147 MB with them, and still rising).
# * old_parts_lifetime 60 s instead of 480: every insert makes a part in events
#   and in each report table (~18 parts/s from the writer), and a merged-away
#   part stays in memory (~14 KB on 18.16) until old_parts_lifetime passes:
#   8,400 of them, +110 MB, for the first 9 minutes of every run.
#
# ADSERVER_TEST_CLICKHOUSE_MALLOC_CONF overrides the jemalloc options (empty:
# jemalloc's defaults), for experiments.
CLICKHOUSE_MALLOC_CONF = "background_thread:true,dirty_decay_ms:1000"
CLICKHOUSE_MERGE_TREE: dict[str, str] = {"old_parts_lifetime": "60"}

SERVERS_JSON = "servers.json"
ENV_SH = "env.sh"

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


class SetupError(Exception):
    """The servers could not be set up; the message says why (exit 2)."""


class Terminated(Exception):
    """Raised from our SIGTERM/SIGHUP handler so ``finally`` blocks run."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum


def say(message: str) -> None:
    """Print a progress line on stderr (stdout belongs to the command)."""
    print(f"[test_servers] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file (or a note if absent)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"  (cannot read {path}: {exc.strerror})"
    chunk = text.splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in chunk) if chunk else "  (empty)"


def find_binary(name: str) -> str | None:
    """Find ``name`` on PATH or in the sbin folders (not on PATH for users)."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))


def pick_free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free loopback TCP ports.

    All probe sockets stay open until every port is chosen, so the kernel
    cannot hand out the same port twice.  The ports are free *now*; a race
    with another program is possible and handled by retrying the start.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
        return ports


def no_proxy_opener() -> urllib.request.OpenerDirector:
    """An urllib opener that ignores http_proxy: our server is on loopback."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tcp_accepts(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def exit_status(returncode: int) -> int:
    """Turn a Popen return code into a shell-style exit status (128+N)."""
    return 128 - returncode if returncode < 0 else returncode


# --------------------------------------------------------------------------
# Installing the servers
# --------------------------------------------------------------------------


@contextlib.contextmanager
def services_not_started_by_dpkg() -> Iterator[None]:
    """Stop Debian's postinst scripts from starting system-wide services.

    Without this, installing the packages on a machine without systemd may
    start a system Redis on 6379 and ClickHouse on 9000 that nobody stops.
    ``policy-rc.d`` exiting 101 is Debian's documented way to say "do not
    start services" (invoke-rc.d honours it).
    """
    policy = POLICY_RC_D
    if policy.exists():  # someone already decided; respect it
        yield
        return
    policy.write_text("#!/bin/sh\n# temporary, written by scripts/test_servers.py\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def ensure_binaries() -> tuple[str, str]:
    """Return the paths of redis-server and clickhouse-server.

    Installs the Debian packages when they are missing and we are root (the
    case on CI, a fresh Debian 12 machine); otherwise says what to install.
    """
    redis, clickhouse = find_binary("redis-server"), find_binary("clickhouse-server")
    browser = all(f.exists() for f in BROWSER_FILES)
    if redis and clickhouse and browser:
        return redis, clickhouse
    missing = [n for n, p in (("redis-server", redis), ("clickhouse-server", clickhouse),
                              ("chromium, fonts-noto-cjk and wrk", browser)) if not p]
    if os.geteuid() != 0:
        raise SetupError(
            f"{' and '.join(missing)} not found "
            f"(looked on PATH and in {', '.join(SBIN_DIRS)}).\n"
            f"Install them first, as root:\n"
            f"  apt-get update && apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    say(f"{' and '.join(missing)} not found; installing Debian packages (we are root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    commands = [["apt-get", "update"], ["apt-get", "install", "-y", *APT_PACKAGES]]
    with services_not_started_by_dpkg():
        for command in commands:
            say(f"$ DEBIAN_FRONTEND=noninteractive {shlex.join(command)}")
            result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                raise SetupError(f"{shlex.join(command)} failed with status {result.returncode}")
    redis, clickhouse = find_binary("redis-server"), find_binary("clickhouse-server")
    if not (redis and clickhouse):
        raise SetupError("packages installed, but redis-server/clickhouse-server still not found")
    return redis, clickhouse


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """Return a preexec_fn asking Linux to SIGTERM the child if we die.

    ``run`` may itself be SIGKILLed (CI timeout, OOM killer); the servers run
    in their own session, so without this they would outlive it.  Not used
    for ``start``, whose servers are meant to outlive the script.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def spawn(
    cmd: Sequence[str], *, cwd: Path, log_path: Path, detached: bool, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process in its own session, output going to a log.

    Its own session (and so process group) means a Ctrl-C in the terminal
    reaches the test command but not the servers: we stop those ourselves,
    after the command, in order.
    """
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # This script starts no threads, so preexec_fn is safe here.
            preexec_fn=None if detached else _die_with_parent_preexec(),  # noqa: PLW1509
        )


def _proc_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may hold spaces).
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _is_our_server(pid: int, folder: Path) -> bool:
    """True if ``pid`` is a redis/clickhouse process belonging to ``folder``.

    Belonging means its working directory or its command line is inside the
    folder.  Checking the executable name too means a shell whose cwd
    happens to be the folder is never touched, and a recycled pid is never
    mistaken for one of our servers.
    """
    proc = Path(f"/proc/{pid}")
    try:
        exe = os.path.basename(os.readlink(proc / "exe"))
    except OSError:
        return False
    if not exe.startswith(("redis", "clickhouse")):
        return False
    root = str(folder)
    with contextlib.suppress(OSError):
        cwd = os.readlink(proc / "cwd")
        if cwd == root or cwd.startswith(root + os.sep):
            return True
    with contextlib.suppress(OSError):
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        if root + os.sep in cmdline:
            return True
    return False


def find_our_servers(folder: Path) -> set[int]:
    """Every live redis/clickhouse process belonging to ``folder``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_server(int(entry.name), folder):
            pids.add(int(entry.name))
    pids.discard(os.getpid())
    return pids


def _signal_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to a server and, if it leads one, its process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_processes(
    folder: Path,
    children: Sequence[subprocess.Popen[bytes]] = (),
    extra_pids: Sequence[int] = (),
    grace: float = STOP_GRACE_S,
    *,
    sweep: bool = True,
) -> None:
    """Stop our servers: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

    The targets are our own children, the recorded pids that still belong to
    the folder and, with ``sweep``, anything else a test restarted inside the
    folder.  ClickHouse needs the grace period to flush and close its parts
    cleanly.
    """
    pids = {c.pid for c in children if c.poll() is None}
    pids |= {p for p in extra_pids if _is_our_server(p, folder)}
    if sweep:
        pids |= find_our_servers(folder)
    if not pids:
        return
    by_pid = {c.pid: c for c in children}

    def alive(pid: int) -> bool:
        child = by_pid.get(pid)
        if child is not None:
            return child.poll() is None  # also reaps it
        return _proc_alive(pid)

    for pid in sorted(pids):
        _signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in sorted(p for p in pids if alive(p)):
        say(f"pid {pid} still running after {grace:.0f} s; sending SIGKILL")
        _signal_pid(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Restarted servers can be started after our sweep; one more look.
    late = find_our_servers(folder) - pids if sweep else set()
    if late:
        stop_processes(folder, extra_pids=sorted(late), grace=grace)


def set_aside(logs: Sequence[Path], attempt: int) -> None:
    """Rename the logs of a failed attempt, so the next one starts afresh.

    Otherwise the next attempt's failure would be judged (port clash or
    not) on the previous attempt's messages.
    """
    for log in logs:
        with contextlib.suppress(OSError):
            log.rename(log.with_name(f"{log.name}.attempt{attempt}"))


class ServerStartError(SetupError):
    """A server died or missed its deadline while starting."""

    def __init__(self, message: str, logs: Sequence[Path]) -> None:
        super().__init__(message)
        self.logs = list(logs)

    def port_clash(self) -> bool:
        """True if the logs say a port was taken meanwhile (worth a retry)."""
        for log in self.logs:
            with contextlib.suppress(OSError):
                if "Address already in use" in log.read_text(errors="replace"):
                    return True
        return False


def wait_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    deadline_s: float,
    logs: Sequence[Path],
) -> float:
    """Poll ``ready()`` until it is true; return the seconds it took.

    Fails early if the process exits (no point waiting out the deadline),
    and in both failure cases shows the end of the server's logs.
    """
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        if proc.poll() is not None:
            status = exit_status(proc.returncode)
            problem = f"{name} exited with status {status} during startup"
            break
        if time.monotonic() - start > deadline_s:
            problem = f"{name} not ready after {deadline_s:.0f} s"
            break
        time.sleep(0.1)
    details = "\n".join(f"--- {log} (tail):\n{tail(log)}" for log in logs)
    raise ServerStartError(f"{problem}\n{details}", logs)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


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
    proc: subprocess.Popen[bytes]
    ready_s: float

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def describe(self) -> dict[str, Any]:
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


# --------------------------------------------------------------------------
# ClickHouse
# --------------------------------------------------------------------------


def _set_child(parent: ET.Element, tag: str, text: str) -> None:
    """Set ``<tag>text</tag>`` under ``parent``, creating it if absent."""
    node = parent.find(tag)
    if node is None:
        node = ET.SubElement(parent, tag)
    node.text = text


def _remove_children(parent: ET.Element, tag: str) -> None:
    for node in parent.findall(tag):
        parent.remove(node)


def _drop_includes(root: ET.Element) -> None:
    """Make the config self-contained: no substitutions from /etc/metrika.xml.

    An ``incl`` element with nothing of its own (``<zookeeper incl=...
    optional="true"/>``) is removed outright: left empty, ``<zookeeper/>``
    would make the server believe ZooKeeper is configured.
    """
    for parent in root.iter():
        for child in list(parent):
            if "incl" not in child.attrib:
                continue
            if len(child) == 0 and not (child.text or "").strip():
                parent.remove(child)
            else:
                del child.attrib["incl"]
                child.attrib.pop("optional", None)
    _remove_children(root, "include_from")


def _relocate(text: str, data_dir: Path, log_dir: Path) -> str | None:
    """Map a packaged absolute path into our folder (None if not one)."""
    for prefix, target in (
        (CLICKHOUSE_DATA_PREFIX, data_dir),
        (CLICKHOUSE_LOG_PREFIX, log_dir),
    ):
        if text == prefix or text.startswith(prefix + "/"):
            rest = text[len(prefix) :].lstrip("/")
            moved = str(target / rest) if rest else str(target)
            # ClickHouse wants a trailing slash on folder paths.
            return moved + "/" if text.endswith("/") and not moved.endswith("/") else moved
    return None


@dataclass
class ClickHousePorts:
    tcp: int
    http: int
    interserver_http: int


def write_clickhouse_config(folder: Path, ports: ClickHousePorts) -> tuple[Path, Path]:
    """Copy the packaged config/users XML into ``folder`` and make them private.

    Copying (rather than writing a config from scratch) keeps the packaged
    defaults the server version expects.  What we change, and why:

    * every data/log path points inside the folder (the data is thrown away,
      and /var/lib/clickhouse may be someone's real data);
    * the three ports are our free ones; TLS/MySQL/... listeners are removed
      (unreserved ports, missing certificates);
    * only 127.0.0.1 is listened on (the machine may have no IPv6, and a
      listen_host that cannot be bound makes ClickHouse exit);
    * timezone is UTC so DateTime results do not depend on the machine;
    * ``CLICKHOUSE_MERGE_TREE`` goes into ``<merge_tree>`` (memory, see there);
    * ``incl`` substitutions are dropped (hermetic, no /etc/metrika.xml);
    * the sample clusters point at our native port, so a Distributed table
      on ``test_shard_localhost`` works in tests;
    * user ``default`` has an empty password and may connect from loopback.

    Because the files live in the folder, the system's config.d/ and users.d/
    are not merged in either.
    """
    source_config, source_users = (
        CLICKHOUSE_ETC / "config.xml",
        CLICKHOUSE_ETC / "users.xml",
    )
    for source in (source_config, source_users):
        if not source.is_file():
            raise SetupError(f"{source} is missing; is the clickhouse-server package installed correctly?")
    data_dir, log_dir = folder / "clickhouse", folder / "clickhouse-log"
    log_dir.mkdir(exist_ok=True)  # the logger does not create its folder
    config_path, users_path = folder / "config.xml", folder / "users.xml"

    tree = ET.parse(source_config)
    root = tree.getroot()
    _drop_includes(root)
    for node in root.iter():
        if node.text and node.text.strip().startswith("/"):
            moved = _relocate(node.text.strip(), data_dir, log_dir)
            if moved is not None:
                node.text = moved
    _set_child(root, "path", f"{data_dir}/")
    _set_child(root, "tmp_path", f"{data_dir}/tmp/")
    _set_child(root, "user_files_path", f"{data_dir}/user_files/")
    _set_child(root, "format_schema_path", f"{data_dir}/format_schemas/")
    logger = root.find("logger")
    if logger is None:
        logger = ET.SubElement(root, "logger")
    _set_child(logger, "log", str(log_dir / "clickhouse-server.log"))
    _set_child(logger, "errorlog", str(log_dir / "clickhouse-server.err.log"))
    _set_child(logger, "level", "information")  # enough to debug a failed start

    _set_child(root, "tcp_port", str(ports.tcp))
    _set_child(root, "http_port", str(ports.http))
    _set_child(root, "interserver_http_port", str(ports.interserver_http))
    for tag in CLICKHOUSE_UNWANTED_PORTS:
        _remove_children(root, tag)
    _remove_children(root, "listen_host")
    _set_child(root, "listen_host", LOOPBACK)
    _set_child(root, "timezone", "UTC")
    merge_tree = root.find("merge_tree")
    if merge_tree is None:
        merge_tree = ET.SubElement(root, "merge_tree")
    for name, value in CLICKHOUSE_MERGE_TREE.items():
        _set_child(merge_tree, name, value)
    _set_child(root, "users_config", str(users_path))

    remote_servers = root.find("remote_servers")
    if remote_servers is not None:
        for cluster in list(remote_servers):
            if any((s.text or "").strip() == "1" for s in cluster.iter("secure")):
                remote_servers.remove(cluster)  # no secure port here
                continue
            for replica in cluster.iter("replica"):
                _set_child(replica, "host", LOOPBACK)
                _set_child(replica, "port", str(ports.tcp))

    ET.indent(tree)
    tree.write(config_path, encoding="utf-8", xml_declaration=True)

    users_tree = ET.parse(source_users)
    users_root = users_tree.getroot()
    _drop_includes(users_root)
    users = users_root.find("users")
    if users is None:
        users = ET.SubElement(users_root, "users")
    default = users.find("default")
    if default is None:
        default = ET.SubElement(users, "default")
        _set_child(default, "profile", "default")
        _set_child(default, "quota", "default")
    for tag in ("password", "password_sha256_hex", "password_double_sha1_hex"):
        _remove_children(default, tag)
    ET.SubElement(default, "password").text = ""
    _remove_children(default, "networks")
    networks = ET.SubElement(default, "networks")
    ET.SubElement(networks, "ip").text = LOOPBACK
    ET.SubElement(networks, "ip").text = "::1"
    ET.indent(users_tree)
    users_tree.write(users_path, encoding="utf-8", xml_declaration=True)
    return config_path, users_path


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
    proc: subprocess.Popen[bytes]
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


def clickhouse_env() -> dict[str, str]:
    """The environment of clickhouse-server: ours, with its jemalloc options."""
    conf = os.environ.get("ADSERVER_TEST_CLICKHOUSE_MALLOC_CONF", CLICKHOUSE_MALLOC_CONF)
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_CONF"}
    if conf:
        env["MALLOC_CONF"] = conf
    return env


def start_clickhouse(binary: str, folder: Path, *, detached: bool) -> ClickHouseServer:
    """Start clickhouse-server with a private config; create the test database."""
    for attempt in range(1, START_ATTEMPTS + 1):
        ports = ClickHousePorts(*pick_free_ports(3))
        config, users = write_clickhouse_config(folder, ports)
        stdout_log = folder / "clickhouse-stdout.log"
        log_dir = folder / "clickhouse-log"
        logs = [
            stdout_log,
            log_dir / "clickhouse-server.err.log",
            log_dir / "clickhouse-server.log",
        ]
        cmd = [binary, f"--config-file={config}"]
        proc = spawn(cmd, cwd=folder, log_path=stdout_log, detached=detached, env=clickhouse_env())
        try:
            took = wait_ready(
                "clickhouse-server",
                proc,
                lambda p=ports: clickhouse_ping(p),
                CLICKHOUSE_DEADLINE_S,
                logs,
            )
        except ServerStartError as exc:
            stop_processes(folder, [proc], grace=5.0, sweep=False)  # not the other server
            if exc.port_clash() and attempt < START_ATTEMPTS:
                set_aside(exc.logs, attempt)
                say("a clickhouse port was taken meanwhile; retrying with others")
                continue
            raise
        server = ClickHouseServer(ports, cmd, folder, config, users, logs, proc, took)
        server.version = clickhouse_query(ports.http, "SELECT version()").strip()
        clickhouse_query(ports.http, f"CREATE DATABASE IF NOT EXISTS {TEST_DATABASE}")
        return server
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Both servers
# --------------------------------------------------------------------------


@dataclass
class Servers:
    """The pair of servers of one folder, and the files describing them."""

    folder: Path
    mode: str
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    redis: RedisServer | None = None
    clickhouse: ClickHouseServer | None = None

    def env(self) -> dict[str, str]:
        """Variables handed to the tests."""
        if self.redis is None or self.clickhouse is None:
            raise RuntimeError("servers not started")
        return {
            "ADSERVER_TEST_REDIS_URL": self.redis.url,
            "ADSERVER_TEST_CLICKHOUSE_URL": self.clickhouse.url,
            "ADSERVER_TEST_CLICKHOUSE_HTTP": self.clickhouse.http_url,
            "ADSERVER_TEST_SERVERS_DIR": str(self.folder),
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
        path = self.folder / SERVERS_JSON
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(path)  # readers never see half a file
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env().items()]
        (self.folder / ENV_SH).write_text("# written by scripts/test_servers.py\n" + "\n".join(lines) + "\n")

    def start(self, *, detached: bool) -> None:
        """Start Redis then ClickHouse, recording each child at once."""
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
            recorded = [int(info[name]["pid"]) for name in ("redis", "clickhouse")]
        stop_processes(self.folder, self.children, recorded)


def load_recorded_pids(folder: Path) -> list[int]:
    """The pids in ``folder/servers.json`` (empty if there is no such file)."""
    try:
        info = json.loads((folder / SERVERS_JSON).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {folder / SERVERS_JSON}: {exc}") from exc
    return [int(info[name]["pid"]) for name in ("redis", "clickhouse") if name in info]


# --------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


def install_terminate_handlers() -> None:
    """Make SIGTERM/SIGHUP raise, so cleanup code in ``finally`` runs.

    (SIGINT already raises KeyboardInterrupt.)
    """
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Keep Ctrl-C/SIGTERM from cutting cleanup short (it is bounded anyway)."""

    def note(signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name} received; still stopping the servers, please wait")

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, note) for s in handled}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _terminal_sent_sigint() -> bool:
    """True if we run in the terminal's foreground process group.

    Then a Ctrl-C already went to the command too (same group), and
    forwarding it would deliver it twice.
    """
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def run_command(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Run the command in the foreground and return its exit status.

    While it runs, SIGTERM/SIGHUP (and a SIGINT not coming from the
    terminal) are passed on to it, so it can finish its own cleanup before we
    stop the servers; a second signal kills it.  The handlers are in place
    before the command starts, so no signal can slip in between and leave
    the command running on its own.
    """
    proc: subprocess.Popen[bytes] | None = None
    pending: list[int] = []  # signals that came while starting the command
    received = 0

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if proc is None:
            pending.append(signum)
        elif received > 1:
            say(f"{signal.Signals(signum).name} again; killing the command")
            proc.kill()
        elif signum != signal.SIGINT or not _terminal_sent_sigint():
            proc.send_signal(signum)

    # A signal ignored by whoever started us (e.g. SIGINT for a background
    # job of a non-interactive shell) stays ignored, as the command inherits.
    handled = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, forward) for s in handled}
    try:
        try:
            proc = subprocess.Popen(list(cmd), env=env)
        except OSError as exc:
            say(f"cannot run {cmd[0]!r}: {exc.strerror}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        for signum in pending:  # it may have missed them; better twice than never
            proc.send_signal(signum)
        return exit_status(proc.wait())
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc is not None and proc.poll() is None:  # leaving on an exception
            proc.terminate()
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------
# Sub-commands
# --------------------------------------------------------------------------


def remove_folder(folder: Path) -> None:
    """Delete the throw-away folder; a failure is reported, not fatal."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        say(f"warning: could not remove {folder}: {exc}")


def cmd_run(command: list[str], keep: bool) -> int:
    """``run``: servers up, command, servers down, exit with its status."""
    if not command:
        say("nothing to run: usage: test_servers.py run [--keep] -- <command...>")
        return EXIT_SETUP_FAILED
    install_terminate_handlers()
    folder = Path(tempfile.mkdtemp(prefix="adserver-test-")).resolve()
    servers = Servers(folder, mode="run")
    status = EXIT_SETUP_FAILED
    try:
        servers.start(detached=False)
        env = dict(os.environ, **servers.env())
        # Our servers are on loopback: never send test traffic to a proxy.
        for var in ("NO_PROXY", "no_proxy"):
            extra = [h for h in (LOOPBACK, "localhost") if h not in env.get(var, "").split(",")]
            env[var] = ",".join(filter(None, [env.get(var, ""), *extra]))
        say(f"running: {shlex.join(command)}")
        started = time.monotonic()
        signal.signal(signal.SIGCHLD, servers.reap_children)
        status = run_command(command, env)
        say(f"command exited with status {status} after {time.monotonic() - started:.1f} s")
    except SetupError as exc:
        say(f"error: {exc}")
        status = EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        say("interrupted")
        status = 128 + signal.SIGINT
    except Terminated as exc:
        say(str(exc))
        status = 128 + exc.signum
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with signals_deferred():
            stopping = time.monotonic()
            servers.stop()
            say(f"servers stopped in {time.monotonic() - stopping:.1f} s")
            if keep:
                say(f"kept {folder} (--keep)")
            else:
                remove_folder(folder)
    if status == EXIT_NO_TESTS:
        say("exit status 5: pytest collected no tests; a run that tests nothing is a failure -> exit 1")
        return 1
    return status


def cmd_start(folder: Path) -> int:
    """``start``: servers detached from us, described in servers.json/env.sh."""
    install_terminate_handlers()
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    running = find_our_servers(folder) | {p for p in load_recorded_pids(folder) if _is_our_server(p, folder)}
    if running:
        raise SetupError(
            f"servers already running for {folder} (pids {sorted(running)}); "
            f"run: {sys.argv[0]} stop --dir {shlex.quote(str(folder))}"
        )
    servers = Servers(folder, mode="start")
    try:
        servers.start(detached=True)
    except BaseException:
        with signals_deferred():
            servers.stop()
        raise
    print((folder / ENV_SH).read_text(), end="")
    say(f"started; to use them: source {shlex.quote(str(folder / ENV_SH))}")
    say(f"to stop them: {sys.argv[0]} stop --dir {shlex.quote(str(folder))}")
    return 0


def cmd_stop(folder: Path) -> int:
    """``stop``: stop what ``start`` left running (the folder is kept)."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise SetupError(f"{folder} does not exist")
    recorded = load_recorded_pids(folder)
    with signals_deferred():
        found = sorted(find_our_servers(folder) | {p for p in recorded if _is_our_server(p, folder)})
        if not found:
            say(f"no servers running for {folder}")
        else:
            say(f"stopping pids {found}")
            stop_processes(folder, extra_pids=found)
            say("stopped")
    (folder / ENV_SH).unlink(missing_ok=True)  # its URLs point at nothing now
    return 0


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse options; everything after the first ``--`` is the command.

    Splitting on ``--`` ourselves (instead of argparse.REMAINDER) means the
    command's own options, e.g. ``pytest -x --keep``, are never taken for
    ours.
    """
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="test_servers.py",
        description="Private, throw-away Redis + ClickHouse servers for tests.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "run",
        help="start servers, run a command, stop servers",
        usage="test_servers.py run [--keep] -- <command...>",
    )
    run.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp folder (logs, data) afterwards",
    )
    run.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    for name, text in (
        ("start", "start servers in the background"),
        ("stop", "stop servers started by start"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--dir",
            required=True,
            type=Path,
            help="folder for data, logs, servers.json, env.sh",
        )
    args = parser.parse_args(argv)
    if args.action == "run":
        command = [*args.rest, *command]
    return args, command


def main(argv: Sequence[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.action == "run":
            return cmd_run(command, args.keep)
        if args.action == "start":
            return cmd_start(args.dir)
        return cmd_stop(args.dir)
    except SetupError as exc:
        say(f"error: {exc}")
        return EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Terminated as exc:
        say(str(exc))
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
