#!/usr/bin/env python3
"""ClickHouse's cost per insert into ``events``: with its report views, and into a copy without them.

Run from the checkout: ``python -m scripts.bench_insert [--help]``.

Why: the writer inserts once per batch (``ADSERVER_WRITER_BATCH_SECONDS``), and each insert into
``events`` also inserts into every materialized view on it, one part per table. On the bench's two
shared cores that work arrives as a burst, and the ad's p99 follows these bursts
(``docs/benchmarks.md``). This measures the burst: the server's CPU and the wall time per insert of
``--rows`` impression rows (several sizes), alternating ``events`` (views included) and
``events_without_views`` (the same table, no view on it), in a database of its own that is dropped
afterwards. The server's CPU is read from ``/proc`` when the server is a local process
(``scripts.testservers``); otherwise only the wall time is shown.

Throw-away servers are started unless ``--use-test-servers`` points the run at the server of
``ADSERVER_TEST_CLICKHOUSE_URL`` (its process found through ``ADSERVER_TEST_SERVERS_DIR``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import time
from pathlib import Path

from scripts.benchlib.cpu import total_cpu_seconds
from scripts.benchlib.stack import PY, ROOT, Stack, server_pids
from tracker.settings import load_settings
from tracker.stores import Stores
from tracker.writer import event_block

WITHOUT_VIEWS = "events_without_views"
CREATE_WITHOUT_VIEWS = f"CREATE TABLE IF NOT EXISTS {WITHOUT_VIEWS} AS events"
COUNT = "SELECT count() FROM {table} WHERE placement = %(placement)s"
VIEWS = ("SELECT count() FROM system.tables WHERE database = currentDatabase() AND engine = 'MaterializedView' "
         "AND create_table_query LIKE %(source)s")


def impression_block(rows: int, placement: str) -> tuple[tuple[str, ...], list[list]]:
    """``rows`` impressions as the ad records them, in the columns the writer sends (its own ``event_block``)."""
    now = time.time()
    datas = [{"ts": now, "advertiser": "bench", "event": "impression", "uid": secrets.token_urlsafe(16),
              "skus": ["D1001", "D1002", "D1003", "D1004"], "reasons": ["recent", "similar", "similar", "popular"],
              "placement": placement, "impression_id": secrets.token_urlsafe(12), "size": "300x250",
              "addressable": 1, "device": "desktop", "campaign": "bench-retargeting", "cost": 0.003, "pctr": 0.01}
             for _ in range(rows)]
    return event_block(datas, [f"{int(now * 1000)}-{n}" for n in range(rows)])


def measure(ch, server_pid: int | None, sizes: list[int], inserts: int, rounds: int) -> list[dict]:
    """Per size and table: median over ``rounds`` of the server CPU ms and wall ms per insert.

    One insert into each table first, not counted: a table's first part pays one-off costs."""
    ch.execute(CREATE_WITHOUT_VIEWS)
    results = []
    warm = impression_block(1, "bench-insert-warm-up")
    for table in ("events", WITHOUT_VIEWS):
        ch.insert_columns(table, *warm)
    for rows in sizes:
        placement = f"bench-insert-{rows}"  # each size counts its own rows
        names, data = impression_block(rows, placement)
        samples: dict[str, dict[str, list[float]]] = {t: {"cpu": [], "wall": []} for t in ("events", WITHOUT_VIEWS)}
        for _ in range(rounds):
            for table in ("events", WITHOUT_VIEWS):
                cpu = total_cpu_seconds([server_pid]) if server_pid else 0.0
                started = time.perf_counter()
                for _ in range(inserts):
                    ch.insert_columns(table, names, data)
                wall = time.perf_counter() - started
                if server_pid:
                    samples[table]["cpu"].append((total_cpu_seconds([server_pid]) - cpu) / inserts * 1000)
                samples[table]["wall"].append(wall / inserts * 1000)
        for table, sample in samples.items():
            stored = ch.execute(COUNT.format(table=table), {"placement": placement})[0][0]
            results.append({
                "table": table, "rows": rows, "inserts": inserts * rounds,
                "server_cpu_ms": round(statistics.median(sample["cpu"]), 1) if sample["cpu"] else None,
                "wall_ms": round(statistics.median(sample["wall"]), 1), "stored": stored,
            })
    return results


def _print(results: list[dict], views: int) -> None:
    by = {(r["table"], r["rows"]): r for r in results}
    print(f"events has {views} materialized views reading it", flush=True)
    for r in results:
        cpu = f"server CPU {r['server_cpu_ms']} ms" if r["server_cpu_ms"] is not None else "server CPU unknown"
        print(f"{r['table']:<22} {r['rows']:>6,} rows: {cpu}, wall {r['wall_ms']} ms per insert "
              f"({r['stored']:,} rows stored by {r['inserts']} inserts)", flush=True)
    for rows in sorted({r["rows"] for r in results}):
        with_views, bare = by[("events", rows)], by[(WITHOUT_VIEWS, rows)]
        key = "server_cpu_ms" if with_views["server_cpu_ms"] else "wall_ms"
        what = "server CPU" if key == "server_cpu_ms" else "wall time"
        if bare[key]:
            print(f"{rows:,} rows: the views multiply the insert's {what} by {with_views[key] / bare[key]:.1f} "
                  f"({with_views[key]} against {bare[key]} ms)", flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_insert", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="10,450,4500", help="rows per insert, comma-separated sizes")
    parser.add_argument("--inserts", type=int, default=10, help="inserts per table and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per size (median)")
    parser.add_argument("--use-test-servers", action="store_true",
                        help="use the ClickHouse server of ADSERVER_TEST_CLICKHOUSE_URL")
    args = parser.parse_args(argv)
    sizes = [int(v) for v in args.rows.split(",") if v.strip()]
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-insert-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, workers=1)
    database = f"bench_insert_{os.getpid()}"
    try:
        if args.use_test_servers:
            url = os.environ["ADSERVER_TEST_CLICKHOUSE_URL"]
            servers_dir = os.environ.get("ADSERVER_TEST_SERVERS_DIR")
            pid = server_pids(Path(servers_dir)).get("clickhouse") if servers_dir else None
        else:
            stack.start_servers()
            url = stack.env["ADSERVER_CLICKHOUSE_URL"]
            pid = server_pids(workdir / "servers").get("clickhouse")
        env = {**stack.env, "ADSERVER_CLICKHOUSE_URL": url.rsplit("/", 1)[0] + "/" + database,
               "ADSERVER_SECRET_KEY": stack.env.get("ADSERVER_SECRET_KEY") or secrets.token_urlsafe(32),
               "ADSERVER_DATA_DIR": str(workdir / "var")}
        subprocess.run([PY, "-m", "adserver", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
        stores = Stores(load_settings(env))
        ch = stores.clickhouse()
        try:
            views = ch.execute(VIEWS, {"source": f"% FROM {database}.events %"})[0][0]
            results = measure(ch, pid, sizes, args.inserts, args.rounds)
        finally:
            ch.execute(f"DROP DATABASE IF EXISTS {database}")
            stores.close()
        _print(results, views)
        return results
    finally:
        if not args.use_test_servers:
            stack.close()


if __name__ == "__main__":
    main()
    raise SystemExit(0)
