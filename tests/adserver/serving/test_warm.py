"""A worker's caches warmed before its first request (``adserver.serving.warm``, called by gunicorn's
``post_worker_init`` in ``deploy/gunicorn.conf.py``): its first ads then read nothing from ClickHouse."""

from __future__ import annotations

import gc
import runpy
import threading
from pathlib import Path
from types import SimpleNamespace

from adserver.serving.warm import THREAD_NAME, warm_caches
from tracker.errors import StoreUnavailable

CONF = Path(__file__).resolve().parents[3] / "deploy" / "gunicorn.conf.py"
ADS = ["/ad?p=demo-feed&size=300x250", "/ad.json?p=demo-feed&size=728x90", "/ad?p=demo-outdoor&size=300x250"]


def _clickhouse_reads(monkeypatch, app) -> list[str]:
    """The statements the app's ClickHouse client runs from now on."""
    ch = app.extensions["adserver"].stores.clickhouse()
    reads: list[str] = []
    execute = ch.execute

    def counted(sql, params=None):
        reads.append(sql)
        return execute(sql, params)

    monkeypatch.setattr(ch, "execute", counted)
    return reads


def _serve_first_ads(app) -> None:
    client = app.test_client()
    for path in ADS:
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        assert "/c/" in response.get_data(as_text=True)  # products with click links, not an empty unit


def test_a_warmed_worker_serves_its_first_ads_without_reading_clickhouse(app, demo_loaded, monkeypatch):
    advertisers = app.extensions["adserver"].registry.advertiser_ids()

    assert warm_caches(app) == len(advertisers) >= 2
    reads = _clickhouse_reads(monkeypatch, app)
    _serve_first_ads(app)

    assert reads == []


def test_without_warming_the_first_ads_read_the_stores_in_their_requests(app, demo_loaded, monkeypatch):
    reads = _clickhouse_reads(monkeypatch, app)
    _serve_first_ads(app)

    assert reads  # what warming moves out of the requests


def test_the_gunicorn_worker_warms_the_product_before_it_serves(app, demo_loaded, monkeypatch):
    monkeypatch.setattr(gc, "freeze", lambda: None)  # the hook's other half; not for the test process
    hooks = runpy.run_path(str(CONF))

    hooks["post_worker_init"](SimpleNamespace(wsgi=app))
    warming = [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]
    assert len(warming) == 1  # the worker's start does not wait for the stores
    warming[0].join(timeout=30)
    assert not warming[0].is_alive()
    reads = _clickhouse_reads(monkeypatch, app)
    _serve_first_ads(app)

    assert reads == []
    hooks["post_worker_init"](SimpleNamespace(wsgi=lambda environ, start_response: []))  # another app: left alone


def test_warming_stops_at_its_time_budget_and_when_a_store_is_down(app, demo_loaded, monkeypatch, caplog):
    assert warm_caches(app, seconds=0) == 0

    def down():
        raise StoreUnavailable("ClickHouse did not answer")

    monkeypatch.setattr(app.extensions["adserver"].registry, "advertiser_ids", down)
    assert warm_caches(app) == 0
    assert "caches not warmed beyond 0 advertisers (ClickHouse did not answer)" in caplog.text
