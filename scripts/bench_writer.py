#!/usr/bin/env python3
"""Writer throughput alone: repeated runs of ``benchlib.writer.writer_throughput``, median reported.

Run from the checkout: ``python -m scripts.bench_writer [--help]``.

Each run pre-fills a fresh Redis stream with ``--events`` entries, then times writer processes
(``python -m tracker.writer``) from spawn until the stream is empty and every row is visible in
ClickHouse. Throw-away servers are started (``scripts.testservers``) unless ``--use-test-servers``
points the run at those named by ``ADSERVER_TEST_REDIS_URL`` / ``ADSERVER_TEST_CLICKHOUSE_URL``.
The machine's cores are shared by Redis, ClickHouse and the writers: repeat runs, read the median.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
from pathlib import Path

from scripts.benchlib.stack import PY, ROOT, Stack, server_pids
from scripts.benchlib.writer import writer_throughput
from tracker.stream_entries import PACK_MAX


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_writer", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writers", type=int, default=1, help="writer processes sharing the stream")
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--pack", type=int, default=1, choices=range(1, PACK_MAX + 1), metavar=f"1..{PACK_MAX}",
                        help="events per stream entry (a web process's batch packs up to PACK_MAX)")
    parser.add_argument("--use-test-servers", action="store_true",
                        help="use the servers of ADSERVER_TEST_REDIS_URL / ADSERVER_TEST_CLICKHOUSE_URL")
    args = parser.parse_args()
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-writer-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, workers=1)
    try:
        if args.use_test_servers:
            stack.env.update({
                "ADSERVER_REDIS_URL": os.environ["ADSERVER_TEST_REDIS_URL"],
                "ADSERVER_CLICKHOUSE_URL": os.environ["ADSERVER_TEST_CLICKHOUSE_URL"],
                "ADSERVER_SECRET_KEY": secrets.token_urlsafe(32),
                "ADSERVER_DATA_DIR": str(workdir / "var"),
            })
        else:
            stack.start_servers()
        import subprocess

        subprocess.run([PY, "-m", "adserver", "migrate"], cwd=ROOT, env=stack.env, check=True, capture_output=True)
        servers = server_pids(Path(os.environ["ADSERVER_TEST_SERVERS_DIR"]) if args.use_test_servers
                              else workdir / "servers")
        rates, steady, cpus = [], [], []
        for run in range(1, args.runs + 1):
            result = writer_throughput(stack, args.events, args.writers, args.batch_size, servers, pack=args.pack)
            rates.append(result["events_per_s"])
            steady.append(result["after_startup_per_s"])
            cpus.append(result["cpu_us_per_event"])
            cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_us_per_event"].items())
            print(f"run {run}: {result['events']:,} events in {result['seconds']} s = {result['events_per_s']:,}/s "
                  f"({args.writers} writer{'s' if args.writers > 1 else ''}, batch {args.batch_size:,}, "
                  f"entries of {args.pack}); "
                  f"{result['after_startup_per_s']:,}/s after a start-up of {result['startup_s']} s; "
                  f"CPU us/event: {cpu}", flush=True)
        median_cpu = {k: statistics.median(c[k] for c in cpus) for k in cpus[0]}
        print(f"median {statistics.median(rates):,.0f} events/s over {args.runs} runs "
              f"(min {min(rates):,}, max {max(rates):,}), {statistics.median(steady):,.0f}/s after start-up; "
              "median CPU us/event: "
              + ", ".join(f"{k} {v}" for k, v in median_cpu.items()) + f", total {sum(median_cpu.values()):.2f}")
    finally:
        if args.use_test_servers:
            for proc in stack.procs:
                if proc.poll() is None:
                    proc.kill()
        else:
            stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
