"""What every part of the test servers shares: constants, errors, progress output and small socket helpers."""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import sys
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
TEST_DATABASE = "adserver_test"
# The checkout this package lives in: a test run must leave nothing running or written there, and the
# cluster mode runs its deploy/ files.
CHECKOUT = Path(__file__).resolve().parents[2]

REDIS_DEADLINE_S = 20.0
CLICKHOUSE_DEADLINE_S = 60.0
# The whole cluster (ZooKeeper, four ClickHouse, six Redis nodes joined) on two busy cores.
CLUSTER_DEADLINE_S = 120.0
STOP_GRACE_S = 15.0
# A free port can be taken by someone else between our probe and the server's
# bind(); when that happens we simply try again with fresh ports.
START_ATTEMPTS = 3
PORTS_FROM = 20000  # servers' ports are chosen from here up to the kernel's ephemeral range

EXIT_SETUP_FAILED = 2
EXIT_NO_TESTS = 5  # pytest.ExitCode.NO_TESTS_COLLECTED

SERVERS_JSON = "servers.json"
ENV_SH = "env.sh"

# How to invoke this package, for the hints printed to humans.
PROG = "python -m scripts.testservers"


class SetupError(Exception):
    """The servers could not be set up; the message says why (exit 2)."""


class Terminated(Exception):
    """Raised from our SIGTERM/SIGHUP handler so ``finally`` blocks run."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum


def say(message: str) -> None:
    """Print a progress line on stderr (stdout belongs to the command)."""
    print(f"[testservers] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file (or a note if absent)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"  (cannot read {path}: {exc.strerror})"
    chunk = text.splitlines()[-lines:]
    return "\n".join(f"  | {line}" for line in chunk) if chunk else "  (empty)"


def pick_free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports, free now, below the kernel's ephemeral range.

    Below it because a server may have to bind its port again: a drill stops a node and starts it
    on the same ports, and while it is down the kernel may give a port of the ephemeral range
    (``net.ipv4.ip_local_port_range``) to any outgoing connection as its source port, which makes
    the restarted server's bind() fail. All probe sockets stay open until every port is chosen; a
    race with another program is possible and handled by retrying the start.
    """
    low = _ephemeral_low()
    candidates = list(range(PORTS_FROM, low)) if low - PORTS_FROM >= 1000 else []
    random.shuffle(candidates)  # concurrent runs rarely probe the same ports
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for port in candidates:
            if len(ports) == count:
                break
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            ports.append(port)
        while len(ports) < count:  # no room below the range: let the kernel choose
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
        return ports


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return PORTS_FROM  # unknown: leave the choice to the kernel


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
