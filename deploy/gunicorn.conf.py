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

import multiprocessing
import os

bind = os.environ.get("ADSERVER_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("ADSERVER_WORKERS", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("ADSERVER_THREADS", "8"))
keepalive = 5
timeout = 30
graceful_timeout = 20
# Workers are not recycled (gunicorn's max_requests stays 0): the soaks (docs/soak.md) show their
# memory flat over 10-minute runs, and each recycle reloads catalogs and models and can drop a
# request sent on a keep-alive connection at the moment the old worker closes it (one in ~13
# restarts in the soaks). Set ADSERVER_MAX_REQUESTS to recycle anyway, e.g. after a suspected leak.
max_requests = int(os.environ.get("ADSERVER_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# Pixel hits carry the page URL and referrer (each up to 2048 characters, URL-encoded): allow a
# request line of 8 KB instead of gunicorn's 4 KB, and let the app enforce its own field limits.
limit_request_line = 8190
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("ADSERVER_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("ADSERVER_ACCESS_LOG") or None
errorlog = "-"


# How long a thread holding the GIL runs before a waiting one may take over (Python's default 5 ms).
# An ad waits for Redis twice; when the reply arrives, its thread waits for the GIL while another
# thread renders, up to the whole interval. 1 ms shortens that tail: ad p99 at half the maximum
# rate, alternating runs on the same servers: 8.2, 9.1, 8.5, 10.0, 28.7 ms against 15.0, 16.8,
# 7.7, 8.0, 93.7 ms with 5 ms (medians 9.1 against 15.0).
SWITCH_INTERVAL = 0.001


def post_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    import sys

    sys.setswitchinterval(SWITCH_INTERVAL)


def post_worker_init(worker):  # noqa: ARG001 - gunicorn's hook signature
    """Exclude what the worker loaded at start-up from Python's cyclic garbage collector.

    The app, its modules and the crawler patterns are ~50,000 tracked objects that live as long as
    the worker. A full collection walks them all: ~15 ms with every thread of the worker stopped,
    which lands on whatever requests are in flight (a p99 of tens of milliseconds for the ad at
    half its maximum rate). Frozen after start-up, a full collection walks only what requests
    left behind (~1 ms). Freezing cannot leak: frozen objects are still freed by reference counting.
    """
    import gc

    gc.collect()
    gc.freeze()
