"""Server processes: starting them in their own session, waiting until they answer, and stopping them.

Stopping is by folder, not only by pid: every Redis or ClickHouse process whose working directory or
command line lies inside the servers' folder is ours, including one a fault test restarted from the
recorded command line.  A server started for ``run`` also dies with its parent (PR_SET_PDEATHSIG),
so a SIGKILLed ``run`` leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import procfs
from .common import STOP_GRACE_S, SetupError, exit_status, say, tail

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """Return a preexec_fn asking Linux to SIGTERM the child if we die.

    ``run`` may itself be SIGKILLed (CI timeout, OOM killer); the servers run
    in their own session, so without this they would outlive it.  Not used
    for ``start``, whose servers are meant to outlive the command.
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
            # This program starts no threads, so preexec_fn is safe here.
            preexec_fn=None if detached else _die_with_parent_preexec(),  # noqa: PLW1509
        )


def is_our_server(pid: int, folder: Path) -> bool:
    """True if ``pid`` is a redis/clickhouse process belonging to ``folder``.

    Belonging means its working directory or its command line is inside the
    folder.  Checking the executable too means a shell whose cwd happens to
    be the folder is never touched.
    """
    if not procfs.is_server(pid):
        return False
    root = str(folder)
    cwd = procfs.cwd(pid)
    return (cwd is not None and procfs.inside(cwd, root)) or procfs.mentions(procfs.arguments(pid), root)


def find_our_servers(folder: Path) -> set[int]:
    """Every live redis/clickhouse process belonging to ``folder``."""
    return {pid for pid in procfs.pids() if is_our_server(pid, folder)}


def _signal_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to a server and, if it leads one, its process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def terminate(pids: set[int], grace: float, alive: Callable[[int], bool] = procfs.alive) -> None:
    """SIGTERM ``pids``, wait up to ``grace`` seconds, SIGKILL what is left, and wait for it to go."""
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
    pids |= {p for p in extra_pids if is_our_server(p, folder)}
    if sweep:
        pids |= find_our_servers(folder)
    if not pids:
        return
    by_pid = {c.pid: c for c in children}

    def alive(pid: int) -> bool:
        child = by_pid.get(pid)
        if child is not None:
            return child.poll() is None  # also reaps it
        return procfs.alive(pid)

    terminate(pids, grace, alive)
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
