"""``docs/scaling.md``: the figures of a ``python -m scripts.bench --cluster`` run as Markdown, hand-written
notes (capacity model, runbook) kept below the mark."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

from .report import _ms

CPU_COLUMNS = (("workers", "gunicorn workers"), ("redis", "Redis"), ("writer", "writer"),
               ("clickhouse", "ClickHouse (+ ZooKeeper)"))
CPU_TARGET = 1.15


def writer_table(rows: list[dict]) -> list[str]:
    lines = [
        "| setup | partitions | writer processes | events | s | **events/s** | after start-up /s "
        "| CPU µs/event: writers | Redis | ClickHouse | events/s of each run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r["cpu_us_per_event"]
        lines.append(
            f"| {r['mode']} | {r['partitions']} | {r['writers']} | {r['events']:,} | {r['seconds']} "
            f"| **{r['events_per_s']:,}** | {r['after_startup_per_s']:,} | {cpu['writers']} | {cpu.get('redis', '–')} "
            f"| {cpu.get('clickhouse', '–')} | {', '.join(f'{x:,}' for x in r['all_per_s'])} |")
    return lines


def web_table(web: dict) -> list[str]:
    lines = [
        "| endpoint | setup | req/s | p50 ms | p99 ms | non-2xx/3xx | CPU µs/request: "
        + " | ".join(label for _, label in CPU_COLUMNS) + " | req/s of each run | workers µs of each run |",
        "|---|---|---|---|---|---|" + "---|" * len(CPU_COLUMNS) + "---|---|",
    ]
    for endpoint in ("pixel", "ad"):
        for mode in ("single", "cluster"):
            r = web[mode][endpoint]
            cpu = " | ".join(str(r["cpu_us"][name]) for name, _ in CPU_COLUMNS)
            lines.append(f"| {endpoint} | {mode} | {r['rps']:,.0f} | {_ms(r['p50_ms'])} | {_ms(r['p99_ms'])} "
                         f"| {r['non_2xx']} | {cpu} | {', '.join(f'{x:,}' for x in r['all_rps'])} "
                         f"| {', '.join(str(x) for x in r['all_cpu_us'])} |")
    return lines


def render_scaling(r: dict, args, notes: str) -> str:
    commit, dirty = r["commit"]
    lines = [
        "# Scaling: partitions, writers, and cluster mode against single-node", "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit `{commit}`"
        f"{' (with uncommitted changes in the tree)' if dirty else ''} on {platform.machine()} with "
        f"{os.cpu_count()} cores ({platform.python_implementation()} {platform.python_version()}), by "
        f"`make bench-cluster` (`python -m scripts.bench --cluster`{' --quick' if args.quick else ''}), in "
        f"{r['total_seconds']} s (cluster up in {r['cluster_ready_s']} s, migrations of both setups "
        f"{r['migrate_s']} s). Every process of both setups shares these cores: the loopback cluster (ZooKeeper, "
        "ClickHouse 2 shards x 2 replicas, a Redis Cluster of 3 primaries with a replica each, from "
        "`scripts.testservers`), the single-node servers, the writers, the web workers and the load generator.",
        "",
    ]
    if r.get("writer"):
        lines += [
            "## Writer: events/s by stream partitions and writer processes", "",
            f"{args.writer_events:,} pixel events of distinct visitors pre-filled into the stream (each on its "
            "visitor's partition), then as many `python -m tracker.writer --partitions p-p` processes as "
            "partitions, timed from spawn until every partition's stream is empty and every row is visible "
            f"through `events` (all writers together); batch 50,000. Median of {args.runs} run(s) by events/s, "
            "the shapes interleaved run by run. CPU from `/proc` per stored event: the writers (start-up "
            "included), every Redis node of the setup, every ClickHouse node (and ZooKeeper) of the setup.", "",
            *writer_table(r["writer"]), "",
        ]
    seed = r["seed"]
    lines += [
        "## Web: cluster mode against single-node, CPU per request", "",
        f"The product twice under `deploy/gunicorn.conf.py` ({args.workers} workers each), on the single-node "
        f"servers and in cluster mode ({r['web_partitions']} stream partitions, one writer process draining them "
        "all), with the same demo data; both setups' visitor profiles filled first by the same "
        f"{args.visitors:,} visitors' pixel hits ({seed['single']['rps']:,.0f} req/s single, "
        f"{seed['cluster']['rps']:,.0f} req/s cluster; {seed['single']['errors'] + seed['cluster']['errors']} "
        f"errors). wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.runs} run(s) per endpoint and "
        "setup, the setups alternated; the pixel rotates over views of 2-3 products, the ad "
        "(`/ad?p=demo-feed&size=300x250`) over the visitors. CPU per answered request (µs), read from `/proc` "
        "before and after each run: the gunicorn master and workers, every Redis process of the setup, its "
        "writer, its ClickHouse processes (and ZooKeeper); the median over the runs. The rates move with "
        "whatever else the two cores run; CPU per request moves far less.", "",
        *web_table(r["web"]), "",
        "**CPU per request of the gunicorn workers, cluster / single-node: "
        + ", ".join(f"{endpoint} {ratio:.2f}" for endpoint, ratio in r["cpu_ratio"].items())
        + f"** (target at most {CPU_TARGET}).", "",
    ]
    idle = r["idle"]
    lines += [
        f"With no request at all ({idle['seconds']} s, both setups running, writers waiting on their streams), "
        "CPU ms per second: " + "; ".join(
            f"{mode}: " + ", ".join(f"{label} {idle[mode][name]}" for name, label in CPU_COLUMNS)
            for mode in ("single", "cluster"))
        + ". A request's share of that background is what the per-request figures above add to its own cost "
        "at the measured rate.", "",
    ]
    return "\n".join(lines) + "\n" + notes
