"""``python -m scripts.testservers start/run --cluster``, end to end: the cluster's servers are described,
handed to the command, found by the left-over check (ZooKeeper included, though it runs as java) and
stopped with the rest."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.testservers import procfs
from scripts.testservers.leftovers import find_leftovers

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _testservers(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.testservers", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_start_cluster_describes_every_server_and_stop_stops_them(tmp_path):
    folder = tmp_path / "servers"
    started = _testservers("start", "--cluster", "--dir", str(folder))
    try:
        assert started.returncode == 0, started.stderr
        info = json.loads((folder / "servers.json").read_text())
        cluster = info["cluster"]
        assert [node["host"] for node in cluster["clickhouse"]] == ["ch-1-1", "ch-1-2", "ch-2-1", "ch-2-2"]
        assert [node["shard"] for node in cluster["clickhouse"]] == [1, 1, 2, 2]
        assert len(cluster["redis"]) == 6
        pids = [cluster["zookeeper"]["pid"], *(n["pid"] for n in cluster["clickhouse"] + cluster["redis"])]
        assert all(procfs.alive(pid) for pid in pids)
        assert procfs.exe_name(cluster["zookeeper"]["pid"]) == "java" and procfs.is_server(cluster["zookeeper"]["pid"])
        # what a test run would be told if it left them running
        assert {leftover.pid for leftover in find_leftovers([folder])} == {*pids, info["redis"]["pid"],
                                                                           info["clickhouse"]["pid"]}
        env = (folder / "env.sh").read_text()
        seeds = ",".join(f"127.0.0.1:{node['port']}" for node in cluster["redis"])
        assert f"export ADSERVER_TEST_CLUSTER_REDIS_URL={shlex.quote('redis+cluster://' + seeds)}\n" in env
        assert f"export ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL={cluster['clickhouse'][0]['url']}\n" in env
        assert "export ADSERVER_TEST_CLICKHOUSE_CLUSTER=adserver_cluster\n" in env
        nodes = ",".join(node["url"] for node in cluster["clickhouse"])
        assert f"export ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES={nodes}\n" in env

        again = _testservers("start", "--cluster", "--dir", str(folder))
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        stopped = _testservers("stop", "--dir", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(procfs.alive(pid) for pid in pids)
    assert find_leftovers([folder]) == []
    assert not (folder / "env.sh").exists()


def test_run_cluster_hands_the_cluster_to_the_command_and_leaves_nothing():
    script = ('test -n "$ADSERVER_TEST_CLUSTER_REDIS_URL" && test -n "$ADSERVER_TEST_CLUSTER_CLICKHOUSE_NODES" && '
              'test "$ADSERVER_TEST_CLICKHOUSE_CLUSTER" = adserver_cluster && '
              'redis-cli -p "${ADSERVER_TEST_CLUSTER_REDIS_URL##*:}" cluster info | grep -q cluster_state:ok && '
              'cat "$ADSERVER_TEST_SERVERS_DIR/servers.json" && exit 7')

    result = _testservers("run", "--cluster", "--", "sh", "-c", script)

    assert result.returncode == 7, result.stderr
    assert "left running" not in result.stderr
    info = json.loads(result.stdout)
    cluster = info["cluster"]
    pids = [cluster["zookeeper"]["pid"], *(n["pid"] for n in cluster["clickhouse"] + cluster["redis"])]
    assert len(pids) == 11 and not any(procfs.alive(pid) for pid in pids)
