"""gunicorn settings for the web processes (``gunicorn -c deploy/gunicorn.conf.py 'adserver:create_app()'``).

gthread workers: browsers open several connections at once and a sync worker would stall them.
Clients are created lazily and dropped after the fork, so no socket is shared between workers.

Sizing: one worker per core (the GIL lets a process use one), and 8 threads each, because an ad
waits on Redis three times (profile script, budget script, event pipeline) and a click three times
too: with fewer threads a worker idles during those round trips. On the 2-core benchmark machine
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
max_requests = 200000
max_requests_jitter = 20000
# Pixel hits carry the page URL and referrer (each up to 2048 characters, URL-encoded): allow a
# request line of 8 KB instead of gunicorn's 4 KB, and let the app enforce its own field limits.
limit_request_line = 8190
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("ADSERVER_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("ADSERVER_ACCESS_LOG") or None
errorlog = "-"


def post_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    from tracker.stores import reset_after_fork

    reset_after_fork()
