#!/usr/bin/env python3
"""Recommender at production scale, end to end through the product's own commands.

Loads a synthetic store of ``--products`` products (a feed through ``import-feed``, timed) and
``--events`` interest events (inserted into ClickHouse's ``events`` table), runs ``train`` (timed: the
ClickHouse extraction, content and behavioural similarity, blend, artifact), then measures the ad
decision of the serving side (the auction filling a unit with recent + similar + popular products, in
memory) against a decision without the model, and prints the figures. Needs ``ADSERVER_CLICKHOUSE_URL`` /
``ADSERVER_REDIS_URL`` (e.g. ``source`` the env.sh of ``python -m scripts.testservers start``) or runs embedded.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

ADVERTISER = "bench-shop"


def _cli(*args: str, stdin: bytes | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "adserver", *args], cwd=ROOT, input=stdin,
                            capture_output=True, check=False)
    seconds = time.perf_counter() - started
    out = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode not in (0, 1):
        raise SystemExit(f"{args[0]} failed:\n{out}")
    return seconds, out


def feed_file(path: Path, products: int) -> None:
    from models.synthetic import synthetic_catalogue

    titles, cats = synthetic_catalogue(products, seed=1)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "title", "link", "image_link", "price", "currency", "availability", "product_type"])
    for n, (title, cat) in enumerate(zip(titles, cats)):
        writer.writerow([f"P{n}", title, f"https://bench.example/p/{n}", f"https://bench.example/i/{n}.jpg",
                         f"{10 + n % 500}.90", "CNY", "in stock", f"Category {cat}"])
    path.write_text(buf.getvalue())


def insert_events(events: int, products: int) -> float:
    from models.synthetic import synthetic_events
    from tracker import schema
    from tracker.settings import load_settings
    from tracker.stores import Stores

    visitors, items, ts, weights = synthetic_events(events, products, seed=2)
    now = time.time()
    ts = ts - ts.max() + now - 3600  # the last 90 days up to an hour ago
    names = {1.0: "view_item", 3.0: "add_to_cart", 5.0: "purchase"}
    ch = Stores(load_settings()).clickhouse()
    started = time.perf_counter()
    from datetime import UTC, datetime

    chunk = 200_000
    for lo in range(0, len(items), chunk):
        rows = [
            (datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None), ADVERTISER, names[float(w)], f"v{v}",
             f"P{i}", [f"P{i}"], [], "", 0.0, "", "", "", "", 1, "desktop", "", "", f"bench-{lo + k}",
             "", 0.0, 0.0, 0, 0, 0, "", 0)
            for k, (v, i, t, w) in enumerate(zip(visitors[lo:lo + chunk], items[lo:lo + chunk],
                                                  ts[lo:lo + chunk], weights[lo:lo + chunk]))
        ]
        ch.insert("events", schema.EVENTS_COLUMNS, rows)
        print(f"\r  events {min(lo + chunk, len(items)):,}/{len(items):,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return time.perf_counter() - started


def lookup_timing(decisions: int) -> dict:
    """Microseconds per ad decision through the auction (``adserver.serving.auction.run``) for visitors with
    five recent views, with the trained model and without one; the store's data is in memory, as served."""
    from datetime import date

    from adserver.catalog.registry import Placement
    from adserver.catalog.storage import load_products
    from adserver.learning.similar import ModelCache
    from adserver.serving import auction
    from tracker.settings import load_settings
    from tracker.stores import Stores
    from tracker.stream import Interest

    settings = load_settings()
    products = load_products(Stores(settings).clickhouse(), ADVERTISER)
    models = ModelCache(settings.model_dir, check_seconds=3600)
    model = models.get(ADVERTISER)
    skus = list(products)
    rng = np.random.default_rng(3)
    now = time.time()
    interests = [Interest(ADVERTISER, now - 60, [skus[j] for j in rng.integers(0, len(skus), 5)], 5)
                 for _ in range(decisions)]
    popular = model.popular_ids(50)
    placement = Placement("bench", "site")
    out = {}
    for label, artifact in (("with model", model), ("without model", None)):
        sources = auction.Sources(
            campaigns=lambda a: [], advertisers=lambda: [ADVERTISER], timezone=lambda a: "UTC",
            catalog=lambda a: products, popular=lambda a: popular, model=lambda a, m=artifact: m,
            predict=lambda *a: 0.0, reserve=lambda c, amount: True, local_date=lambda a, t: date.today(),
        )
        started = time.perf_counter()
        for interest in interests:
            ctx = auction.AuctionContext("bench", placement, True, "300x250", 4, "desktop", now, 12, [interest])
            auction.run(ctx, sources)
        out[label] = (time.perf_counter() - started) / decisions * 1e6
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(os.environ.get("ADSERVER_BENCH_DIR") or "/tmp/adserver-bench-recommender")
    work.mkdir(parents=True, exist_ok=True)
    _cli("create-advertiser", ADVERTISER, "--domain", "bench.example")
    feed = work / "feed.csv"
    feed_file(feed, args.products)
    import_s, out = _cli("import-feed", ADVERTISER, str(feed), "--full")
    print(out.strip().splitlines()[-1])
    events_s = insert_events(args.events, args.products)
    train_s, out = _cli("train", "--advertiser", ADVERTISER)
    print(out.strip())
    lookups = lookup_timing(args.decisions)
    print()
    print(f"import-feed, {args.products:,} products:           {import_s:7.1f} s (CLI, including start-up)")
    print(f"events inserted, {args.events:,}:             {events_s:7.1f} s")
    print(f"train, {args.products:,} products + {args.events:,} events: {train_s:7.1f} s (CLI, including start-up)")
    for label, micros in lookups.items():
        print(f"ad decision {label:<14}                 {micros:7.1f} µs per decision (auction, in memory, 4 slots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
