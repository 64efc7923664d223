"""ClickHouse stopped under traffic, for real: pixels keep answering, events wait in the stream,
the writer retries with back-off and drains the backlog when the server returns."""

from __future__ import annotations

import subprocess
import threading

import pytest

from scripts import testservers
from tests.conftest import SECRET
from tests.waiting import wait_for
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.settings import load_settings, parse_clickhouse_url
from tracker.writer import BatchWriter

pytestmark = pytest.mark.slow


@pytest.fixture
def own_clickhouse(tmp_path):
    _redis_bin, ch_bin = testservers.ensure_binaries()
    (tmp_path / "ch").mkdir()
    server = testservers.start_clickhouse(ch_bin, tmp_path / "ch", detached=False)
    yield server
    testservers.stop_processes(tmp_path / "ch", [server.proc], grace=2.0, sweep=True)


def test_clickhouse_down_under_traffic(tmp_path, own_clickhouse, redis_url, redis_client):
    from adserver import create_app
    from adserver.catalog.registry import save_advertiser

    url = own_clickhouse.url
    settings = load_settings({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url, "ADSERVER_CLICKHOUSE_URL": url,
        "ADSERVER_DATA_DIR": str(tmp_path / "var"), "ADSERVER_STREAM_KEY": "test:chdown",
    })
    ch = DriverClickHouse(parse_clickhouse_url(url), connect_timeout=0.5, timeout=2, retries=0)
    schema.migrate(ch)
    save_advertiser(ch, "demo")
    app = create_app(settings)
    client = app.test_client()
    writer = BatchWriter(redis_client, ch, settings.stream_key, "chdown", batch_seconds=0.1, max_backoff=1.0)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        for n in range(10):
            assert client.get(f"/px.gif?a=demo&e=view_item&sku=D10{10 + n}").status_code == 200
        count = lambda: ch.execute("SELECT count() FROM events")[0][0]  # noqa: E731
        wait_for(lambda: count() == 10, 60, "the first 10 events stored")

        own_clickhouse.proc.terminate()
        own_clickhouse.proc.wait(timeout=30)
        for n in range(30):
            response = client.get(f"/px.gif?a=demo&e=view_item&sku=D10{20 + n % 10}")
            assert response.status_code == 200 and response.mimetype == "image/gif"
        wait_for(lambda: writer.failures >= 2, 60, "the writer retrying")  # and acknowledging nothing
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json()["clickhouse"].startswith("down")
        entries = redis_client.xrange(settings.stream_key)  # the 30 events, packed by the web process's batches
        assert sum(int(fields.get(b"n", 1)) for _, fields in entries) == 30
        assert health.get_json()["stream"]["length"] == len(entries)
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f"adserver_stream_length {len(entries)}" in metrics and "adserver_writer_lag_seconds" in metrics

        restarted = subprocess.Popen(own_clickhouse.cmd, cwd=own_clickhouse.cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        own_clickhouse.proc = restarted
        wait_for(lambda: _safe(count) == 40, 60, "all 40 events stored")
        wait_for(lambda: redis_client.xlen(settings.stream_key) == 0, 60, "the stream emptied")
        assert client.get("/healthz").get_json()["stream"]["length"] == 0
    finally:
        writer.stop()
        thread.join(timeout=10)
        app.extensions["adserver"].close()


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - the server is still starting
        return None
