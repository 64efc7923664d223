#!/usr/bin/env python3
"""Generate a realistic volume of ad traffic straight into ClickHouse, for the reports benchmark.

Usage, from the checkout::

    python -m scripts.gen_events --impressions 100000000 [--advertiser bench] [--days 30]
        [--end 2026-03-31] [--timezone Asia/Shanghai] [--catalog 2000] [--placements 12]
        [--seed 1] [--chunk 2000000] [--clickhouse clickhouse://127.0.0.1:9000/adserver]

The ClickHouse server is ``--clickhouse``, else ``ADSERVER_CLICKHOUSE_URL`` (else the embedded chdb
under ``./var``, like the app). The schema is migrated first and the advertiser registered with its
time zone. Rows are computed by the server (``INSERT ... SELECT`` from ``numbers()``, every value a
parameter), ``--chunk`` impressions at a time, with a progress bar on stderr; the report tables are
filled by their materialized views as the rows arrive, as in production, and the attribution of the
generated orders is resolved and kept at the end (as reports would do over time).

On top of the impressions come about 0.8 % clicks, a few purchases per thousand ads (5 % of
clicks, some after a view only, some without any ad) and 3 % duplicate order pixels; see
``adserver/demo/synth.py`` for the shape. Running it twice with the same arguments adds the
same rows twice: use a fresh database, or another ``--seed`` and ``--end`` to extend one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from adserver.catalog.registry import save_advertiser, save_placement
from adserver.console import attribution
from adserver.demo import synth
from adserver.progress import Progress
from tracker import schema


def connect(url: str | None):
    from tracker.settings import load_settings
    from tracker.stores import Stores

    env = dict(os.environ)
    if url:
        env["ADSERVER_CLICKHOUSE_URL"] = url
    # One INSERT ... SELECT of millions of rows can take minutes on a busy server: a client timeout
    # would make the driver retry a statement the server is still running, and insert it twice.
    env.setdefault("ADSERVER_CLICKHOUSE_TIMEOUT", "3600")
    ch = Stores(load_settings(env)).clickhouse()
    ch.create_database()
    schema.migrate(ch)
    return ch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.gen_events", description="Generate synthetic ad traffic into ClickHouse.")
    parser.add_argument("--impressions", type=int, required=True, help="number of ad impressions to generate")
    parser.add_argument("--advertiser", default="bench")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--end", type=date.fromisoformat, help="last day (default: yesterday)")
    parser.add_argument("--timezone", default="Asia/Shanghai")
    parser.add_argument("--catalog", type=int, default=2000, help="number of products")
    parser.add_argument("--placements", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=2_000_000, help="impressions per INSERT ... SELECT")
    parser.add_argument("--clickhouse", help="clickhouse://host:9000/db (default: ADSERVER_CLICKHOUSE_URL)")
    args = parser.parse_args(argv)
    if args.impressions < 1 or args.days < 1 or args.catalog < 30 or args.placements < 1:
        parser.error("need at least 1 impression, 1 day, 30 products and 1 placement")

    ch = connect(args.clickhouse)
    zone = ZoneInfo(args.timezone)
    end = args.end or (datetime.now(zone).date() - timedelta(days=1))
    first = end - timedelta(days=args.days - 1)
    start = int(datetime.combine(first, datetime.min.time(), zone).timestamp())
    offset = round(datetime.combine(first, datetime.min.time(), zone).utcoffset().total_seconds() / 3600)
    save_advertiser(ch, args.advertiser, f"Benchmark store {args.advertiser}", "CNY", args.timezone)
    placements = [f"{args.advertiser}-p{i:02d}" for i in range(1, args.placements + 1)]
    for placement in placements:
        save_placement(ch, placement, f"Benchmark site {placement}", ["300x250"], [args.advertiser])
    traffic = synth.Traffic(
        advertiser=args.advertiser, start=start, days=args.days, impressions=args.impressions,
        catalog=[f"S{i:05d}" for i in range(1, args.catalog + 1)], placements=placements,
        utc_offset_hours=offset, seed=args.seed, tag=f"synthetic:{args.seed}",
    )
    print(f"generating {args.impressions:,} impressions for {args.advertiser!r}, {first} .. {end} ({args.timezone})",
          file=sys.stderr)
    progress = Progress("impressions", args.impressions)
    started = time.monotonic()
    synth.generate(ch, traffic, chunk=args.chunk, progress=progress.update)
    progress.finish()
    kept_started = time.monotonic()
    kept = attribution.keep_all(ch)
    print(f"attribution of {kept:,} orders resolved and kept in {time.monotonic() - kept_started:.0f} s", file=sys.stderr)
    rows = ch.execute("SELECT event, count() FROM events WHERE advertiser = %(a)s GROUP BY event ORDER BY event",
                      {"a": args.advertiser})
    total = sum(count for _, count in rows)
    print(", ".join(f"{event}: {count:,}" for event, count in rows) + f"; {total:,} events in "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
