#!/usr/bin/env python3
"""Benchmarks of the product against a bare Flask app, measured in the same run (``make bench``).

Run from the checkout: ``python -m scripts.bench [--help]``.

Starts throw-away Redis and ClickHouse servers, the product under gunicorn with
``deploy/gunicorn.conf.py`` plus its writer, and a bare Flask app returning the 43-byte GIF under
the same gunicorn settings; drives them with wrk; prints a table and writes ``docs/benchmarks.md``.
The load generator shares the machine's cores with the servers: compare ratios, not raw figures.

What the requests look like, and why:

- Every request carries a desktop Chrome ``User-Agent``: the product classifies requests without
  one as invalid traffic (no profile, no frequency state, no charge), a cheaper path than a person's.
- Visitors are many (``--visitors``, cookies minted with the bench's secret key, exactly as the
  server mints them) and their profiles are filled by pixel hits before any measurement. wrk rotates
  over them (``scripts/rotate.lua``): one cookie would be capped and fatigued after a few ads and
  measure the fallback path. The mix of ``path``s ``/ad.json`` answers for these visitors is printed
  before and after the ad runs.
- Clicks rotate over the click links of several hundred impressions; the click-flood limits are
  raised in the product's environment because the whole bench comes from one address.
- Campaign budgets are raised so the bench does not spend them out mid-run (the budget scripts
  still run on every ad and click).
- "p99 at half of the maximum rate" comes from ``scripts/benchlib/loadgen.py`` (open loop, latency from the
  intended send time): wrk cannot hold a rate and wrk2 is not packaged here.
- Report latency at 10 and 100 million events (``--report-events``): ``scripts/gen_events.py``
  fills a ``bench`` database of the same ClickHouse server, then 30-day reports are timed.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from scripts.benchlib.loadgen import closed_loop, fixed_rate
from scripts.benchlib.report import kept_notes, median_run, render, source_state
from scripts.benchlib.stack import PY, ROOT, Stack, clickhouse
from scripts.benchlib.traffic import (
    as_loadgen,
    click_requests,
    mint_visitors,
    path_mix,
    pixel_requests,
    write_requests,
)
from scripts.benchlib.web import USER_AGENT, free_port, wait_http, wrk
from scripts.benchlib.writer import writer_throughput

AD_SIZES = ("300x250", "728x90", "160x600", "320x50", "320x100", "responsive")


def end_to_end_lag(stack: Stack, base: str, hits: int = 300) -> dict:
    """Pixel answered -> row visible in ClickHouse, per hit (p50/p99), with the real writer running.

    ClickHouse is polled every 20 ms from before the first hit, in a thread of its own: polling only
    once every hit was sent (~2 s) would count that sending time into the early hits' lag.
    """
    ch = clickhouse(stack.env)
    marker = "lag" + secrets.token_hex(3)
    sent: dict[int, float] = {}
    visible: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        deadline = time.monotonic() + 60
        while len(visible) < hits and time.monotonic() < deadline and not done.is_set():
            # A row in the answer was visible when the query started: that moment is its visibility
            # time (taking the time after the answer would add the query's own duration to every lag).
            now = time.monotonic()
            rows = ch.execute("SELECT sku FROM events WHERE event = 'view_item' AND sku LIKE %(m)s",
                              {"m": marker + "-%"})
            for (sku,) in rows:
                visible.setdefault(int(sku.rsplit("-", 1)[1]), now)
            time.sleep(0.02)

    poller = threading.Thread(target=poll, name="lag-poller", daemon=True)
    poller.start()
    for n in range(hits):
        urllib.request.urlopen(urllib.request.Request(f"{base}/px.gif?a=demo&e=view_item&sku={marker}-{n}",
                                                      headers={"User-Agent": USER_AGENT})).read()
        sent[n] = time.monotonic()
        time.sleep(0.005)
    poller.join(timeout=70)
    done.set()
    visible = {n: t for n, t in visible.items() if n in sent}
    lags = sorted(visible[n] - sent[n] for n in visible)
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None  # noqa: E731
    return {"hits": hits, "seen": len(lags), "p50_s": pick(0.5), "p99_s": pick(0.99)}


def ad_bytes(base: str, cookie: str) -> dict:
    """Bytes of the HTML unit of every size (the six formats), for a visitor with a profile."""
    out = {}
    for size in AD_SIZES:
        req = urllib.request.Request(f"{base}/ad?p=demo-feed&size={size}",
                                     headers={"Cookie": cookie, "User-Agent": USER_AGENT})
        out[size] = len(urllib.request.urlopen(req).read())
    return out


def report_latency(stack: Stack, volumes: list[int], runs: int) -> list[dict]:
    """30-day report latency (p50 of ``runs``) after loading each volume of impressions into a ``bench`` database.

    Volumes are cumulative: the second load adds what the first lacks (another seed, same 30 days),
    so 10 M then 100 M generates 100 M impressions in all, not 110 M.
    """
    from adserver.console import attribution
    from adserver.console.report import ReportRequest
    from tracker.clickhouse import DriverClickHouse
    from tracker.settings import parse_clickhouse_url

    url = stack.env["ADSERVER_CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/bench"
    timezone = "Asia/Shanghai"
    end = datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)
    loaded, out = 0, []
    for seed, volume in enumerate(sorted(volumes), 1):
        print(f"loading {volume - loaded:,} impressions for the report benchmark ...", flush=True)
        started = time.monotonic()
        subprocess.run([PY, "-m", "scripts.gen_events", "--impressions", str(volume - loaded),
                        "--seed", str(seed), "--end", end.isoformat(), "--timezone", timezone, "--clickhouse", url],
                       cwd=ROOT, env=stack.env, check=True)
        generated = time.monotonic() - started
        loaded = volume
        ch = DriverClickHouse(parse_clickhouse_url(url), 10, 600)
        events = ch.execute("SELECT count() FROM events WHERE advertiser = 'bench'")[0][0]
        request = ReportRequest("bench", end - timedelta(days=29), end, "day", timezone)
        s, e = request.bounds()
        attribution.forget_kept()
        started = time.monotonic()
        attribution.keep_resolutions(ch, "bench", s, e)  # one-off per order, as bench_reports.py does
        one_off = time.monotonic() - started

        out.append({"impressions": volume, "events": events, "generate_s": round(generated),
                    "one_off_s": round(one_off, 1), **time_reports(ch, request, runs)})
        print(out[-1], flush=True)
    return out


def time_reports(ch, request, runs: int) -> dict:
    """p50 (ms) of the 30-day report by day, by product, and of a dashboard page's three queries."""
    from adserver.console.report import run_report

    def p50(fn) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return round(statistics.median(times) * 1000, 1)

    def dashboard() -> None:
        run_report(ch, request)
        run_report(ch, request.previous(), with_rows=False)
        run_report(ch, regroup(request, "placement"))

    return {"by_day_ms": p50(lambda: run_report(ch, request)),
            "by_product_ms": p50(lambda: run_report(ch, regroup(request, "sku"))),
            "dashboard_ms": p50(dashboard)}


def regroup(request, group_by: str):
    """The same report broken down another way."""
    return replace(request, group_by=group_by)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per endpoint (interleaved); the median is kept")
    parser.add_argument("--visitors", type=int, default=20_000, help="visitors with profiles the ad bench rotates over")
    parser.add_argument("--click-impressions", type=int, default=500, help="impressions whose click links are rotated")
    parser.add_argument("--writer-events", type=int, default=200_000)
    parser.add_argument("--writers", type=int, default=1, help="writer processes draining the stream together")
    parser.add_argument("--report-events", default="10000000,100000000",
                        help="impression volumes for the report latency (comma-separated, cumulative)")
    parser.add_argument("--report-runs", type=int, default=5)
    parser.add_argument("--skip-reports", action="store_true", help="no report latency (saves ~20 minutes)")
    parser.add_argument("--skip-writer", action="store_true", help="no writer throughput")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if not subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.workers)
    results: dict = {"started": time.monotonic(), "commit": source_state()}  # what is measured: the tree at start
    rng = random.Random(1)
    try:
        stack.start_servers()
        product_port, bare_port = free_port(), free_port()
        base = f"http://127.0.0.1:{product_port}"
        bare_url = f"http://127.0.0.1:{bare_port}"
        stack.env["ADSERVER_PUBLIC_URL"] = base
        stack.env["ADSERVER_COOKIE_SECURE"] = "0"
        # The whole bench comes from one address: the click-flood limits would mark nearly every click.
        stack.env["ADSERVER_CLICK_LIMIT_VISITOR"] = stack.env["ADSERVER_CLICK_LIMIT_ADDRESS"] = "1000000000"
        stack.cli("migrate")
        print(stack.cli("demo", "--base-url", base).strip())
        for campaign in ("demo-retargeting", "outdoor-retargeting"):  # not spent out mid-bench
            stack.cli("create-campaign", campaign, "--daily-budget", "100000000")
        stack.gunicorn("adserver:create_app()", product_port, "product.log")
        stack.gunicorn("scripts.bare_app:create_app()", bare_port, "bare.log")
        stack.spawn([PY, "-m", "tracker.writer"], "writer.log")
        wait_http(f"{base}/healthz")
        wait_http(f"{bare_url}/px.gif")

        visitors = mint_visitors(stack.env, args.visitors)
        seed = pixel_requests(visitors, rng)
        print(f"seeding {len(visitors):,} visitor profiles with {len(seed):,} pixel hits ...", flush=True)
        results["seed"] = closed_loop(base, as_loadgen(seed), len(seed), connections=16)
        sample = rng.sample(visitors, min(300, len(visitors)))
        results["mix_before"] = path_mix(base, sample)
        print("ad paths before the runs:", results["mix_before"], flush=True)
        clicks = click_requests(base, visitors[:args.click_impressions])
        files = {
            "pixel": write_requests(workdir / "pixel.txt", pixel_requests(visitors, rng)),
            "ad": write_requests(workdir / "ad.txt", [("/ad?p=demo-feed&size=300x250", c) for c in visitors]),
            "click": write_requests(workdir / "click.txt", clicks),
        }
        urls = {"bare": f"{bare_url}/px.gif", "pixel": f"{base}/px.gif", "ad": f"{base}/ad", "click": f"{base}/c/"}
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for n in range(args.runs):  # interleaved, so drift of the shared machine spreads over every endpoint
            for name, url in urls.items():
                print(f"run {n + 1}/{args.runs}: {name} ...", flush=True)
                runs[name].append(wrk(url, args.seconds, args.connections, requests=files.get(name)))
        for name, measured in runs.items():
            results[name] = median_run(measured)
            print(name, results[name], flush=True)
        results["click"]["links"] = len(clicks)
        results["mix_after"] = path_mix(base, sample)
        print("ad paths after the runs:", results["mix_after"], flush=True)

        rate = round(results["ad"]["rps"] / 2)
        ad_rows = as_loadgen([("/ad?p=demo-feed&size=300x250", c) for c in visitors])
        print(f"fixed rate: the ad and the bare app at {rate} req/s ...", flush=True)
        results["ad_half"] = fixed_rate(base, ad_rows, rate, args.seconds)
        results["bare_half"] = fixed_rate(bare_url, as_loadgen([("/px.gif", "")]), rate, args.seconds)
        print(results["ad_half"], results["bare_half"], flush=True)

        print("measuring end-to-end lag ...")
        results["lag"] = end_to_end_lag(stack, base)
        results["ad_bytes"] = ad_bytes(base, visitors[-1])
        results["web_seconds"] = round(time.monotonic() - results["started"])
        if not args.skip_writer:
            print("measuring the writer ...")
            results["writer"] = writer_throughput(stack, args.writer_events, args.writers)
        if not args.skip_reports:
            volumes = [int(v) for v in args.report_events.split(",") if v.strip()]
            started = time.monotonic()
            results["reports"] = report_latency(stack, volumes, args.report_runs)
            results["reports_seconds"] = round(time.monotonic() - started)
        results["total_seconds"] = round(time.monotonic() - results["started"])
    finally:
        stack.close()
    out = Path(args.out)
    report = render(results, args, kept_notes(out))
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
