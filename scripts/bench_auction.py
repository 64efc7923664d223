#!/usr/bin/env python3
"""Ad decision latency with the auction on, in process, against real Redis and ClickHouse.

Loads the demo (two stores with campaigns, three placements), adds ``--campaigns`` more competing
advertisers with a CPC campaign and a small catalog each, gives ``--visitors`` visitors a profile
(views at up to five stores), then asks for ``--requests`` ads as random visitors on random
placements and sizes, timing each ``/ad.json`` request inside the app (no HTTP, no load generator)
and, separately, the auction itself (rules, CTR for every candidate, products, budget reservation).
A bare Flask endpoint answering a GIF is timed the same way in the same run, as the baseline.

Needs ``ADSERVER_REDIS_URL`` and ``ADSERVER_CLICKHOUSE_URL`` (``source`` the env.sh written by
``python -m scripts.testservers start``, using the ``ADSERVER_TEST_*`` values) or runs embedded.
Run from the checkout: ``python -m scripts.bench_auction [--help]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time

SIZES = ("300x250", "728x90", "160x600", "320x50", "320x100", "responsive")
PLACEMENTS = ("demo-feed", "demo-sidebar", "demo-banner")


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 3), "p99_ms": round(pick(0.99), 3),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 3), "n": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_auction", description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=20, help="extra competing advertisers (one CPC campaign each)")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()

    for name in ("REDIS", "CLICKHOUSE"):  # the test servers' variables, if that is what is set
        test_value = os.environ.get(f"ADSERVER_TEST_{name}_URL")
        if test_value and not os.environ.get(f"ADSERVER_{name}_URL"):
            os.environ[f"ADSERVER_{name}_URL"] = test_value
    os.environ.setdefault("ADSERVER_SECRET_KEY", secrets.token_urlsafe(32))
    os.environ.setdefault("ADSERVER_DATA_DIR", tempfile.mkdtemp(prefix="bench-auction-"))
    os.environ["ADSERVER_EMBEDDED_WRITER"] = "0"

    from flask import Flask, Response

    from adserver import create_app
    from adserver.catalog.upload import import_products
    from adserver.cli import run as cli
    from adserver.serving import auction
    from tracker.settings import load_settings
    from tracker.stores import Stores

    settings = load_settings()
    stores = Stores(settings)
    stores.redis("web").flushdb()
    ch = stores.clickhouse()
    for statement in ("TRUNCATE TABLE IF EXISTS campaigns", "TRUNCATE TABLE IF EXISTS placements",
                      "TRUNCATE TABLE IF EXISTS advertisers", "TRUNCATE TABLE IF EXISTS products"):
        ch.execute(statement)
    base = "https://bench.example"
    quiet = open(os.devnull, "w")  # noqa: SIM115
    stdout, sys.stdout = sys.stdout, quiet
    try:
        cli(["migrate"], settings)
        cli(["demo", "--base-url", base], settings)
        for n in range(args.campaigns):
            shop = f"shop{n:03d}"
            cli(["create-advertiser", shop, "--domain", "bench.example"], settings)
            rows = [{"id": f"S{n}-{k}", "title": f"Shop {n} product {k}", "link": f"{base}/{shop}/{k}",
                     "image_link": f"{base}/{shop}/{k}.png", "price": "19.90", "currency": "CNY",
                     "availability": "in stock"} for k in range(30)]
            import_products(stores, shop, json.dumps(rows).encode(), "json", full=True)
            cli(["create-campaign", f"{shop}-c", "--advertiser", shop, "--pricing", "cpc",
                 "--price", f"{0.3 + (n % 10) / 10:.2f}", "--daily-budget", "100000", "--cap-per-day", "50"], settings)
    finally:
        sys.stdout = stdout
    app = create_app(settings)
    svc = app.extensions["adserver"]
    svc.registry.reload()
    advertisers = svc.registry.advertiser_ids()
    rng = random.Random(7)

    # Visitors with profiles: views at one to five stores, written through the product's own pixel.
    cookies = []
    client = app.test_client()
    for _ in range(args.visitors):
        visitor = app.test_client()
        for shop in rng.sample(advertisers, rng.randint(1, min(5, len(advertisers)))):
            skus = list(svc.catalog.get(shop))[:30]
            for sku in rng.sample(skus, min(3, len(skus))):
                visitor.get(f"/px.gif?a={shop}&e=view_item&sku={sku}")
        cookies.append(visitor.get_cookie("uid").value)

    timings: list[float] = []
    run = auction.run

    def timed_run(ctx, sources):
        started = time.perf_counter()
        try:
            return run(ctx, sources)
        finally:
            timings.append(time.perf_counter() - started)

    auction.run = timed_run
    requests: list[float] = []
    paths: dict[str, int] = {}
    candidates = []
    for i in range(args.requests):
        client.set_cookie("uid", cookies[i % len(cookies)])
        url = f"/ad.json?p={rng.choice(PLACEMENTS)}&size={rng.choice(SIZES)}"
        started = time.perf_counter()
        response = client.get(url)
        requests.append(time.perf_counter() - started)
        body = response.get_json()
        paths[body["path"]] = paths.get(body["path"], 0) + 1
        candidates.append(len(body["auction"]["candidates"]))
    auction.run = run

    bare = Flask("bare")
    gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    bare.add_url_rule("/px.gif", "px", lambda: Response(gif, mimetype="image/gif"))
    bare_client = bare.test_client()
    baseline = []
    for _ in range(args.requests):
        started = time.perf_counter()
        bare_client.get("/px.gif")
        baseline.append(time.perf_counter() - started)

    result = {
        "advertisers": len(advertisers), "campaigns": len(svc.registry.campaigns), "visitors": len(cookies),
        "ad_request": percentiles(requests), "auction": percentiles(timings), "bare_request": percentiles(baseline),
        "paths": paths, "candidates_mean": round(statistics.fmean(candidates), 1),
    }
    ratio = result["bare_request"]["p50_ms"] / result["ad_request"]["p50_ms"]
    print(f"advertisers {result['advertisers']}, campaigns {result['campaigns']}, visitors {result['visitors']}, "
          f"candidates per request (mean, shown in ad.json) {result['candidates_mean']}")
    for name in ("ad_request", "auction", "bare_request"):
        x = result[name]
        print(f"{name:13} p50 {x['p50_ms']:7.3f} ms   p99 {x['p99_ms']:7.3f} ms   mean {x['mean_ms']:7.3f} ms   n={x['n']}")
    print(f"ad request p50 as a ratio of the bare request: {ratio:.2f}; paths {paths}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
