"""``python -m scripts.testservers``, end to end: ``run`` fails a command that leaves a server behind (naming
it, and stopping it), ``start``/``stop`` describe and stop their servers through the folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.testservers import procfs

ROOT = Path(__file__).resolve().parents[2]


def _testservers(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.testservers", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_run_names_and_stops_a_server_the_command_left_running():
    # The command starts a redis-server that outlives it (daemonized), with its data in the run's TMPDIR.
    leave_one = ('mkdir "$TMPDIR/stray" && redis-server --port 0 --unixsocket "$TMPDIR/stray/s.sock" '
                 '--dir "$TMPDIR/stray" --save "" --daemonize yes --pidfile "$TMPDIR/stray/pid" >/dev/null')

    result = _testservers("run", "--", "sh", "-c", leave_one)

    assert result.returncode == 1, result.stderr
    named = re.search(r"server left running: pid (\d+): .*redis-server.*\(cwd (\S+);", result.stderr)
    assert named, result.stderr
    assert named.group(2).endswith("/tmp/stray")
    assert not procfs.alive(int(named.group(1)))


@pytest.mark.slow
def test_run_passes_the_commands_status_and_its_servers_environment():
    script = ('test -n "$ADSERVER_TEST_REDIS_URL" && test -n "$ADSERVER_TEST_CLICKHOUSE_URL" && '
              'test -f "$ADSERVER_TEST_SERVERS_DIR/servers.json" && case "$TMPDIR" in '
              '"${ADSERVER_TEST_SERVERS_DIR%/servers}"/*) exit 7;; esac')

    result = _testservers("run", "--", "sh", "-c", script)

    assert result.returncode == 7, result.stderr
    assert "left running" not in result.stderr


@pytest.mark.slow
def test_start_describes_the_servers_and_stop_stops_them(tmp_path):
    folder = tmp_path / "servers"
    started = _testservers("start", "--dir", str(folder))
    try:
        assert started.returncode == 0, started.stderr
        info = json.loads((folder / "servers.json").read_text())
        assert info["format"] == 1 and info["mode"] == "start" and info["dir"] == str(folder)
        pids = [info[name]["pid"] for name in ("redis", "clickhouse")]
        assert all(procfs.alive(pid) for pid in pids)
        assert f"export ADSERVER_TEST_REDIS_URL={info['redis']['url']}" in (folder / "env.sh").read_text()
    finally:
        stopped = _testservers("stop", "--dir", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(procfs.alive(pid) for pid in pids)
    assert not (folder / "env.sh").exists()
