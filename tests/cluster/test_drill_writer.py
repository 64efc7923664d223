"""Drill: two writer processes share the stream's partitions through leases on the Redis Cluster, one is
killed under traffic between an insert and its acknowledgement, and the survivor takes its partitions
over: every event sent is stored once on the ClickHouse cluster.

Run with ``-s`` to see the figures (``drill: sent ..., stored ..., duplicates ..., takeover ... s``).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import sync_replicas, wait_for
from tests.conftest import SECRET
from tracker.partitions import Partitions
from tracker.stream import EventStream
from tracker.writer import GROUP
from tracker.writer.leases import lease_key

pytestmark = pytest.mark.slow

PARTITIONS = 4
LEASE = 3.0  # seconds, with a ClickHouse timeout of 1.5 s (the lease must be at least twice it)


class Traffic:
    """Events written into the partitioned stream by a thread, as the pixel's script writes them."""

    def __init__(self, stream: EventStream, advertiser: str) -> None:
        self.stream, self.advertiser = stream, advertiser
        self.sent = 0
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="drill-traffic", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            uid = secrets.token_hex(8)  # visitors of every partition and both shards
            try:
                self.stream.record({"ts": time.time(), "advertiser": self.advertiser, "event": "view_item",
                                    "skus": [f"S{self.sent}"], "uid": uid}, uid=uid)
                self.sent += 1
            except Exception:  # noqa: BLE001 - counted: the drill reports every error
                self.errors += 1
            time.sleep(0.002)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _writer(env: dict[str, str], name: str, log: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tracker.writer", "--partitions", "auto"],
                            env={**env, "ADSERVER_WRITER_NAME": name, **extra}, cwd=os.getcwd(),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_a_killed_writers_partitions_are_taken_over_and_each_event_is_stored_once(cluster, cluster_any_ch,
                                                                                  cluster_stores, tmp_path):
    ch = cluster_any_ch
    client = cluster_stores.redis("writer")
    key, advertiser = f"t:drill:{secrets.token_hex(4)}", f"drill-{secrets.token_hex(3)}"
    partitions = Partitions(key, PARTITIONS)
    stream = EventStream(client, key, partitions=PARTITIONS)
    env = {**os.environ, "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": cluster.redis_url,
           "ADSERVER_CLICKHOUSE_URL": f"{cluster.clickhouse_url.rsplit('/', 1)[0]}/{ch.database}",
           "ADSERVER_CLICKHOUSE_CLUSTER": cluster.name, "ADSERVER_DATA_DIR": str(tmp_path / "var"),
           "ADSERVER_STREAM_KEY": key, "ADSERVER_STREAM_PARTITIONS": str(PARTITIONS),
           "ADSERVER_CLICKHOUSE_TIMEOUT": "1.5", "ADSERVER_WRITER_LEASE_SECONDS": str(LEASE),
           "ADSERVER_WRITER_BATCH_SECONDS": "0.2", "ADSERVER_WRITER_BATCH_SIZE": "200"}

    def holders() -> list[str]:
        return [(client.get(lease_key(partitions, p)) or b"").decode().split("/")[0] for p in range(PARTITIONS)]

    def pending_of(consumer: str) -> int:
        return sum(c["pending"] for k in partitions.streams() for c in client.xinfo_consumers(k, GROUP)
                   if c["name"].decode() == consumer)

    def stored() -> tuple[int, int]:
        return ch.execute("SELECT count(), uniqExact(stream_id) FROM events WHERE advertiser = %(a)s",
                          {"a": advertiser})[0]

    survivor_log, killed_log = tmp_path / "survivor.log", tmp_path / "killed.log"
    procs = [_writer(env, "drill-b", survivor_log)]
    try:
        wait_for(lambda: holders() == ["drill-b"] * PARTITIONS, 30, "the first writer to take every partition")
        with Traffic(stream, advertiser) as traffic:
            # The second writer gets half the partitions (released by the first), inserts its first
            # batch and dies before acknowledging it.
            procs.append(_writer(env, "drill-a", killed_log, ADSERVER_WRITER_CRASH_AT="after_insert"))
            assert procs[1].wait(timeout=60) == -signal.SIGKILL, killed_log.read_text()
            killed_at = time.monotonic()
            assert "drill-a" in holders()  # its leases outlive it ...
            assert pending_of("drill-a") > 0  # ... and so do the entries it read
            wait_for(lambda: holders() == ["drill-b"] * PARTITIONS and pending_of("drill-a") == 0, 10 * LEASE,
                  "the survivor to take the killed writer's partitions and claim its entries")
            takeover = time.monotonic() - killed_at
            time.sleep(2)  # traffic goes on after the takeover
        sent = traffic.sent
        wait_for(lambda: stored()[0] >= sent and not sum(client.xlen(k) for k in partitions.streams()), 60,
              "every event to be stored")
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(timeout=30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    sync_replicas(ch, "events")  # what is counted is what is stored
    rows, unique = stored()
    duplicates = rows - unique
    print(f"drill: sent {sent}, stored {rows}, duplicates {duplicates}, takeover {takeover:.1f} s, "
          f"errors {traffic.errors}")
    log = survivor_log.read_text()
    assert "skipped" in log  # the batch the killed writer stored was recovered without a second copy
    assert "took partition" in log and "released partition" in log
    assert (rows, duplicates, traffic.errors) == (sent, 0, 0)
