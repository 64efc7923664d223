"""``GET /metrics`` through prometheus_client: names and types, counters that move with traffic,
latency histograms per endpoint, hostile requests, one registry per app, Redis down."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET
from tracker.settings import load_settings

# Every name /metrics has answered so far, with its type: dashboards and alerts depend on them.
NAMES = {
    "adserver_process_uptime_seconds": "gauge",
    "adserver_redis_up": "gauge",
    "adserver_spool_records": "gauge",
    "adserver_spool_dropped_total": "counter",
    "adserver_pixel_accepted_total": "counter",
    "adserver_pixel_rejected_total": "counter",
    "adserver_ads_served_total": "counter",
    "adserver_clicks_total": "counter",
    "adserver_pixel_invalid_total": "counter",
    "adserver_ads_invalid_total": "counter",
    "adserver_clicks_invalid_total": "counter",
    "adserver_viewable_total": "counter",
    "adserver_stream_length": "gauge",
    "adserver_stream_pending": "gauge",
    "adserver_writer_lag_seconds": "gauge",
}
DURATION = "adserver_request_duration_seconds"
BOT = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}


def scrape(client, **kwargs) -> dict:
    """``{sample name: {labels as a sorted tuple: value}}`` and the family types, from one scrape."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    samples: dict = {}
    types: dict = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return {"samples": samples, "types": types, "text": text}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped["samples"][name][tuple(sorted(labels.items()))]


def requests_of(scraped: dict, endpoint: str, status: str = "2xx") -> float:
    return scraped["samples"].get(f"{DURATION}_count", {}).get((("endpoint", endpoint), ("status", status)), 0)


def test_every_name_keeps_its_type(client):
    scraped = scrape(client)
    assert scraped["text"].startswith("# HELP ")
    for name, kind in NAMES.items():
        family = name[: -len("_total")] if kind == "counter" else name
        assert scraped["types"][family] == kind, name
        assert name in scraped["samples"], name
        assert f"# TYPE {name} {kind}\n" in scraped["text"]
    assert value(scraped, "adserver_redis_up") == 1
    assert value(scraped, "adserver_process_uptime_seconds") > 0
    assert scraped["types"][DURATION] == "histogram"


def test_counters_move_with_pixel_hits_and_ads(client, demo_loaded):
    before = scrape(client)
    for sku in ("D1001", "D1002", "D1003"):
        assert client.get(f"/px.gif?a=demo&e=view_item&sku={sku}").status_code == 200
    client.get("/px.gif?a=demo&e=not_an_event")
    client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers=BOT)
    ad = client.get("/ad.json?p=demo-feed&size=300x250")
    assert ad.status_code == 200 and ad.get_json()["products"]
    after = scrape(client)
    moved = {name: value(after, name) - value(before, name) for name in NAMES if name.endswith("_total")}
    assert moved == {
        "adserver_pixel_accepted_total": 3, "adserver_pixel_rejected_total": 1, "adserver_pixel_invalid_total": 1,
        "adserver_ads_served_total": 1, "adserver_clicks_total": 0, "adserver_ads_invalid_total": 0,
        "adserver_clicks_invalid_total": 0, "adserver_viewable_total": 0, "adserver_spool_dropped_total": 0,
    }
    assert value(after, "adserver_stream_length") == value(before, "adserver_stream_length") + 6


def test_latency_histogram_counts_each_endpoint(client, demo_loaded):
    before = scrape(client)
    for _ in range(4):
        client.get("/px.gif?a=demo&e=view_home")
    client.head("/px.gif?a=demo&e=view_home")
    client.get("/ad?p=demo-feed&size=300x250")
    client.get("/ad.json?p=demo-feed&size=300x250")
    client.get("/ad.json?p=demo-feed&size=300x250")
    client.get("/no/such/page")
    client.get("/c/forged-token")
    after = scrape(client)
    grown = {
        ("tracking.pixel", "2xx"): 5, ("ads.ad_html", "2xx"): 1, ("ads.ad_json", "2xx"): 2,
        ("unmatched", "4xx"): 1, ("ads.click", "4xx"): 1,
        ("health.metrics", "2xx"): 1,  # the first scrape, observed once it was answered
    }
    for (endpoint, status), count in grown.items():
        assert requests_of(after, endpoint, status) - requests_of(before, endpoint, status) == count, endpoint
    labels = (("endpoint", "tracking.pixel"), ("status", "2xx"))
    buckets = {dict(k)["le"]: v for k, v in after["samples"][f"{DURATION}_bucket"].items()
               if (k[0], k[2]) == labels}
    assert list(buckets) == ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
                             "2.0", "+Inf"]
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    assert buckets["+Inf"] == requests_of(after, "tracking.pixel")
    assert after["samples"][f"{DURATION}_sum"][labels] > 0


def test_the_flask_pixel_view_counts_under_the_same_endpoint(app, client, demo_loaded):
    from werkzeug.test import Client

    before = requests_of(scrape(client), "tracking.pixel")
    Client(app.wsgi_app.app).get("/px.gif?a=demo&e=view_home")  # behind the WSGI layer: Flask's view
    assert requests_of(scrape(client), "tracking.pixel") == before + 1


def test_hostile_requests_get_a_sane_answer(client):
    response = client.get("/metrics?x=<script>alert(1)</script>&name[]=%00")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "<script>" not in response.get_data(as_text=True)
    assert client.open("/metrics", method="BREW").status_code == 405
    assert client.open("/<script>", method="PROPFIND").status_code in (404, 405)
    assert client.open("/px.gif", method="FOO").status_code == 405
    for accept in ("application/openmetrics-text; version=abc", "text/plain; version=x.y",
                   "*/*;q=<script>", "\x00" * 100):
        scraped = scrape(client, headers={"Accept": accept})
        assert "adserver_redis_up" in scraped["samples"]
    scraped = scrape(client)
    endpoints = {dict(k)["endpoint"] for k in scraped["samples"][f"{DURATION}_count"]}
    # Neither the paths nor the methods sent become label values: one series for everything unrouted.
    assert endpoints == {"health.metrics", "unmatched", "tracking.pixel"}  # the pixel's series exists from the start
    assert requests_of(scraped, "unmatched", "4xx") == 3
    assert requests_of(scraped, "health.metrics", "4xx") == 0  # a 405 matched no route either


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = response.get_data(as_text=True)
    assert text.endswith("# EOF\n")
    families = {f.name: f.type for f in openmetrics_families(text)}
    assert families["adserver_pixel_accepted"] == "counter" and families["adserver_stream_length"] == "gauge"


def test_each_app_has_its_own_registry(app, client, settings, demo_loaded):
    from adserver import create_app

    other = create_app(settings)  # a second app in this process: no duplicate registration
    try:
        other_client = other.test_client()
        for _ in range(3):
            client.get("/px.gif?a=demo&e=view_home")
        other_client.get("/px.gif?a=demo&e=view_home")
        assert requests_of(scrape(client), "tracking.pixel") == 3
        assert requests_of(scrape(other_client), "tracking.pixel") == 1
        # The cluster-wide counters are the same, whichever app answers.
        assert value(scrape(client), "adserver_pixel_accepted_total") == 4
        assert value(scrape(other_client), "adserver_pixel_accepted_total") == 4
    finally:
        other.extensions["adserver"].close()


def test_a_collector_is_registered_once(app):
    from prometheus_client.registry import DuplicateTimeseries

    metrics = app.extensions["adserver_metrics"]
    with pytest.raises(DuplicateTimeseries):
        metrics.registry().register(metrics.cluster)


def test_metrics_answer_with_redis_down(tmp_path, clickhouse_url):
    from adserver import create_app

    settings = load_settings({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": "redis://127.0.0.1:1/0",
        "ADSERVER_CLICKHOUSE_URL": clickhouse_url, "ADSERVER_DATA_DIR": str(tmp_path / "var"),
        "ADSERVER_REDIS_TIMEOUT": "0.2", "ADSERVER_PIXEL_LINGER_MS": "0",  # spooled before the answer
    })
    app = create_app(settings)
    try:
        client = app.test_client()
        client.get("/px.gif?a=demo&e=view_home")  # spooled, still timed
        scraped = scrape(client)
        assert value(scraped, "adserver_redis_up") == 0
        assert value(scraped, "adserver_spool_records") == 1
        assert requests_of(scraped, "tracking.pixel") == 1
        # Unknown values are left out, not reported as 0 (a counter at 0 would read as a reset).
        missing = {name for name in NAMES if name not in scraped["samples"]}
        assert missing == {name for name in NAMES if name.endswith("_total") and "spool" not in name} | {
            "adserver_stream_length", "adserver_stream_pending", "adserver_writer_lag_seconds"}
    finally:
        app.extensions["adserver"].spool.stop()
        app.extensions["adserver"].close()
