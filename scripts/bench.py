#!/usr/bin/env python3
"""Benchmarks of the product against a bare Flask app, measured in the same run (``make bench``).

Run from the checkout: ``python -m scripts.bench [--help]``.

Starts throw-away Redis and ClickHouse servers, the product under gunicorn with
``deploy/gunicorn.conf.py`` plus its writer, and a bare Flask app returning the 43-byte GIF under
the same gunicorn settings; drives them with wrk; prints a table and writes ``docs/benchmarks.md``.
The load generator shares the machine's cores with the servers: compare ratios, not raw figures.
``--cluster`` (``make bench-cluster``) measures scaling instead: writer partitions and cluster mode
against single-node, on a throw-away loopback cluster (``scripts/benchlib/cluster.py``, ``docs/scaling.md``).
``--quick`` is a smoke run of either (seconds, not minutes; the tests use it).

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
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from scripts.benchlib.cgroup import Unavailable, drop_in_weight, idle_cpu_group
from scripts.benchlib.cluster import cluster_mode
from scripts.benchlib.cluster import server_pids as cluster_pids
from scripts.benchlib.lag import end_to_end_lag
from scripts.benchlib.loadgen import fixed_rate
from scripts.benchlib.product import bench_settings, seed_profiles, start_product
from scripts.benchlib.report import median_run, publish, render, source_state
from scripts.benchlib.stack import PY, ROOT, Stack
from scripts.benchlib.targets import round_ratios
from scripts.benchlib.traffic import (
    as_loadgen,
    click_requests,
    mint_visitors,
    path_mix,
    pixel_requests,
    write_requests,
)
from scripts.benchlib.web import USER_AGENT, free_port, wait_http, wrk
from scripts.benchlib.writer import stream_packing, writer_throughput

AD_SIZES = ("300x250", "728x90", "160x600", "320x50", "320x100", "responsive")


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
    parser.add_argument("--cluster", action="store_true",
                        help="scaling instead: writer partitions and cluster mode against single-node "
                             "(scripts/benchlib/cluster.py; writes docs/scaling.md)")
    parser.add_argument("--writer-shapes", default="1,2,4",
                        help="--cluster: stream partitions measured, each with as many writer processes")
    parser.add_argument("--web-partitions", type=int, default=6,
                        help="--cluster: stream partitions of the web comparison (a multiple of the 3 primaries)")
    parser.add_argument("--single-only", action="store_true",
                        help="no cluster-mode column in the targets (no loopback cluster started)")
    parser.add_argument("--p99-runs", type=int, default=5, help="open-loop runs of the ad at half its maximum rate, "
                                                                "per setup (the target holds in every run)")
    parser.add_argument("--target-writers", type=int, default=2,
                        help="writer processes (and stream partitions) of the targets' writer figure")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 s per run, one run, few visitors and events, no reports")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument("--out", help="the Markdown written (default docs/benchmarks.md; docs/scaling.md with "
                                      "--cluster)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.runs, args.visitors, args.click_impressions = 2, 1, 300, 20
        args.writer_events, args.report_runs, args.skip_reports, args.p99_runs = 3000, 1, True, 1
    args.out = args.out or str(ROOT / "docs" / ("scaling.md" if args.cluster else "benchmarks.md"))
    if not subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    if args.cluster:
        from scripts.benchlib.cluster import run_cluster_bench

        return run_cluster_bench(args)
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-{os.getpid()}")
    results: dict = {"started": time.monotonic(), "commit": source_state(), "targets": {}}  # the tree at start
    # One setup at a time, each against the bare app in its own rounds: the cluster's dozen idle servers
    # (replication, ZooKeeper sessions, merges) would otherwise take the shared cores from the single-node runs.
    measure_single(args, workdir / "single", results)
    if not args.single_only:
        measure_cluster(args, workdir / "cluster", results)
    results["total_seconds"] = round(time.monotonic() - results["started"])
    publish(render, results, args)
    return 0


def web_rounds(args, urls: dict[str, str], files: dict[str, Path]) -> dict[str, list[dict]]:
    """``args.runs`` wrk rounds over ``urls``, interleaved so drift of the shared machine spreads over every endpoint."""
    runs: dict[str, list[dict]] = {name: [] for name in urls}
    for n in range(args.runs):
        for name, url in urls.items():
            print(f"run {n + 1}/{args.runs}: {name} ...", flush=True)
            runs[name].append(wrk(url, args.seconds, args.connections, requests=files.get(name)))
    return runs


def ad_half_runs(args, base: str, visitors: list[str], rate: int) -> list[dict]:
    """``args.p99_runs`` open-loop runs of the ad at ``rate`` (half its maximum)."""
    ad_rows = as_loadgen([("/ad?p=demo-feed&size=300x250", c) for c in visitors])
    out = []
    for n in range(args.p99_runs):
        print(f"fixed rate {n + 1}/{args.p99_runs}: the ad at {rate} req/s ...", flush=True)
        out.append(fixed_rate(base, ad_rows, rate, args.seconds))
        print(out[-1], flush=True)
    return out


def ad_half_idle_store(args, base: str, visitors: list[str], rate: int, pids: list[int]) -> dict:
    """The same runs with ClickHouse (and ZooKeeper) in a cgroup of idle CPU weight, as the shared-host drop-in
    sets it; ``{"unavailable": why}`` where no such cgroup can be made."""
    weight = drop_in_weight()
    if weight != "idle":
        return {"unavailable": f"the shared-host drop-in sets CPUWeight={weight!r}, which the bench does not model"}
    try:
        with idle_cpu_group(pids, f"adserver-bench-{os.getpid()}"):
            print("ClickHouse at idle CPU weight:", flush=True)
            return {"runs": ad_half_runs(args, base, visitors, rate)}
    except Unavailable as exc:
        print(f"ClickHouse at idle CPU weight: not measured ({exc})", flush=True)
        return {"unavailable": str(exc)}


def start_setup(stack: Stack, workdir: Path, cluster: bool, partitions: int = 1) -> tuple[str, str, dict]:
    """Servers (``cluster``: the loopback cluster too, the product in cluster mode on it), the product and a bare
    app under the same gunicorn settings; their base URLs and the product's settings over the stack's."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack.start_servers(cluster=cluster)
    bench_settings(stack)
    mode = {**cluster_mode(stack.servers, partitions), "ADSERVER_DATA_DIR": str(workdir / "var")} if cluster else {}
    bare_port = free_port()
    base, _, _ = start_product(stack, free_port(), "product", **mode)
    stack.gunicorn("scripts.bare_app:create_app()", bare_port, "bare.log")
    bare_url = f"http://127.0.0.1:{bare_port}"
    wait_http(f"{bare_url}/px.gif")
    return base, bare_url, mode


def measure_single(args, workdir: Path, results: dict) -> None:
    """The product on single-node servers: every endpoint, the targets, the writer, the reports."""
    stack = Stack(workdir, args.workers)
    rng = random.Random(1)
    targets = results["targets"]["single"] = {}
    try:
        base, bare_url, _ = start_setup(stack, workdir, cluster=False)

        visitors = mint_visitors(stack.env, args.visitors)
        results["seed"] = seed_profiles(base, visitors, rng)
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
        rounds_started = time.time()
        runs = web_rounds(args, urls, files)
        results["packing"] = targets["packing"] = pixel_packing(stack.env, rounds_started)
        for name, measured in runs.items():
            results[name] = median_run(measured)
            print(name, results[name], flush=True)
        targets["pixel_ratios"] = round_ratios(runs, "pixel")
        targets["ad_ratios"] = round_ratios(runs, "ad")
        results["click"]["links"] = len(clicks)
        results["mix_after"] = path_mix(base, sample)
        print("ad paths after the runs:", results["mix_after"], flush=True)

        targets["ad_half_runs"] = ad_half_runs(args, base, visitors, round(results["ad"]["rps"] / 2))
        half_runs = sorted(targets["ad_half_runs"], key=lambda run: run["p99_ms"] or 0)
        results["ad_half"] = half_runs[len(half_runs) // 2]
        rate = results["ad_half"]["target_rps"]
        targets["ad_half_idle_store"] = ad_half_idle_store(args, base, visitors, rate,
                                                           [stack.servers["clickhouse"]["pid"]])
        print(f"fixed rate: the bare app at {rate} req/s ...", flush=True)
        results["bare_half"] = fixed_rate(bare_url, as_loadgen([("/px.gif", "")]), rate, args.seconds)
        print(results["bare_half"], flush=True)

        print("measuring end-to-end lag ...", flush=True)
        results["lag"] = targets["lag"] = end_to_end_lag(stack.env, base)
        results["ad_bytes"] = ad_bytes(base, visitors[-1])
        results["web_seconds"] = round(time.monotonic() - results["started"])
        if not args.skip_writer:
            print("measuring the writer ...", flush=True)
            results["writer"] = writer_throughput(stack, args.writer_events, args.writers)
            n = args.target_writers
            print(f"measuring {n} writers on {n} partitions ...", flush=True)
            targets["writer"] = writer_throughput(stack, args.writer_events, n, partitions=n,
                                                  pack=_pack(targets["packing"]))
            print(targets["writer"], flush=True)
        if not args.skip_reports:
            volumes = [int(v) for v in args.report_events.split(",") if v.strip()]
            started = time.monotonic()
            results["reports"] = report_latency(stack, volumes, args.report_runs)
            results["reports_seconds"] = round(time.monotonic() - started)
    finally:
        stack.close()


def pixel_packing(env: dict, since: float) -> dict:
    """How the web processes packed the pixel runs' events into stream entries (``stream_packing``),
    once the writer has stored what they sent: the writer's targets are measured on such a backlog."""
    time.sleep(3)  # the writer's window (1 s) and its insert
    packing = stream_packing(env, since)
    print(f"stream entries during the web runs: {packing}", flush=True)
    return packing


def _pack(packing: dict) -> int:
    return max(1, round(packing.get("per_entry") or 1))


def measure_cluster(args, workdir: Path, results: dict) -> None:
    """The same product in cluster mode on a loopback cluster: the pixel, the ad and the targets."""
    stack = Stack(workdir, args.workers)
    rng = random.Random(1)
    targets = results["targets"]["cluster"] = {}
    try:
        base, bare_url, mode = start_setup(stack, workdir, cluster=True, partitions=args.web_partitions)

        visitors = mint_visitors(stack.env, args.visitors)
        results["seed_cluster"] = seed_profiles(base, visitors, rng)
        files = {
            "pixel": write_requests(workdir / "pixel.txt", pixel_requests(visitors, rng)),
            "ad": write_requests(workdir / "ad.txt", [("/ad?p=demo-feed&size=300x250", c) for c in visitors]),
        }
        rounds_started = time.time()
        runs = web_rounds(args, {"bare": f"{bare_url}/px.gif", "pixel": f"{base}/px.gif", "ad": f"{base}/ad"}, files)
        targets["packing"] = pixel_packing({**stack.env, **mode}, rounds_started)
        results["bare@cluster"] = median_run(runs["bare"])
        for name in ("pixel", "ad"):
            results[f"{name}@cluster"] = median_run(runs[name])
            print(f"{name}@cluster", results[f"{name}@cluster"], flush=True)
        targets["pixel_ratios"] = round_ratios(runs, "pixel")
        targets["ad_ratios"] = round_ratios(runs, "ad")
        rate = round(results["ad@cluster"]["rps"] / 2)
        targets["ad_half_runs"] = ad_half_runs(args, base, visitors, rate)
        targets["ad_half_idle_store"] = ad_half_idle_store(args, base, visitors, rate,
                                                           cluster_pids(stack.servers)["cluster"]["clickhouse"])
        print("measuring end-to-end lag ...", flush=True)
        targets["lag"] = end_to_end_lag({**stack.env, **mode}, base)
        if not args.skip_writer:
            n = args.target_writers
            print(f"measuring {n} writers on {n} partitions ...", flush=True)
            targets["writer"] = writer_throughput(stack, args.writer_events, n, partitions=n,
                                                  servers=cluster_pids(stack.servers)["cluster"],
                                                  mode=cluster_mode(stack.servers, n), pack=_pack(targets["packing"]))
            print(targets["writer"], flush=True)
    finally:
        stack.close()


if __name__ == "__main__":
    raise SystemExit(main())
