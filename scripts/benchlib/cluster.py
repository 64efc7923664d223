"""``python -m scripts.bench --cluster`` (``make bench-cluster``): what cluster mode scales and what it costs.

One throw-away ``scripts.testservers start --cluster`` holds both setups side by side: the single-node
Redis and ClickHouse, and the loopback cluster (ZooKeeper, ClickHouse 2 shards x 2 replicas, a Redis
Cluster of 3 primaries with a replica each). Everything is stopped at the end, whatever happens.

- **Writer scaling**: for each stream partition count of ``--writer-shapes`` (1, 2, 4), a backlog is
  pre-filled into the partitioned stream on the Redis Cluster and as many writer processes as
  partitions (``python -m tracker.writer --partitions p-p``) drain it into the ClickHouse cluster
  (``benchlib.writer.writer_throughput``: spawn to every row visible, all writers together). The
  single-node writer is measured alongside, as the reference.
- **Web, cluster mode against single-node**: the product runs twice under the same gunicorn
  settings, once on each setup (``--web-partitions`` partitions in cluster mode), both with the same
  demo data and visitors. The pixel and the ad are driven by the bench's wrk runs, alternating the two
  setups run by run; CPU time is read from ``/proc`` before and after each run, for the gunicorn
  workers (master and workers, retired ones included), the Redis servers (every cluster node), the
  writer and ClickHouse (every node, ZooKeeper included), and divided by the requests answered.

The servers, the writers, wrk and the web workers all share this machine's cores: the CPU per request
and the cluster / single ratios are the figures to compare, not the raw rates.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cpu import cpu_seconds, total_cpu_seconds, tree_cpu_seconds
from .product import bench_settings, seed_profiles, start_product
from .report import median_run, publish, source_state
from .scaling_report import render_scaling
from .stack import Stack
from .traffic import mint_visitors, pixel_requests, write_requests
from .web import free_port, wrk
from .writer import writer_throughput

ENDPOINTS = {"pixel": "/px.gif", "ad": "/ad"}
AD_PATH = "/ad?p=demo-feed&size=300x250"


def cluster_mode(servers: dict, partitions: int, database: str = "adserver") -> dict[str, str]:
    """The settings of cluster mode on the cluster ``scripts.testservers`` started (``servers.json``)."""
    env = servers["env"]
    return {
        "ADSERVER_REDIS_URL": env["ADSERVER_TEST_CLUSTER_REDIS_URL"],
        "ADSERVER_CLICKHOUSE_URL": env["ADSERVER_TEST_CLUSTER_CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/" + database,
        "ADSERVER_CLICKHOUSE_CLUSTER": env["ADSERVER_TEST_CLICKHOUSE_CLUSTER"],
        "ADSERVER_STREAM_PARTITIONS": str(partitions),
    }


def server_pids(servers: dict) -> dict[str, dict[str, list[int]]]:
    """Pids of the Redis and ClickHouse processes of each setup; ZooKeeper counts with the cluster's ClickHouse."""
    cluster = servers["cluster"]
    return {
        "single": {"redis": [servers["redis"]["pid"]], "clickhouse": [servers["clickhouse"]["pid"]]},
        "cluster": {"redis": [node["pid"] for node in cluster["redis"]],
                    "clickhouse": [node["pid"] for node in cluster["clickhouse"]] + [cluster["zookeeper"]["pid"]]},
    }


def writer_shapes(text: str) -> list[int]:
    shapes = [int(part) for part in text.split(",") if part.strip()]
    if not shapes or min(shapes) < 1:
        raise ValueError(f"--writer-shapes: partition counts like 1,2,4, got {text!r}")
    return shapes


def writer_scaling(stack: Stack, args, pids: dict[str, dict[str, list[int]]]) -> list[dict]:
    """Median (by events/s) of ``args.runs`` runs of each shape, the shapes interleaved run by run."""
    shapes = [("single", 1)] + [("cluster", n) for n in writer_shapes(args.writer_shapes)]
    runs: dict[tuple[str, int], list[dict]] = {shape: [] for shape in shapes}
    for run in range(1, args.runs + 1):
        for mode, partitions in shapes:
            print(f"writer run {run}/{args.runs}: {mode}, {partitions} partition(s) and writer(s) ...", flush=True)
            overrides = cluster_mode(stack.servers, partitions) if mode == "cluster" else {}
            result = writer_throughput(stack, args.writer_events, writers=partitions, servers=pids[mode],
                                       partitions=partitions, mode=overrides)
            print(result, flush=True)
            runs[(mode, partitions)].append(result)
    out = []
    for (mode, _), measured in runs.items():
        ordered = sorted(measured, key=lambda r: r["events_per_s"])
        out.append({**ordered[len(ordered) // 2], "mode": mode, "all_per_s": [r["events_per_s"] for r in measured]})
    return out


@dataclass
class Setup:
    """The product running on one setup, and the processes whose CPU counts against its requests."""

    mode: str
    base: str
    web: subprocess.Popen
    writer: subprocess.Popen
    servers: dict[str, list[int]]
    runs: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in ENDPOINTS})

    def cpu(self) -> dict[str, float]:
        return {"workers": tree_cpu_seconds(self.web.pid), "writer": cpu_seconds(self.writer.pid),
                **{name: total_cpu_seconds(pids) for name, pids in self.servers.items()}}

    def measure(self, endpoint: str, requests: Path, seconds: int, connections: int) -> dict:
        """One wrk run, with the CPU each process spent per answered request (µs)."""
        before = self.cpu()
        result = wrk(self.base + ENDPOINTS[endpoint], seconds, connections, requests=requests)
        after = self.cpu()
        answered = max(result["requests"], 1)
        result["cpu_us"] = {name: round((after[name] - before[name]) / answered * 1e6, 1) for name in before}
        self.runs[endpoint].append(result)
        return result


def summary(measured: list[dict]) -> dict:
    """The median run by req/s (its latencies), and the median CPU per request of each process over the runs."""
    cpu = {name: round(statistics.median(r["cpu_us"][name] for r in measured), 1) for name in measured[0]["cpu_us"]}
    return {**median_run(measured), "cpu_us": cpu, "all_cpu_us": [r["cpu_us"]["workers"] for r in measured]}


def web_comparison(stack: Stack, args, pids: dict[str, dict[str, list[int]]], rng: random.Random) -> dict:
    """Both setups under the same load, alternated run by run; see the module's docstring."""
    cluster = cluster_mode(stack.servers, args.web_partitions)
    setups = []
    for mode, overrides in (("single", {}), ("cluster", {**cluster, "ADSERVER_DATA_DIR": str(stack.workdir /
                                                                                              "var-cluster")})):
        base, web, writer = start_product(stack, free_port(), f"product-{mode}", **overrides)
        setups.append(Setup(mode, base, web, writer, pids[mode]))
    visitors = mint_visitors(stack.env, args.visitors)  # one secret key: the same cookies are valid on both
    seeded = {s.mode: seed_profiles(s.base, visitors, rng) for s in setups}
    files = {"pixel": write_requests(stack.workdir / "pixel.txt", pixel_requests(visitors, rng)),
             "ad": write_requests(stack.workdir / "ad.txt", [(AD_PATH, c) for c in visitors])}
    idle = idle_cpu(setups, max(args.seconds, 2))
    for n in range(args.runs):  # alternated, so drift of the shared machine spreads over both setups
        for setup in setups if n % 2 == 0 else setups[::-1]:
            for endpoint, requests in files.items():
                print(f"web run {n + 1}/{args.runs}: {setup.mode} {endpoint} ...", flush=True)
                result = setup.measure(endpoint, requests, args.seconds, args.connections)
                print(f"  {result['rps']:,.0f} req/s, CPU µs/request {result['cpu_us']}", flush=True)
    web = {s.mode: {endpoint: summary(runs) for endpoint, runs in s.runs.items()} for s in setups}
    ratios = {endpoint: round(web["cluster"][endpoint]["cpu_us"]["workers"]
                              / max(web["single"][endpoint]["cpu_us"]["workers"], 1e-9), 3) for endpoint in ENDPOINTS}
    return {"web": web, "cpu_ratio": ratios, "seed": seeded, "web_partitions": args.web_partitions, "idle": idle}


def idle_cpu(setups: list[Setup], seconds: float) -> dict:
    """CPU milliseconds per second each setup's processes use with no request at all (replication, merges,
    ZooKeeper sessions, the writers' blocked reads): what a request's share of them depends on its rate."""
    time.sleep(1)  # the seeding's last batches and merges
    before = {s.mode: s.cpu() for s in setups}
    started = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - started
    return {"seconds": round(took, 1), **{s.mode: {name: round((value - before[s.mode][name]) / took * 1000, 1)
                                                   for name, value in s.cpu().items()} for s in setups}}


def run_cluster_bench(args) -> int:
    """Start the servers, measure, stop everything, print and write the report (``args.out``)."""
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-cluster-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.workers)
    results: dict = {"started": time.monotonic(), "commit": source_state()}
    try:
        stack.start_servers(cluster=True)
        bench_settings(stack)
        pids = server_pids(stack.servers)
        results["cluster_ready_s"] = stack.servers["cluster"]["ready_s"]
        print("migrating the single-node and the cluster databases ...", flush=True)
        started = time.monotonic()
        stack.cli("migrate")
        stack.cli("migrate", **cluster_mode(stack.servers, 1))
        results["migrate_s"] = round(time.monotonic() - started, 1)
        if not args.skip_writer:
            results["writer"] = writer_scaling(stack, args, pids)
        results.update(web_comparison(stack, args, pids, random.Random(1)))
        results["total_seconds"] = round(time.monotonic() - results["started"])
    finally:
        stack.close()
    publish(render_scaling, results, args)
    return 0
