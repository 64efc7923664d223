"""Prometheus metrics of the web processes, answered by ``GET /metrics`` (``adserver.health``).

Two kinds of values:

- **Cluster-wide values** (:class:`ClusterCollector`): the event counters every web process of every
  instance adds to Redis (a hash per stream partition, beside its stream, plus
  ``tracker.stream.METRICS_KEY``; ``EventStream.counters`` sums them) and the state of the event
  stream (``EventStream.backlog``, summed over the partitions), read from Redis when Prometheus
  scrapes. Every instance answers the same numbers.
- **Request latency** (``adserver_request_duration_seconds``): a histogram per endpoint and status
  class, kept by each process for the requests it answered.

Where the histogram lives depends on how the app runs:

- ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn, see ``deploy/gunicorn.conf.py``): each worker writes
  its histogram to files in that folder and a scrape, answered by any one worker, merges the files of
  all of them. The folder must be empty when gunicorn starts (one per boot); prometheus_client reads
  the variable when it is first imported, so it must be set before the app is loaded.
- Unset (embedded mode, tests, ``flask run``): each app has its own ``CollectorRegistry``, so apps
  built in one process never share or register a metric twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from tracker.settings import PROMETHEUS_MULTIPROC_ENV, prometheus_multiproc_dir
from tracker.writer import GROUP

# From a pixel answered in a millisecond to an ad or report near the 2-second mark; +Inf is added.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
DURATION = "adserver_request_duration_seconds"
PIXEL_ENDPOINT = "tracking.pixel"  # the Flask view's endpoint, so both layers answer under one name
UNMATCHED = "unmatched"  # no route matched (404, 405): one series, whatever path or method was sent
_START = "adserver.request_start"
_STARTED = time.time()

GAUGES = {
    "adserver_process_uptime_seconds": "Seconds since this process started.",
    "adserver_redis_up": "1 if Redis answered this scrape.",
    "adserver_spool_records": "Events kept in the local spool while Redis was unavailable.",
}
COUNTERS = {
    "pixel_accepted": "Pixel hits accepted into the event stream.",
    "pixel_rejected": "Pixel hits rejected and stored in bad_events.",
    "ads_served": "Ad decisions that showed at least one product.",
    "clicks": "Valid clicks redirected to a product page.",
    "pixel_invalid": "Pixel hits from bots, prefetches or previewers (stored as invalid, not profiled).",
    "ads_invalid": "Ad units served to bots, prefetches or previewers (not counted, not charged).",
    "clicks_invalid": "Clicks from bots or click floods (redirected, not counted, not charged).",
    "viewable": "Viewable impressions (50 % of the unit in view for 1 s) recorded.",
    "hides": "\"Not interested\" answers recorded (first answer per product of an ad).",
    "hides_invalid": "\"Not interested\" answers from bots or prefetches (recorded as invalid, change nothing).",
}
SPOOL_DROPPED = ("adserver_spool_dropped", "Events dropped because the local spool was full (Redis away too long); "
                 "counted by this instance's processes, kept across restarts.")
BACKLOG = {  # metric name: (key of EventStream.backlog, help)
    "adserver_stream_length": ("length", "Entries in the event stream (every partition) not yet deleted by the writers."),
    "adserver_stream_pending": ("pending", "Entries read by the writer but not yet acknowledged."),
    "adserver_writer_lag_seconds": ("oldest_age_seconds", "Age of the oldest event not yet written to ClickHouse."),
    "adserver_stream_lag": ("lag", "Entries in the stream not yet read by the writer group."),
}


class ClusterCollector(Collector):
    """Values read at scrape time: this process's uptime, this instance's spool, counters and stream from Redis.

    The counters (``adserver_*_total``, but ``adserver_spool_dropped_total``: this instance's, like its
    spool, and answered with Redis down too) and the stream gauges (``adserver_stream_*``,
    ``adserver_writer_lag_seconds``) are cluster-wide: they are read from the Redis that every web
    process and instance writes to, so every instance reports the same number. Dashboards must not
    sum them across instances or workers; take ``max`` (or one instance). When Redis does not answer,
    ``adserver_redis_up`` is 0 and the values read from it are left out rather than reported as 0
    (a counter falling to 0 and back would look like a reset followed by a burst).
    """

    def __init__(self, services) -> None:
        self.services = services

    def describe(self) -> Iterator[Metric]:
        """Every name this collector can answer, so that a registry refuses a second one."""
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text)
        yield CounterMetricFamily(*SPOOL_DROPPED)
        for key, text in COUNTERS.items():
            yield CounterMetricFamily(f"adserver_{key}_total", text)
        for name, (_key, text) in BACKLOG.items():
            yield GaugeMetricFamily(name, text)

    def collect(self) -> Iterator[Metric]:
        svc = self.services
        counters: dict[str, int] | None = None
        backlog: dict | None = None
        try:
            if svc.linger is not None:  # this process's lingering hits count too: a scrape reads its own writes
                svc.linger.flush()
            counters = svc.stream.counters()
            backlog = svc.stream.backlog(GROUP)
        except Exception:  # noqa: BLE001 - Redis down or hanging: say so, keep answering
            pass
        redis_up = counters is not None and backlog is not None
        process = {
            "adserver_process_uptime_seconds": round(time.time() - _STARTED, 3),
            "adserver_redis_up": 1 if redis_up else 0,
            "adserver_spool_records": svc.spool.pending_records(),
        }
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text, value=process[name])
        yield CounterMetricFamily(*SPOOL_DROPPED, value=svc.spool.dropped())  # this instance's, Redis or not
        if counters is not None:
            for key, text in COUNTERS.items():
                yield CounterMetricFamily(f"adserver_{key}_total", text, value=counters.get(key, 0))
        if backlog is not None:
            for name, (key, text) in BACKLOG.items():
                if backlog.get(key) is not None:  # the group's lag is unknown before Redis 7
                    yield GaugeMetricFamily(name, text, value=backlog[key])


_process_duration: Histogram | None = None
_process_lock = threading.Lock()


def _duration(registry: CollectorRegistry | None) -> Histogram:
    return Histogram(DURATION, "Time to answer a request, by endpoint and status class.",
                     ("endpoint", "status"), buckets=BUCKETS, registry=registry)


def _multiprocess_duration(folder: str) -> Histogram:
    """The process's histogram in multiprocess mode: its values are this process's files, whichever app writes."""
    global _process_duration
    if values.ValueClass is values.MutexValue:
        raise RuntimeError(f"{PROMETHEUS_MULTIPROC_ENV} was set after prometheus_client was imported: "
                           "set it before the process starts")
    Path(folder).mkdir(parents=True, exist_ok=True)
    with _process_lock:
        if _process_duration is None:
            _process_duration = _duration(None)
        return _process_duration


class Metrics:
    """An app's metrics: the request histogram and the registry a scrape reads."""

    def __init__(self, services, multiproc_dir: str | None = None) -> None:
        self.cluster = ClusterCollector(services)
        self.multiproc_dir = multiproc_dir
        self._registry: CollectorRegistry | None = None
        if multiproc_dir:
            self.duration = _multiprocess_duration(multiproc_dir)
        else:
            self._registry = CollectorRegistry()
            self.duration = _duration(self._registry)
            self._registry.register(self.cluster)
        self._timers: dict[tuple[str, str], Callable[[float], None]] = {}

    def timer(self, endpoint: str, status: str) -> Callable[[float], None]:
        """``observe(seconds)`` of one series: resolved once, so the per-request cost is the observation."""
        observe = self._timers.get((endpoint, status))
        if observe is None:
            observe = self._timers[(endpoint, status)] = self.duration.labels(endpoint, status).observe
        return observe

    def registry(self) -> CollectorRegistry:
        """What a scrape reads: in multiprocess mode every worker's files, merged now."""
        if self._registry is not None:
            return self._registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, self.multiproc_dir)
        registry.register(self.cluster)
        return registry

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape's body and content type, in the format the ``Accept`` header asks for."""
        try:
            encoder, content_type = choose_encoder(accept or "")
        except (TypeError, ValueError):  # a malformed version: the classic text format
            encoder, content_type = generate_latest, CONTENT_TYPE_PLAIN_0_0_4
        return encoder(self.registry()), content_type


def status_class(code: int) -> str:
    return f"{code // 100}xx"


def init_app(app: Flask, services) -> Metrics:
    """Create the app's metrics and time every request Flask answers (the pixel times itself).

    Call it before other ``before_request`` hooks are added: app-level hooks run in the order they
    were added, and one that answers early (a redirect to the login page) stops the later ones.
    """
    metrics = app.extensions["adserver_metrics"] = Metrics(services, prometheus_multiproc_dir())

    @app.before_request
    def start_timer() -> None:
        request.environ[_START] = time.perf_counter()

    @app.after_request
    def observe_duration(response: Response) -> Response:
        start = request.environ.get(_START)
        if start is not None:
            rule = request.url_rule
            endpoint = rule.endpoint if rule is not None else UNMATCHED
            metrics.timer(endpoint, status_class(response.status_code))(time.perf_counter() - start)
        return response

    return metrics


def app_metrics(app: Flask) -> Metrics:
    return app.extensions["adserver_metrics"]
