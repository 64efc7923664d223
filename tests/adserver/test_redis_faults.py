"""Redis down or hanging, for real: pixels still answer, events wait in the local spool and reach
the stream (then ClickHouse) when Redis is back; ads fall back to non-personalised products."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import SECRET, drain
from tests.waiting import wait_for
from tracker.settings import load_settings
from tracker.writer import BatchWriter

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test alone, so it can be stopped, paused and restarted."""

    def __init__(self, folder) -> None:
        self.port = _free_port()
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_for(client.ping, 10, "redis-server answering", tolerate=(redis.ConnectionError,), interval=0.02)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.proc.poll() is None:
        server.resume()
        server.stop()


@pytest.fixture
def fault_app(tmp_path, own_redis, clickhouse_url, ch, demo_loaded):
    from adserver import create_app

    settings = load_settings({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": own_redis.url,
        "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_DATA_DIR": str(tmp_path / "var"),
        "ADSERVER_REDIS_TIMEOUT": "0.2",
        "ADSERVER_PIXEL_LINGER_MS": "0",  # each hit spooled at once (with lingering: tests/tracker/test_linger.py)
    })
    app = create_app(settings)
    yield app
    app.extensions["adserver"].spool.stop()
    app.extensions["adserver"].close()


def _events_in_clickhouse(app, ch, expected: int) -> None:
    settings = app.extensions["adserver"].settings
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    writer = BatchWriter(client, ch, settings.stream_key, "fault-writer", batch_seconds=0.05)
    writer.ensure_group()
    drain(writer)
    assert ch.execute("SELECT count() FROM events WHERE event = 'view_item'")[0][0] == expected


def test_redis_down_pixels_answer_and_nothing_is_lost(fault_app, own_redis, ch):
    client = fault_app.test_client()
    services = fault_app.extensions["adserver"]
    assert client.get("/px.gif?a=demo&e=view_item&sku=D1001").status_code == 200
    own_redis.stop()
    for n in range(20):
        response = client.get(f"/px.gif?a=demo&e=view_item&sku=D10{10 + n}")
        assert response.status_code == 200 and response.mimetype == "image/gif"
    assert services.spool.pending_records() == 20
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["redis"].startswith("down")
    assert health.get_json()["spool"]["records"] == 20
    ad = client.get("/ad.json?p=demo-feed&size=300x250")
    assert ad.status_code == 200 and ad.get_json()["path"] == "fallback" and ad.get_json()["products"]

    own_redis.start()  # back, empty (no persistence): the spool refills the stream
    wait_for(lambda: services.spool.pending_records() == 0, 20, "the spool replayed")
    # 20 views + the impression served while down are replayed; the first view was lost with Redis's memory.
    stream = redis.Redis.from_url(own_redis.url).xlen(services.settings.stream_key)
    assert stream == 21
    _events_in_clickhouse(fault_app, ch, expected=20)
    # The replayed views rebuilt the visitor's profile too.
    ad = client.get("/ad.json?p=demo-feed&size=300x250").get_json()
    assert ad["path"] == "personalised" and ad["products"][0]["reason"] == "recent"


def test_redis_hanging_times_out_into_the_spool_and_recovers(fault_app, own_redis, ch):
    client = fault_app.test_client()
    services = fault_app.extensions["adserver"]
    own_redis.pause()
    try:
        for n in range(10):
            assert client.get(f"/px.gif?a=demo&e=view_item&sku=D10{20 + n}").status_code == 200
        ad = client.get("/ad?p=demo-feed&size=300x250")
        assert ad.status_code == 200 and b"/c/" in ad.data
        assert services.breaker.failures >= 1
        assert services.spool.pending_records() == 11
    finally:
        own_redis.resume()
    wait_for(lambda: services.spool.pending_records() == 0, 20, "the spool replayed")
    _events_in_clickhouse(fault_app, ch, expected=10)


def test_a_dead_process_spool_is_replayed_by_the_next_one(fault_app, own_redis, tmp_path):
    services = fault_app.extensions["adserver"]
    folder = services.spool.folder
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    row = {"ts": time.time(), "advertiser": "demo", "event": "view_item", "skus": ["D1001"], "uid": "u-dead"}
    (folder / f"{socket.gethostname()}-{dead.pid}.jsonl").write_text(
        json.dumps({"kind": "ev", "row": row, "uid": "u-dead", "counter": None}) + "\n")
    assert services.spool.replay(services._replay) == 1
    assert services.spool.pending_records() == 0
    assert redis.Redis.from_url(own_redis.url).xlen(services.settings.stream_key) == 1
