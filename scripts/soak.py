#!/usr/bin/env python3
"""Soak: mixed traffic at a fraction of the measured maximum for a long time; nothing lost, no leak.

Run from the checkout: ``python -m scripts.soak [--help]``.

Starts throw-away Redis and ClickHouse servers, the product under gunicorn with
``deploy/gunicorn.conf.py`` and the event writer (as in production), seeds visitor profiles, then:

1. measures the maximum rate of the traffic mix (pixels, ads and clicks, rotated over thousands of
   visitors) with wrk;
2. sends that mix open loop at ``--fraction`` (default 70 %) of the maximum for ``--seconds``
   (default 600), while sampling the resident memory of every process (gunicorn master and workers,
   writer, Redis, ClickHouse) every few seconds;
3. waits for the writer to drain the stream and compares the events ClickHouse gained with what the
   load generator sent: one event per pixel, one impression per ad, one click per click.

It prints the figures and fails (exit 1) on any error response, a count mismatch, or a process whose
memory grew by more than ``--max-growth`` (5 %) between the end of the warm-up (``--warmup``, the
first fifth of the run) and the end. ``--out`` writes the report as Markdown.

``--max-requests N`` overrides gunicorn's ``max_requests`` (0, no recycling, in ``deploy/gunicorn.conf.py``) on
its command line, jitter N/10, so that workers are recycled several times during the run: the counts
must stay exact across restarts. The report gives how many workers were restarted during the soak.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts.benchlib.loadgen import closed_loop, fixed_rate
from scripts.benchlib.stack import PY, Stack, clickhouse, redis_client, server_pids
from scripts.benchlib.traffic import as_loadgen, click_requests, mint_visitors, pixel_requests, write_requests
from scripts.benchlib.web import free_port, wait_http, wrk

AD_PATH = "/ad?p=demo-feed&size=300x250"
MIX = {"pixel": 6, "ad": 3, "click": 1}  # per ten requests: a store's pages outnumber ad slots


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def mixed_requests(pixels: list[tuple[str, str]], clicks: list[tuple[str, str]], visitors: list[str],
                   rng: random.Random, length: int) -> tuple[list[tuple[str, str]], list[str]]:
    """``length`` requests in the ``MIX`` proportions, shuffled; and the kind of each."""
    kinds = [kind for kind, share in MIX.items() for _ in range(share)]
    rows, labels = [], []
    for n in range(length):
        kind = kinds[n % len(kinds)]
        if kind == "pixel":
            rows.append(pixels[n % len(pixels)])
        elif kind == "ad":
            rows.append((AD_PATH, visitors[n % len(visitors)]))
        else:
            rows.append(clicks[n % len(clicks)])
        labels.append(kind)
    order = list(range(length))
    rng.shuffle(order)
    return [rows[i] for i in order], [labels[i] for i in order]


def clickhouse_memory(ch) -> dict[str, int]:
    """What ClickHouse itself says it holds: tracked memory, its caches, and active data parts."""
    out = {name: int(value) for name, value in ch.execute(
        "SELECT metric, toInt64(value) FROM system.asynchronous_metrics "
        "WHERE metric IN ('MarkCacheBytes', 'UncompressedCacheBytes')")}
    out.update({name: int(value) for name, value in ch.execute(
        "SELECT metric, toInt64(value) FROM system.metrics WHERE metric = 'MemoryTracking'")})
    out["active parts"] = int(ch.execute("SELECT count() FROM system.parts WHERE active")[0][0])
    return out


def worker_boots(log: Path) -> list[str]:
    """gunicorn's lines saying it started a worker (at start, and after a worker reached ``max_requests``)."""
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if "Booting worker with pid" in line]
    except OSError:
        return []


def counters(stack: Stack) -> dict[str, int]:
    """The product's shared counters (``/metrics``): what the web processes recorded into the stream."""
    from tracker.stream import EventStream

    stream = EventStream(redis_client(stack.env), stack.env.get("ADSERVER_STREAM_KEY", "adserver:events"),
                         partitions=int(stack.env.get("ADSERVER_STREAM_PARTITIONS", "1")))
    return stream.counters()  # each partition's share and the older unpartitioned hash, summed


def event_counts(ch) -> dict[str, int]:
    return {event: int(n) for event, n in ch.execute("SELECT event, count() FROM events GROUP BY event")}


def wait_drained(stack: Stack, ch, seconds: float = 300) -> dict[str, int]:
    """Until the stream is empty and ClickHouse's counts stop moving."""
    r = redis_client(stack.env)
    key = stack.env.get("ADSERVER_STREAM_KEY", "adserver:events")
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        counts = event_counts(ch)
        if r.xlen(key) == 0 and counts == last:
            return counts
        last = counts
        time.sleep(2)
    raise SystemExit("the writer did not drain the stream in time")


class MemorySampler(threading.Thread):
    """Resident memory of the product's processes, every ``interval`` seconds."""

    def __init__(self, pids: dict[str, int], gunicorn_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pids, self.gunicorn_pid, self.interval = pids, gunicorn_pid, interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.workers_seen: set[int] = set()
        self.stopped = threading.Event()

    def snapshot(self) -> dict[str, int]:
        sizes = {name: rss_kib(pid) for name, pid in self.pids.items()}
        sizes["gunicorn master"] = rss_kib(self.gunicorn_pid)
        workers = sorted(children(self.gunicorn_pid))
        self.workers_seen.update(workers)
        for n, pid in enumerate(workers):
            sizes[f"gunicorn worker {n + 1}"] = rss_kib(pid)
        return sizes

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopped.wait(self.interval):
            self.samples.append((time.monotonic() - start, self.snapshot()))

    def timeline(self, total: float) -> list[str]:
        """A Markdown table: per process, the median RSS of every minute of the run."""
        minutes = range(int(total // 60) + (1 if total % 60 else 0))
        names = list(self.samples[0][1]) if self.samples else []
        rows = ["| process | " + " | ".join(f"{m + 1}" for m in minutes) + " |",
                "|---|" + "---|" * len(minutes)]
        for name in names:
            cells = []
            for m in minutes:
                values = [s.get(name, 0) for t, s in self.samples if m * 60 <= t < (m + 1) * 60]
                cells.append(f"{statistics.median(values) / 1024:.0f}" if values else "")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
        return rows

    def growth(self, warmup: float, total: float) -> dict[str, tuple[int, int, float]]:
        """Per process: median RSS just after the warm-up, median over the last tenth, growth."""
        after = [s for t, s in self.samples if warmup <= t < warmup + max(total * 0.1, self.interval * 2)]
        end = [s for t, s in self.samples if t >= total * 0.9]
        out = {}
        for name in (after or end or [{}])[0]:
            a = statistics.median(s.get(name, 0) for s in after) if after else 0
            b = statistics.median(s.get(name, 0) for s in end) if end else 0
            out[name] = (int(a), int(b), (b - a) / a if a else 0.0)
        return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="length of the soak")
    parser.add_argument("--fraction", type=float, default=0.7, help="share of the measured maximum rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--max-growth", type=float, default=0.05, help="allowed RSS growth after the warm-up")
    parser.add_argument("--max-seconds", type=int, default=15, help="length of the maximum-rate measurement")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run counted as warm-up")
    parser.add_argument("--max-requests", type=int, default=0,
                        help="gunicorn max_requests for the run (jitter a tenth of it); 0: deploy/gunicorn.conf.py's")
    parser.add_argument("--out", help="write the report (Markdown) here")
    args = parser.parse_args()
    workdir = Path(os.environ.get("ADSERVER_SOAK_DIR") or f"/tmp/adserver-soak-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.workers)
    rng = random.Random(3)
    report: list[str] = []
    failures: list[str] = []
    try:
        stack.start_servers()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        stack.env.update({"ADSERVER_PUBLIC_URL": base, "ADSERVER_COOKIE_SECURE": "0",
                          # one address sends everything: the flood limits would mark most clicks invalid
                          "ADSERVER_CLICK_LIMIT_VISITOR": "1000000000", "ADSERVER_CLICK_LIMIT_ADDRESS": "1000000000"})
        stack.cli("migrate")
        stack.cli("demo", "--base-url", base)
        for campaign in ("demo-retargeting", "outdoor-retargeting"):  # budgets must not run out mid-soak
            stack.cli("create-campaign", campaign, "--daily-budget", "100000000")
        recycling = ("--max-requests", str(args.max_requests), "--max-requests-jitter", str(args.max_requests // 10))
        product = stack.gunicorn("adserver:create_app()", port, "product.log", *(recycling if args.max_requests else ()))
        stack.spawn([PY, "-m", "tracker.writer"], "writer.log")
        writer = stack.procs[-1]
        wait_http(f"{base}/healthz")

        visitors = mint_visitors(stack.env, args.visitors)
        seed = pixel_requests(visitors, rng)
        print(f"seeding {len(visitors):,} visitors ({len(seed):,} pixel hits) ...", flush=True)
        closed_loop(base, as_loadgen(seed), len(seed), connections=16)
        clicks = click_requests(base, visitors[:300])
        pixels = pixel_requests(visitors, rng)
        mix, _ = mixed_requests(pixels, clicks, visitors, rng, 20_000)
        print("measuring the maximum rate of the mix with wrk ...", flush=True)
        maximum = wrk(f"{base}/px.gif", args.max_seconds, 32, requests=write_requests(workdir / "mix.txt", mix))
        rate = round(maximum["rps"] * args.fraction)
        ch = clickhouse(stack.env)
        before = wait_drained(stack, ch)

        # One minute at a time: the load generator keeps every request of a run in memory.
        chunks = [min(60, args.seconds - t) for t in range(0, args.seconds, 60)]
        total = rate * args.seconds
        rows, labels = mixed_requests(pixels, clicks, visitors, rng, min(rate * 60, 100_000))
        sent = {kind: 0 for kind in MIX}
        for chunk in chunks:
            for n in range(rate * chunk):
                sent[labels[n % len(labels)]] += 1
        pids = {"writer": writer.pid, **{f"{k}-server": v for k, v in server_pids(workdir / "servers").items()}}
        sampler = MemorySampler(pids, product.pid, interval=max(1.0, args.seconds / 120))
        ch_memory_before = clickhouse_memory(ch)
        counters_before = counters(stack)
        bad_before = int(ch.execute("SELECT count() FROM bad_events")[0][0])
        log_before = len(worker_boots(workdir / "product.log"))
        workers_before = set(children(product.pid))
        sampler.start()
        print(f"soak: {rate} req/s ({args.fraction:.0%} of {maximum['rps']:,.0f}) for {args.seconds} s ...", flush=True)
        started = datetime.now(UTC)
        parts = [fixed_rate(base, as_loadgen(rows), rate, chunk, connections=64) for chunk in chunks]
        result = {
            "requests": sum(p["requests"] for p in parts), "errors": sum(p["errors"] for p in parts),
            "non_2xx": sum(p["non_2xx"] for p in parts), "p50_ms": statistics.median(p["p50_ms"] for p in parts),
            "p99_ms": max(p["p99_ms"] for p in parts), "max_ms": max(p["max_ms"] for p in parts),
        }
        sampler.stopped.set()
        sampler.join()
        restarts = len(worker_boots(workdir / "product.log")) - log_before
        workers_during = len((sampler.workers_seen | set(children(product.pid))) - workers_before)
        ch_memory_after = clickhouse_memory(ch)
        after = wait_drained(stack, ch)
        gained = {event: after.get(event, 0) - before.get(event, 0) for event in ("view_item", "impression", "click")}
        counters_after = counters(stack)
        recorded = {name: counters_after.get(name, 0) - counters_before.get(name, 0)
                    for name in sorted(set(counters_after) | set(counters_before))}
        bad = int(ch.execute("SELECT count() FROM bad_events")[0][0]) - bad_before
        expected = {"view_item": sent["pixel"], "impression": sent["ad"], "click": sent["click"]}
        growth = sampler.growth(args.seconds * args.warmup, args.seconds)

        if result["errors"] or result["non_2xx"]:
            failures.append(f"{result['errors']} connection errors and {result['non_2xx']} error responses")
        if result["requests"] != total:
            failures.append(f"{result['requests']:,} of {total:,} requests answered")
        for event, n in expected.items():
            if gained[event] != n:
                failures.append(f"{event}: sent {n:,}, ClickHouse gained {gained[event]:,}")
        for name, (a, b, g) in growth.items():
            if g > args.max_growth:
                failures.append(f"{name}: RSS grew {g:.1%} ({a:,} -> {b:,} KiB)")

        report += [
            "# Soak", "",
            f"Run {started:%Y-%m-%d %H:%M} UTC by `python -m scripts.soak --seconds {args.seconds} --fraction "
            f"{args.fraction}" + (f" --max-requests {args.max_requests}" if args.max_requests else "")
            + f" --warmup {args.warmup}` on {os.cpu_count()} cores: the product under gunicorn (`deploy/gunicorn.conf.py`, "
            f"{args.workers} workers), the writer process, Redis and ClickHouse servers and the load generator on "
            "the same machine.", "",
            f"- Maximum rate of the mix (wrk, {args.max_seconds} s, 32 connections): **{maximum['rps']:,.0f} req/s** "
            f"(p99 {maximum['p99_ms']:.2f} ms).",
            f"- Soak: **{rate:,} req/s** open loop for {args.seconds} s = {total:,} requests "
            f"({', '.join(f'{n:,} {k}s' for k, n in sent.items())}); answered {result['requests']:,}, "
            f"errors {result['errors']}, error responses {result['non_2xx']}; "
            f"latency (from the intended send time) p50 {result['p50_ms']:.2f} ms (median of the minutes), "
            f"p99 {result['p99_ms']:.2f} ms (worst minute), max {result['max_ms']:.2f} ms.",
            "", "| event | sent | in ClickHouse |", "|---|---|---|",
            *(f"| {event} | {expected[event]:,} | {gained[event]:,} |" for event in expected),
            "", f"Resident memory (median just after the {args.seconds * args.warmup:.0f} s warm-up, and over the last "
            f"tenth of the run; {len(sampler.samples)} samples):", "",
            "| process | after warm-up KiB | at the end KiB | growth |", "|---|---|---|---|",
            *(f"| {name} | {a:,} | {b:,} | {g:+.1%} |" for name, (a, b, g) in growth.items()),
            "", "Resident memory minute by minute (median of the minute's samples, MiB):", "",
            *sampler.timeline(args.seconds),
            "", f"gunicorn max_requests: {args.max_requests or 'from deploy/gunicorn.conf.py'}"
            + (f" (jitter {args.max_requests // 10})" if args.max_requests else "")
            + f"; workers started during the soak (recycled): {restarts} (\"Booting worker\" in gunicorn's log), "
            f"{workers_during} new worker processes seen by the memory sampler.",
            "", "Recorded by the web processes during the run (their shared counters): "
            + ", ".join(f"{k} {v:,}" for k, v in recorded.items() if v) + f"; rows added to bad_events: {bad:,}.",
            "", "ClickHouse's own accounting at the start and at the end of the run: "
            + ", ".join(f"{k} {ch_memory_before.get(k, 0):,} -> {ch_memory_after.get(k, 0):,}"
                        for k in sorted(ch_memory_after)) + ".",
            "", "Result: " + ("**passed**" if not failures else "**FAILED**: " + "; ".join(failures)), "",
        ]
    finally:
        stack.close()
    text = "\n".join(report)
    print(text)
    if args.out and report:
        Path(args.out).write_text(text)
    return 1 if failures or not report else 0


if __name__ == "__main__":
    raise SystemExit(main())
