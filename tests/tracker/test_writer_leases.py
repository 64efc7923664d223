"""Writers sharing the stream's partitions through leases (``--partitions auto``), on the Redis and
ClickHouse test servers: shares balance, a stopped writer's partitions move, a writer that lost its
lease inserts nothing, and a taken-over partition's pending entries are stored exactly once."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.conftest import SECRET
from tests.waiting import wait_for
from tracker.partitions import Partitions
from tracker.stream import EventStream
from tracker.writer import GROUP, BatchWriter
from tracker.writer.__main__ import main as writer_main
from tracker.writer.fleet import partition_writers
from tracker.writer.leases import LeaseManager, NameInUse, lease_key, name_key, registry_key
from tracker.writer.pipeline import FencedOut

PARTITIONS = 4
LEASE = 1.2  # seconds; renewed every 0.4 s
WAIT = 20.0  # seconds for what the writers do on their own


class Writers:
    """Lease managers run in threads of the test process, each as a writer process runs one."""

    def __init__(self, client, ch, stream: EventStream) -> None:
        self.client, self.ch, self.stream = client, ch, stream
        self.running: list[tuple[LeaseManager, threading.Thread]] = []

    def manager(self, name: str, lease: float = LEASE, batch_seconds: float = 0.05) -> LeaseManager:
        client, ch, partitions = self.client, self.ch, self.stream.partitions

        def writers_for(partition: int, may_insert: Callable[[], bool]) -> list[BatchWriter]:
            return partition_writers(client, ch, partitions, [partition], name, batch_size=500,
                                     batch_seconds=batch_seconds, may_insert=may_insert)

        return LeaseManager(client, partitions, name, lease, lease / 2, writers_for)

    def start(self, name: str, **kwargs) -> LeaseManager:
        manager = self.manager(name, **kwargs)
        thread = threading.Thread(target=manager.run, name=f"manager-{name}", daemon=True)
        thread.start()
        self.running.append((manager, thread))
        return manager

    def stop(self, manager: LeaseManager) -> None:
        manager.stop()
        for running, thread in self.running:
            if running is manager:
                thread.join(timeout=30)
                assert not thread.is_alive(), "the writer did not stop"

    def stop_all(self) -> None:
        for manager, _ in self.running:
            manager.stop()
        for _, thread in self.running:
            thread.join(timeout=30)


@pytest.fixture
def stream(redis_client) -> EventStream:
    return EventStream(redis_client, f"t:leases:{secrets.token_hex(4)}", partitions=PARTITIONS)


@pytest.fixture
def writers(redis_client, ch, stream) -> Iterator[Writers]:
    group = Writers(redis_client, ch, stream)
    yield group
    group.stop_all()


def _push(stream: EventStream, n: int, advertiser: str, start: int = 0) -> None:
    for i in range(start, start + n):
        stream.record({"ts": time.time(), "advertiser": advertiser, "event": "view_item", "skus": [f"S{i}"],
                       "uid": f"u{i}"}, uid=f"u{i}")


def _stored(ch, advertiser: str) -> tuple[int, int]:
    """Rows of the advertiser, and distinct stream ids among them."""
    return ch.execute("SELECT count(), uniqExact(stream_id) FROM events WHERE advertiser = %(a)s",
                      {"a": advertiser})[0]


def _left(stream: EventStream) -> int:
    return sum(stream.client.xlen(key) for key in stream.partitions.streams())


def test_two_writers_share_the_partitions_and_one_takes_all_when_the_other_stops(writers, stream, ch, caplog):
    caplog.set_level(logging.INFO, logger="tracker.writer")
    first = writers.start("wa")
    wait_for(lambda: first.held() == [0, 1, 2, 3], WAIT, "the first writer to take every partition")
    second = writers.start("wb")
    wait_for(lambda: len(first.held()) == len(second.held()) == 2, WAIT, "a 2/2 share")
    assert sorted(first.held() + second.held()) == [0, 1, 2, 3]
    holders = {stream.client.get(lease_key(stream.partitions, p)).decode().split("/")[0] for p in range(PARTITIONS)}
    assert holders == {"wa", "wb"}

    _push(stream, 400, "shared")
    wait_for(lambda: _stored(ch, "shared")[0] == 400, WAIT, "400 rows")
    assert first.written() > 0 and second.written() > 0  # both drained their own partitions

    caplog.clear()
    writers.stop(second)  # it flushes and marks its leases released ...
    wait_for(lambda: first.held() == [0, 1, 2, 3], 5 * LEASE, "the survivor to take every partition")
    assert caplog.text.count("released partition") == 2
    assert caplog.text.count("took partition") == 2 and "waiting" not in caplog.text  # ... so taken at once
    _push(stream, 300, "shared", start=400)
    wait_for(lambda: _stored(ch, "shared")[0] == 700 and _left(stream) == 0, WAIT, "700 rows")
    assert _stored(ch, "shared") == (700, 700)
    assert stream.client.zrange(registry_key(stream.partitions), 0, -1) == [first.holder.encode()]


def test_a_writer_whose_lease_is_taken_stops_without_inserting_what_it_holds(writers, stream, ch, caplog):
    caplog.set_level(logging.INFO, logger="tracker.writer")
    # Batches of 3 s: what the writer reads, it holds for a while before inserting.
    holder = writers.start("wa", batch_seconds=3.0)
    wait_for(lambda: holder.held() == [0, 1, 2, 3], WAIT, "the writer to take every partition")
    _push(stream, 120, "held")

    def pending() -> int:
        try:
            return sum(stream.client.xpending(k, GROUP)["pending"] for k in stream.partitions.streams())
        except redis.ResponseError:  # a partition's group is not made yet
            return -1

    wait_for(lambda: pending() == 120, WAIT, "the writer to read every entry")
    for p in range(PARTITIONS):  # another writer holds them now (the lease had lapsed, say)
        stream.client.set(lease_key(stream.partitions, p), "thief/0", px=60_000)
    wait_for(lambda: holder.held() == [], 3 * LEASE, "the writer to notice")
    time.sleep(3.5)  # past the batch interval: the batches it held would have been inserted by now
    assert _stored(ch, "held") == (0, 0)
    assert pending() == 120  # left pending, unacknowledged, for the partitions' next owner
    assert "lost partition" in caplog.text

    # The thief goes away without releasing: a new writer waits out the missing leases' grace,
    # claims what the first one read and stores each entry once.
    writers.stop(holder)  # it has nothing to release
    assert all(stream.client.get(lease_key(stream.partitions, p)) == b"thief/0" for p in range(PARTITIONS))
    for p in range(PARTITIONS):
        stream.client.delete(lease_key(stream.partitions, p))
    started = time.monotonic()
    successor = writers.start("wb")
    wait_for(lambda: _stored(ch, "held")[0] == 120 and _left(stream) == 0, WAIT, "the successor to store everything")
    assert time.monotonic() - started >= LEASE  # it waited for any insert of the lapsed holder
    assert _stored(ch, "held") == (120, 120)
    assert pending() == 0
    assert successor.held() == [0, 1, 2, 3]


def test_takeover_claims_a_dead_writers_pending_entries_and_stores_each_once(writers, stream, ch):
    _push(stream, 300, "dead")
    partitions = stream.partitions
    dead = partition_writers(stream.client, ch, partitions, list(range(PARTITIONS)), "dead", batch_seconds=0.05)
    for writer in dead:  # it read every partition, stored a batch of each, and died before acknowledging
        writer.ensure_group()
        batch = writer._build(writer._gather())
        writer._insert("events", batch.event_names, batch.events)
        stream.client.set(lease_key(partitions, int(writer.id_prefix.rstrip("/"))), "dead/0", px=500)
    _push(stream, 100, "dead", start=300)  # and traffic went on
    stored_before = _stored(ch, "dead")[0]
    assert 0 < stored_before < 400

    survivor = writers.start("wb")
    wait_for(lambda: _stored(ch, "dead")[0] == 400 and _left(stream) == 0, WAIT, "every entry stored")
    assert _stored(ch, "dead") == (400, 400)
    consumers = {c["name"]: c["pending"] for key in partitions.streams()
                 for c in stream.client.xinfo_consumers(key, GROUP)}
    assert consumers.get(b"dead") == 0 and survivor.held() == [0, 1, 2, 3]


def test_a_fenced_writer_leaves_its_batch_pending(stream, ch):
    allowed = [False]
    writer = partition_writers(stream.client, ch, stream.partitions, [0], "fenced", batch_seconds=0.05,
                               may_insert=lambda: allowed[0])[0]
    writer.ensure_group()
    for i in range(200):  # until partition 0 has some
        _push(stream, 1, "fenced", start=i)
    batch = writer._build(writer._gather())
    assert len(batch) > 0
    with pytest.raises(FencedOut):
        writer.flush(batch)
    assert _stored(ch, "fenced") == (0, 0)
    assert stream.client.xpending(writer.stream_key, GROUP)["pending"] == len(batch)
    allowed[0] = True
    assert writer.recover() == len(batch)
    assert _stored(ch, "fenced")[0] == len(batch)


def test_a_second_writer_under_a_live_writers_name_refuses_to_start(writers):
    first = writers.start("same")
    wait_for(lambda: first.held() == [0, 1, 2, 3], WAIT, "the first writer to be running")  # registered, then
    twin = writers.manager("same")
    guard = threading.Timer(LEASE * 20, twin.stop)  # a twin that wrongly starts returns, rather than running on
    guard.start()
    started = time.monotonic()
    try:
        with pytest.raises(NameInUse, match="ADSERVER_WRITER_NAME"):
            twin.run()
    finally:
        guard.cancel()
    assert time.monotonic() - started >= LEASE  # it gave a dead namesake the time to drop out


def test_a_restarted_writer_starts_once_its_dead_predecessor_drops_out(writers, stream):
    # A claim on the name that is not renewed any more: the predecessor was killed.
    stream.client.set(name_key(stream.partitions, "again"), "again/dead", px=600)
    restarted = writers.start("again")
    wait_for(lambda: restarted.held() == [0, 1, 2, 3], WAIT, "the restarted writer to take the partitions")


def test_of_two_namesakes_started_together_exactly_one_runs(writers):
    """Each reads who is running before the other has said so: only an atomic claim on the name tells them apart."""
    twins = [writers.manager("twin"), writers.manager("twin")]
    refused: list[LeaseManager] = []
    go = threading.Barrier(2)

    def run(manager: LeaseManager) -> None:
        go.wait()
        try:
            manager.run()
        except NameInUse:
            refused.append(manager)

    threads = [threading.Thread(target=run, args=(m,), daemon=True) for m in twins]
    guard = threading.Timer(LEASE * 20, lambda: [m.stop() for m in twins])  # neither may hang the test
    guard.start()
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: len(refused) == 1, WAIT, "one twin to refuse")
        running = next(m for m in twins if m not in refused)
        wait_for(lambda: running.held() == [0, 1, 2, 3], WAIT, "the other twin to take every partition")
        assert len(refused) == 1
    finally:
        guard.cancel()
        for manager in twins:
            manager.stop()
        for thread in threads:
            thread.join(timeout=30)


def test_a_writer_whose_name_was_taken_over_stops(writers, stream):
    """Paused for longer than a lease, a writer may find its name claimed by a namesake started meanwhile:
    it stops (its writers with it) and says why, rather than run on under a name two processes share."""
    stalled = writers.manager("taken")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            stalled.run()
        except NameInUse as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: stalled.held() == [0, 1, 2, 3], WAIT, "the writer to be running")
        stream.client.set(name_key(stream.partitions, "taken"), "taken/newcomer", px=int(LEASE * 1000))
        thread.join(timeout=30)
        assert not thread.is_alive(), "the writer did not stop"
        assert outcome and "took the name over" in str(outcome[0])
        assert stalled.held() == []
    finally:
        stalled.stop()
        thread.join(timeout=30)


def test_a_lease_must_outlast_two_insert_timeouts(redis_client):
    with pytest.raises(ValueError, match="twice"):
        LeaseManager(redis_client, Partitions("k", 2), "w", 1.0, 0.6, lambda p, f: [])


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--partitions", "auto,0-1"], {}, "invalid --partitions"),
    (["--partitions", "AUTO"], {}, "or auto"),
    (["--partitions", "0-9"], {}, "outside 0-3"),
    (["--partitions", "auto"], {"ADSERVER_WRITER_LEASE_SECONDS": "10"}, "at least twice ADSERVER_CLICKHOUSE_TIMEOUT"),
    (["--partitions", "auto"], {"ADSERVER_WRITER_LEASE_SECONDS": "soon"}, "must be a number"),
    (["--partitions", "auto"], {"ADSERVER_WRITER_LEASE_SECONDS": "3", "ADSERVER_CLICKHOUSE_TIMEOUT": "2"},
     "at least twice"),
])
def test_the_writer_refuses_bad_partitions_and_lease_settings(argv, env, message, monkeypatch, tmp_path, caplog,
                                                               redis_url, clickhouse_url):
    for name, value in {"ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url,
                        "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_DATA_DIR": str(tmp_path),
                        "ADSERVER_STREAM_PARTITIONS": str(PARTITIONS), **env}.items():
        monkeypatch.setenv(name, value)
    assert writer_main(argv) == 2
    assert message in caplog.text


def test_the_lease_follows_the_clickhouse_timeout_unless_set(tmp_path):
    from tracker.settings import load_settings

    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_CLICKHOUSE_TIMEOUT": "5"}
    assert load_settings(env).writer_lease_seconds == 10
    assert load_settings({**env, "ADSERVER_WRITER_LEASE_SECONDS": "12.5"}).writer_lease_seconds == 12.5
