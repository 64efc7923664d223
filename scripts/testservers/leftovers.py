"""What a test run must not leave behind: servers still running in its folders, and ``var/`` in the checkout.

A server is the run's when its working directory, its command line or one of its open files lies
inside a folder the run made (the servers' folder, the temporary folder its tests write to).

The checkout is shared with whoever else works in it (``make run``, another engineer's tests), so
a server found there is judged by its environment: every process the tests start inherits
``ADSERVER_TEST_SERVERS_DIR`` naming this run's servers, and one naming another run's is not ours.
Redis overwrites its environment with its process title, though, so a server whose environment
names no run counts as the run's if it started while the run was going.  Such a server is reported
but not stopped: it may belong to someone else.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import procfs
from .common import STOP_GRACE_S, say
from .processes import terminate

# Folders of the checkout never searched for ``var/``: tools' own state, not the product's.
SKIPPED_FOLDERS = (".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class Leftover:
    """A server process still running, what ties it to the run, and whether it is surely the run's."""

    pid: int
    command: str
    cwd: str
    reason: str
    certain: bool = True

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.command} (cwd {self.cwd}; {self.reason})"


def _tie(pid: int, root: str) -> str | None:
    """How the process lies inside ``root``: its cwd, its command line or an open file (None if not)."""
    cwd = procfs.cwd(pid)
    if cwd is not None and procfs.inside(cwd, root):
        return f"working directory in {root}"
    if procfs.mentions(procfs.arguments(pid), root):
        return f"command line names {root}"
    for path in procfs.open_files(pid):
        if procfs.inside(path, root):
            return f"has {path} open"
    return None


def _first_tie(pid: int, roots: Sequence[Path]) -> str | None:
    return next(filter(None, (_tie(pid, str(root)) for root in roots)), None)


def _run_of(pid: int, mark: tuple[str, str], since: int | None) -> bool | None:
    """True if the environment carries ``mark``, False if it names another run; else None if the
    process started at or after ``since`` (clock ticks since boot), False if before."""
    env = procfs.environ(pid) or {}
    if mark[0] in env:
        return env[mark[0]] == mark[1]
    started = procfs.start_ticks(pid)
    return None if since is not None and started is not None and started >= since else False


def find_leftovers(
    owned: Sequence[Path],
    shared: Sequence[Path] = (),
    mark: tuple[str, str] | None = None,
    since: int | None = None,
) -> list[Leftover]:
    """Redis, ClickHouse and ZooKeeper processes running inside the run's folders.

    ``owned`` are folders made for the run alone: any server inside is left over.  A server inside
    a ``shared`` folder (the checkout) is left over if its environment holds ``mark`` (name, value),
    or, when its environment names no run at all, if it started at or after ``since`` (clock ticks
    since boot, see ``procfs.start_ticks``); the latter are not ``certain``.
    """
    found = []
    for pid in procfs.pids():
        if not procfs.is_server(pid) or not procfs.alive(pid):
            continue
        reason, certain = _first_tie(pid, owned), True
        if reason is None and shared and mark is not None:
            ours = _run_of(pid, mark, since)
            if ours is not False:
                reason, certain = _first_tie(pid, shared), ours is True
                if reason is not None and not certain:
                    reason += "; started during the run, its environment names no run"
        if reason is not None:
            command = shlex.join(procfs.cmdline(pid)) or "?"
            found.append(Leftover(pid, command, procfs.cwd(pid) or "?", reason, certain))
    return sorted(found, key=lambda leftover: leftover.pid)


def var_folders(root: Path) -> set[Path]:
    """Every folder named ``var`` under ``root`` (tools' folders such as .git and .venv left out)."""
    found = set()
    for folder, subfolders, _files in os.walk(root):
        if os.path.basename(folder) == "var":
            found.add(Path(folder))
            subfolders.clear()
            continue
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
    return found


def stop_leftovers(leftovers: Iterable[Leftover]) -> None:
    """Stop the left-over servers that are surely the run's (the others may be someone else's)."""
    pids = {leftover.pid for leftover in leftovers if leftover.certain}
    if pids:
        terminate(pids, STOP_GRACE_S)


def check(owned: Sequence[Path], checkout: Path, mark: tuple[str, str], since: int | None,
          var_before: set[Path]) -> bool:
    """Report left-over servers (stopping the run's own) and new ``var/`` folders; True if there were none."""
    leftovers = find_leftovers(owned, [checkout], mark, since)
    new_var = sorted(var_folders(checkout) - var_before)
    for leftover in leftovers:
        note = "" if leftover.certain else " (not stopped: it may be someone else's)"
        say(f"error: server left running: {leftover}{note}")
    for folder in new_var:
        say(f"error: the run created {folder} inside the checkout (tests must write under their tmp_path)")
    stop_leftovers(leftovers)
    return not leftovers and not new_var
