"""The pixel with lingering writes (``ADSERVER_PIXEL_LINGER_MS``, ``tracker.linger``): every hit it
answered reaches the stream and ClickHouse once, hostile ones as rejected hits; with Redis down
the batch goes to the spool and comes back; a gunicorn worker stopped gracefully sends what it holds.
On a single Redis server and on the Redis Cluster with four partitions."""

from __future__ import annotations

import dataclasses
import os
import runpy
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis
from gunicorn.config import Config
from werkzeug.test import Client

from adserver import create_app
from tests.adserver.redis_modes import MODES, drain_all, stream_length
from tests.adserver.test_redis_faults import OwnRedis, _free_port
from tests.conftest import SECRET
from tests.stream_events import events_waiting, stream_events
from tests.waiting import wait_for
from tracker.breaker import CircuitBreaker
from tracker.identity import VisitorIds
from tracker.linger import Linger
from tracker.settings import load_settings
from tracker.stream import EventStream

CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
          "Safari/537.36")
HOSTILE = [  # (query, reason stored in bad_events)
    ("a=demo&e=view_everything&sku=D1001", "invalid_event"),
    ("a=nosuchshop&e=view_item&sku=D1001", "unknown_advertiser"),
    ("a=demo&e=view_item&sku=%3Cscript%3Ealert(1)%3C/script%3E", "invalid_sku"),
    ("a=demo&e=view_item&sku=" + ",".join(f"S{i}" for i in range(51)), "too_many_skus"),
    ("a=demo&e=view_item&sku=%ff%fe", "invalid_encoding"),
    ("a=demo&e=view_item&sku=D1001&sku=D1002", "duplicate_parameter"),
    ("a=demo&e=view_item&sku=D1001&url=" + "https://store.example/" + "a" * 2978, "url_too_long"),
    ("", "missing_advertiser"),
]


def _gif(response) -> None:
    assert response.status_code == 200 and response.mimetype == "image/gif"


@pytest.mark.parametrize("redis_mode", MODES, indirect=True)
def test_lingered_hits_land_once_with_profiles_and_hostile_hits_as_rejected(settings, demo_loaded, writers, ch):
    app = create_app(dataclasses.replace(settings, pixel_linger_ms=5.0))
    services = app.extensions["adserver"]
    try:
        client = Client(app, use_cookies=False)
        ids = VisitorIds(settings.secret_keys)
        visitors = [ids.new() for _ in range(12)]
        for n in range(5):
            for _uid, cookie in visitors:
                _gif(client.get(f"/px.gif?a=demo&e=view_item&sku=D10{10 + n}",
                                headers={"Cookie": f"uid={cookie}", "User-Agent": CHROME}))
        for query, _ in HOSTILE:
            _gif(client.get("/px.gif?" + query, headers={"User-Agent": CHROME}))
        _gif(client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"User-Agent": "curl/8.5.0"}))
        sent = 5 * len(visitors) + len(HOSTILE) + 1
        wait_for(lambda: stream_length(services.stream.client, settings) == sent, 20, "the flusher alone sends them",
                 tolerate=(redis.RedisError,))
        assert services.linger.queued == 0 and services.spool.pending_records() == 0
        for uid, _ in visitors:
            interests, _ = services.stream.interests(uid)
            assert [(i.advertiser, i.recent) for i in interests] == [("demo", ["D1014", "D1013", "D1012", "D1011",
                                                                                "D1010"])]
    finally:
        services.close()
    drain_all(writers)
    rows = ch.execute("SELECT uid, sku, invalid FROM events WHERE event = 'view_item'")
    by_visitor: dict[str, list] = {}
    for uid, sku, invalid in sorted(rows):  # once each (their order is the profile's, checked above)
        by_visitor.setdefault(uid, []).append((sku, invalid))
    assert {uid: by_visitor.get(uid) for uid, _ in visitors} == {
        uid: [(f"D10{10 + n}", 0) for n in range(5)] for uid, _ in visitors}
    assert len(rows) == 5 * len(visitors) + 1 and sum(1 for r in rows if r[2]) == 1  # the bot's, stored invalid
    reasons = Counter(r[0] for r in ch.execute("SELECT reason FROM bad_events"))
    assert reasons == Counter(reason for _, reason in HOSTILE)


@pytest.mark.slow
def test_with_redis_down_a_lingered_batch_is_spooled_and_replayed(tmp_path, clickhouse_url, ch, demo_loaded):
    own = OwnRedis(tmp_path)
    own.start()
    settings = load_settings({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": own.url, "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
        "ADSERVER_DATA_DIR": str(tmp_path / "var"), "ADSERVER_REDIS_TIMEOUT": "0.2", "ADSERVER_PIXEL_LINGER_MS": "5",
    })
    app = create_app(settings)
    services = app.extensions["adserver"]
    try:
        client = Client(app, use_cookies=False)
        uid, cookie = VisitorIds(settings.secret_keys).new()
        own.stop()
        for n in range(20):
            _gif(client.get(f"/px.gif?a=demo&e=view_item&sku=D10{10 + n}",
                            headers={"Cookie": f"uid={cookie}", "User-Agent": CHROME}))
        wait_for(lambda: services.spool.pending_records() == 20, 20, "the flusher fails and spools every hit")
        assert services.linger.queued == 0
        own.start()  # back, empty: the spool refills the stream, in order
        wait_for(lambda: services.spool.pending_records() == 0, 20, "the spool replayed")
        stream = services.stream
        events = stream_events(stream.client, settings.stream_key)
        assert [row["skus"] for _, row in events] == [[f"D10{10 + n}"] for n in range(20)]
        interests, _ = stream.interests(uid)
        assert interests[0].recent == [f"D10{n}" for n in range(29, 29 - settings.profile_size, -1)][:20]
    finally:
        services.spool.stop()
        services.close()
        if own.proc.poll() is None:
            own.stop()


def _get(url: str, headers: dict) -> bytes:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGQUIT], ids=["graceful", "quick"])
def test_a_gunicorn_worker_stopped_sends_the_hits_it_holds(tmp_path, redis_url, clickhouse_url, redis_client, ch,
                                                           demo_loaded, stop):
    """SIGTERM lets workers finish their requests; SIGQUIT makes them exit at once, through the exit hooks."""
    port = _free_port()
    stream_key = "t:lingerstop"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADSERVER_", "PROMETHEUS_"))}
    env.update({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url, "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
        "ADSERVER_DATA_DIR": str(tmp_path / "var"), "ADSERVER_BIND": f"127.0.0.1:{port}",
        "ADSERVER_WORKERS": "2", "ADSERVER_THREADS": "4", "TMPDIR": str(tmp_path), "ADSERVER_STREAM_KEY": stream_key,
        "ADSERVER_PIXEL_LINGER_MS": "100", "ADSERVER_EMBEDDED_WRITER": "0",
    })
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                                 "adserver:create_app()"], cwd=os.getcwd(), env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base, proc), 120, "gunicorn answering")
        uid, cookie = VisitorIds((SECRET,)).new()
        headers = {"Cookie": f"uid={cookie}", "User-Agent": CHROME}
        for n in range(200):
            assert _get(f"{base}/px.gif?a=demo&e=view_item&sku=D10{10 + n % 50}", headers).startswith(b"GIF")
    finally:
        proc.send_signal(stop)
        proc.wait(timeout=60)
    assert events_waiting(redis_client, [stream_key]) == 200, log.read_text()[-3000:]
    assert not (tmp_path / "var" / "spool").exists() or not any((tmp_path / "var" / "spool").glob("*.jsonl"))


def _up(base: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, "gunicorn exited"
    try:
        _get(f"{base}/healthz", {})
        return True
    except OSError:
        return False


def test_gunicorns_worker_exit_hook_sends_what_is_queued(redis_client, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    conf = runpy.run_path(str(Path(__file__).resolve().parents[3] / "deploy" / "gunicorn.conf.py"))
    Config().set("worker_exit", conf["worker_exit"])  # gunicorn checks the hook's arity
    stream = EventStream(redis_client, "t:hook")
    spilled: list[dict] = []
    linger = Linger(lambda: stream, CircuitBreaker(), spilled.extend, 60)  # would wait a minute
    row = {"ts": time.time(), "advertiser": "demo", "event": "view_home", "uid": "u1"}
    linger.offer({"kind": "ev", "row": row}, stream, stream.prepare(row, uid="u1"))
    assert redis_client.xlen("t:hook") == 0
    conf["worker_exit"](None, None)
    assert redis_client.xlen("t:hook") == 1 and linger.queued == 0 and spilled == []
    linger.close()
