"""A web worker's per-advertiser caches filled before its first request.

Why: an ad reads its advertiser's catalog, image index, models, popular products and "not interested"
counts from the stores on first use, inside the request that needs them. A fresh worker (a deploy, a
restart, a recycled worker) gets its first ads on all its threads at once, so those loads happen together,
in requests, and hold them (``docs/benchmarks.md``, sixth round). Loaded when the worker starts, that wait
is out of the requests. It runs in a thread of its own, so a slow store never holds the worker's start
(gunicorn kills a worker that takes longer than its timeout to start, and ClickHouse's timeout is as long);
a request that needs a catalog or image index being loaded waits for that load instead of making its own.
The time is bounded: with many advertisers, those not reached load on first use as before; a store that does not answer
stops the warm-up, and the worker serves as it would have without it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from flask import Flask

from adserver.serving.images import image_services

log = logging.getLogger(__name__)

WARM_SECONDS = 10.0
THREAD_NAME = "warm-caches"


def warm_caches(app: Flask, seconds: float = WARM_SECONDS) -> int:
    """Fill the caches an ad reads, advertiser by advertiser, for at most ``seconds``; how many were warmed."""
    svc = app.extensions["adserver"]
    deadline = time.monotonic() + seconds
    warmed = 0
    try:
        images = image_services(app)
        svc.ctr.get()
        for advertiser in svc.registry.advertiser_ids():
            if time.monotonic() >= deadline:
                break
            svc.catalog.get(advertiser)
            images.index.get(advertiser)
            svc.models.get(advertiser)
            svc.popular.get(advertiser)
            svc.hide_counts.get(advertiser)
            warmed += 1
    except Exception as exc:  # noqa: BLE001 - a worker that cannot warm up still serves
        log.warning("caches not warmed beyond %d advertisers (%s): the first ads load the rest", warmed, exc)
    return warmed


def warm_in_background(app: Flask, seconds: float = WARM_SECONDS) -> threading.Thread:
    """``warm_caches`` in a thread of its own; what it loaded is then frozen out of the cyclic garbage
    collector like the rest of the worker's start-up (``deploy/gunicorn.conf.py``)."""

    def run() -> None:
        warm_caches(app, seconds)
        gc.freeze()

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread
