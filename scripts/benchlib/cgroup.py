"""Processes moved, for one measurement, into a cgroup of idle CPU weight, and back.

Why: on a host where ClickHouse shares the CPUs with the web workers, each insert of the writer (into
``events`` and every report view on it: ``scripts/bench_insert.py``) wakes ClickHouse's threads, and the
scheduler lets them preempt whatever runs, a worker's thread holding the GIL included: that worker's
requests all wait. Lowering ClickHouse's weight or capping its CPU does not stop the preemption (measured:
``docs/benchmarks.md``); an idle weight does, since idle tasks only get CPU time nobody else wants. The
deployment form is systemd's ``CPUWeight=idle`` (``deploy/systemd/clickhouse-server.service.d/shared-host.conf``),
which sets the cgroup's ``cpu.idle``; the bench sets the same file on a cgroup of its own.

Both cgroup layouts are handled: v1 with the ``cpu`` controller mounted at ``/sys/fs/cgroup/cpu``, and v2
(unified) with ``cpu`` among the root's controllers. Writing a pid to ``cgroup.procs`` moves every thread
of the process, and threads it starts later follow it.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.benchlib.stack import ROOT

CGROUP = Path("/sys/fs/cgroup")
SHARED_HOST_DROP_IN = ROOT / "deploy" / "systemd" / "clickhouse-server.service.d" / "shared-host.conf"


class Unavailable(Exception):
    """No cgroup can be made here (not root, no ``cpu`` controller, a kernel without ``cpu.idle``)."""


def drop_in_weight(path: Path = SHARED_HOST_DROP_IN) -> str:
    """The ``CPUWeight`` that the shared-host drop-in gives ClickHouse (what the bench reproduces)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text())
    return parser.get("Service", "CPUWeight", fallback="")


def _hierarchy(root: Path = CGROUP) -> tuple[Path, str]:
    """The cpu hierarchy's mount and the controller's name in ``/proc/<pid>/cgroup`` (``""`` for v2)."""
    v1 = root / "cpu"
    if (v1 / "cgroup.procs").exists() and (v1 / "cpu.shares").exists():
        return v1, "cpu"
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return root, ""
    raise Unavailable(f"no cpu controller under {root}")


def _current(pid: int, controller: str) -> str:
    """The process's cgroup in the cpu hierarchy, relative to its mount."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (controller and controller in names.split(",")) or (not controller and not names):
            return path
    raise Unavailable(f"process {pid} is in no cpu cgroup")


@contextmanager
def idle_cpu_group(pids: Iterable[int], name: str, root: Path = CGROUP) -> Iterator[Path]:
    """Move ``pids`` into a new cgroup ``name`` with ``cpu.idle`` set; on exit, back where each was.

    Raises :class:`Unavailable` (having changed nothing) when the cgroup cannot be made or set."""
    mount, controller = _hierarchy(root)
    pids = list(pids)
    origins = {pid: _current(pid, controller) for pid in pids}
    group = mount / name
    try:
        group.mkdir()
    except OSError as exc:
        raise Unavailable(f"cannot create {group}: {exc}") from exc
    try:
        try:
            (group / "cpu.idle").write_text("1")
        except OSError as exc:
            raise Unavailable(f"cannot set {group / 'cpu.idle'}: {exc}") from exc
        for pid in pids:
            (group / "cgroup.procs").write_text(str(pid))
        yield group
    finally:
        for pid, origin in origins.items():
            try:
                (mount / origin.lstrip("/") / "cgroup.procs").write_text(str(pid))
            except OSError:  # the process ended meanwhile
                pass
        group.rmdir()
