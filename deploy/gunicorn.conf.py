"""gunicorn settings for the web processes (``gunicorn -c deploy/gunicorn.conf.py 'adserver:create_app()'``).

gthread workers: browsers open several connections at once and a sync worker would stall them.
Clients are created lazily and forgotten in a forked child, so no socket is shared between workers.

Sizing: one worker per core (the GIL lets a process use one), and 8 threads each, because an ad
waits on Redis two or three times (profile script, a CPM campaign's budget script, event script) and
a click three times: with fewer threads a worker idles during those round trips. On the 2-core benchmark machine
(``make bench``, shared with Redis, ClickHouse and the load generator) 2x2, 2x8, 3x4 and 4x2
(workers x threads) were within the run-to-run noise for the pixel and the ad; more processes
only add memory (each holds the catalog, models and crawler patterns). Set ``ADSERVER_WORKERS``
to the cores the web tier really gets when Redis or ClickHouse share the host.
"""

import os
import sys
from pathlib import Path

# gunicorn puts the working directory on the import path, but a --chdir given on its command line
# only after reading this file: the project's root is added for the settings module.
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracker.settings import (  # noqa: E402 - needs the path above
    PROMETHEUS_MULTIPROC_ENV as MULTIPROC_ENV,
)
from tracker.settings import (
    SettingsError,
    load_settings,
    prometheus_multiproc_dir,
)

# The same checks and messages as the app's own start (README.md lists the variables). SystemExit,
# unlike other errors, is not wrapped by gunicorn in a traceback: the operator sees just the message.
try:
    _settings = load_settings()
except SettingsError as exc:
    raise SystemExit(f"invalid settings: {exc}") from None

bind = list(_settings.bind)
workers = _settings.workers
worker_class = "gthread"
threads = _settings.threads
keepalive = 5
timeout = 30
graceful_timeout = 20
# Workers are not recycled (gunicorn's max_requests stays 0): the soaks (docs/soak.md) show their
# memory flat over 10-minute runs, and each recycle reloads catalogs and models and can drop a
# request sent on a keep-alive connection at the moment the old worker closes it (one in ~13
# restarts in the soaks). Set ADSERVER_MAX_REQUESTS to recycle anyway, e.g. after a suspected leak.
max_requests = _settings.max_requests
max_requests_jitter = max_requests // 10
# Pixel hits carry the page URL and referrer (each up to 2048 characters, URL-encoded): allow a
# request line of 8 KB instead of gunicorn's 4 KB, and let the app enforce its own field limits.
limit_request_line = 8190
limit_request_field_size = 8190
forwarded_allow_ips = _settings.forwarded_allow_ips_text
accesslog = _settings.access_log
errorlog = "-"


# How long a thread holding the GIL runs before a waiting one may take over (Python's default 5 ms).
# An ad waits for Redis twice; when the reply arrives, its thread waits for the GIL while another
# thread renders, up to the whole interval. 1 ms shortens that tail: ad p99 at half the maximum
# rate, alternating runs on the same servers: 8.2, 9.1, 8.5, 10.0, 28.7 ms against 15.0, 16.8,
# 7.7, 8.0, 93.7 ms with 5 ms (medians 9.1 against 15.0).
SWITCH_INTERVAL = 0.001


# Latency histograms (adserver/metrics.py): each worker writes its own to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape of /metrics, answered by any worker, merges them all. The
# operator may set it to a folder of its own, empty at each start (e.g. systemd's RuntimeDirectory=);
# unset, the arbiter makes a fresh one under the temporary directory and removes it when it exits.
_made_multiproc_dir: list[str] = []


def on_starting(server):
    """Runs in the arbiter before any worker loads the app: the variable must be set before that."""
    import tempfile

    folder = prometheus_multiproc_dir()
    if not folder:
        if server.cfg.preload_app:  # the app, and prometheus_client with it, is loaded already
            server.log.warning("%s is not set and the app is preloaded: each worker's /metrics shows "
                               "only its own requests; set it in the environment", MULTIPROC_ENV)
            return
        folder = tempfile.mkdtemp(prefix="adserver-prometheus-")
        _made_multiproc_dir.append(folder)
        os.environ[MULTIPROC_ENV] = folder
    else:
        os.makedirs(folder, exist_ok=True)
        if any(name.endswith(".db") for name in os.listdir(folder)):
            server.log.warning("%s (%s) holds files of an earlier run: their counts are added to this one's",
                               MULTIPROC_ENV, folder)
    # Imported here, not first in child_exit: gunicorn calls that from its SIGCHLD handler, where a
    # second worker exiting during the first import re-enters it and fails on a half-imported module.
    from prometheus_client import multiprocess  # noqa: F401


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """A worker exited: prometheus_client forgets its live gauges (its histograms keep counting)."""
    from prometheus_client import multiprocess

    if prometheus_multiproc_dir():
        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ARG001 - gunicorn's hook signature
    """Remove the folder made by ``on_starting``, retrying while a worker killed a moment ago still writes."""
    import shutil
    import time

    for folder in _made_multiproc_dir:
        for _ in range(20):
            shutil.rmtree(folder, ignore_errors=True)
            if not os.path.exists(folder):
                break
            time.sleep(0.1)


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """A worker is stopping: the pixel hits it answered but still holds (``tracker.linger``) go to Redis
    now, or to the spool if Redis does not take them. The interpreter's exit hook would flush them too;
    this one runs first, while the worker's clients are certainly still open."""
    from tracker.linger import flush_all

    flush_all()


def post_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    import sys

    sys.setswitchinterval(SWITCH_INTERVAL)


def post_worker_init(worker):
    """Start warming the worker's caches (``adserver.serving.warm``), and exclude what it loaded from Python's
    cyclic garbage collector.

    The app, its modules and the crawler patterns are ~50,000 tracked objects that live as long as
    the worker. A full collection walks them all: ~15 ms with every thread of the worker stopped,
    which lands on whatever requests are in flight (a p99 of tens of milliseconds for the ad at
    half its maximum rate). Frozen after start-up, a full collection walks only what requests
    left behind (~1 ms). Freezing cannot leak: frozen objects are still freed by reference counting.
    """
    import gc

    app = getattr(worker, "wsgi", None)
    if getattr(app, "extensions", {}).get("adserver") is not None:  # the product, not another app on this config
        from adserver.serving.warm import warm_in_background

        warm_in_background(app)
    gc.collect()
    gc.freeze()
