"""CPU time of processes from Linux ``/proc``: a gunicorn tree, servers, writers.

On a machine whose cores are shared with other work, CPU seconds per request or per event vary far
less from run to run than req/s, so the benchmarks report both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (``[0]`` is the state); [] if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far; 0.0 if it is gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS if fields else 0.0


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree_cpu_seconds(master: int) -> float:
    """CPU of a process and of its children, live or exited: gunicorn's master and its workers.

    Workers are replaced after ``max_requests``; the master reaps them, and the kernel adds a reaped
    child's time to the master's ``cutime``/``cstime``, so nothing a retired worker spent is lost.
    """
    fields = _stat(master)
    if not fields:
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / TICKS  # utime, stime, cutime, cstime
    return own + total_cpu_seconds(children(master))
