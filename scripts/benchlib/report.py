"""``docs/benchmarks.md``: the figures of a ``python -m scripts.bench`` run as Markdown, hand-written notes kept."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from .stack import ROOT
from .targets import render_targets


def median_run(runs: list[dict]) -> dict:
    """The run with the median req/s (its latencies come with it), plus every run's req/s."""
    ordered = sorted(runs, key=lambda x: x["rps"])
    return {**ordered[len(ordered) // 2], "all_rps": [round(x["rps"]) for x in runs]}


NOTES_MARK = "<!-- Written by hand below this line: make bench keeps it. -->"


def publish(render_fn, results: dict, args) -> None:
    """Render the figures over the hand-written notes of ``args.out``, print and write it (and ``args.json``)."""
    out = Path(args.out)
    report = render_fn(results, args, kept_notes(out))
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


def kept_notes(path: Path) -> str:
    """The hand-written part of the previous document (profiles, analysis), kept across runs."""
    text = path.read_text() if path.exists() else ""
    return text[text.index(NOTES_MARK):] if NOTES_MARK in text else NOTES_MARK + "\n"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def source_state() -> tuple[str, bool]:
    """The commit and whether tracked files differ from it (a long run must name what it started with)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return commit, bool(dirty)


def render(r: dict, args, notes: str = "") -> str:
    commit, dirty = r["commit"]
    bare = r["bare"]["rps"]
    seed = r["seed"]
    lines = [
        "# Benchmarks", "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit `{commit}`"
        f"{' (with uncommitted changes in the tree)' if dirty else ''} on "
        f"{platform.machine()} with {os.cpu_count()} cores ({platform.python_implementation()} "
        f"{platform.python_version()}), by `make bench` (`python -m scripts.bench`), in {r['total_seconds']} s "
        f"(web {r['web_seconds']} s, reports {r.get('reports_seconds', 0)} s). The machine was shared with "
        "other work: load generator, servers, Redis and ClickHouse share the two cores, so the ratios to the "
        "bare app measured in the same run are the figures to compare.", "",
    ]
    if r.get("targets"):
        modes = " and ".join(r["targets"])
        lines += [
            "## Cost per request: the targets", "",
            f"Setups: {modes} (cluster: the product on the loopback cluster, ZooKeeper, ClickHouse 2 shards x 2 "
            f"replicas, a Redis Cluster of 3 primaries with a replica each, {args.web_partitions} stream "
            "partitions), measured one after the other, each with its own bare app and with the other's servers "
            "stopped, under the same gunicorn settings, demo data and number of visitors. Ratios: in each of a "
            f"setup's {args.runs} wrk rounds the bare app and the endpoints ran back to back; the median of the "
            "rounds' ratios, each round's in the last column. Ad p99: "
            f"{args.p99_runs} open-loop runs per setup at half of that setup's median ad req/s; the "
            f"worst run counts. Writer: {args.target_writers} writer processes on as many stream partitions, "
            f"{args.writer_events:,} events pre-filled, spawn to every row visible. Lag: 300 pixel hits, each to its "
            "row visible through the setup's `events` table.", "",
            *render_targets(r), "",
        ]
    lines += [
        "## Web: product against a bare Flask app", "",
        f"wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.runs} runs per endpoint interleaved "
        "(bare, pixel, ad, click, bare, ...; then, in cluster mode, bare, pixel, ad, bare, ... with the ratios to "
        "that run's own bare app); the table shows the run with the median req/s (all runs in the "
        f"last column). gunicorn with `deploy/gunicorn.conf.py` ({args.workers} workers) for both apps. Every "
        "request sends a desktop Chrome `User-Agent`. Requests rotate (`scripts/rotate.lua`) over "
        f"{args.visitors:,} visitors whose profiles were filled by {seed['requests']:,} pixel hits first "
        f"({seed['rps']:,.0f} req/s, {seed['non_2xx']} errors): the pixel over views of 2-3 products of one or "
        "two stores per visitor, the ad (`/ad?p=demo-feed&size=300x250`) over the visitors' cookies, the click "
        f"over {r['click']['links']:,} click links of {args.click_impressions} impressions with their visitors' "
        "cookies. For the bench only: click-flood limits (`ADSERVER_CLICK_LIMIT_VISITOR`, "
        "`ADSERVER_CLICK_LIMIT_ADDRESS`) raised to 10^9, since every request comes from 127.0.0.1, and both "
        "demo campaigns' daily budgets raised to 10^8, so they are not spent out mid-run (the budget scripts "
        "still run).", "",
        "| endpoint | req/s | ratio to bare | p50 ms | p99 ms | non-2xx/3xx | req/s of each run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("bare", "pixel", "ad", "click", "bare@cluster", "pixel@cluster", "ad@cluster"):
        if name not in r:
            continue
        x = r[name]
        own_bare = r["bare@cluster"]["rps"] if name.endswith("@cluster") else bare
        lines.append(f"| {name} | {x['rps']:,.0f} | {x['rps'] / own_bare:.2f} | {_ms(x['p50_ms'])} | {_ms(x['p99_ms'])} "
                     f"| {x['non_2xx']} | {', '.join(f'{v:,}' for v in x['all_rps'])} |")
    half, bare_half = r["ad_half"], r["bare_half"]
    lines += [
        "", f"**Ad at half of its maximum rate** ({half['target_rps']:,.0f} req/s, open loop for {args.seconds} s, "
        "`scripts/benchlib/loadgen.py`: requests leave on schedule whatever the server does, latency counted from the "
        "scheduled time, 64 keep-alive connections; wrk cannot hold a rate and wrk2 is not packaged here): "
        f"achieved {half['rps']:,.0f} req/s, p50 **{_ms(half['p50_ms'])} ms**, p90 {_ms(half['p90_ms'])} ms, "
        f"p99 **{_ms(half['p99_ms'])} ms**, max {_ms(half['max_ms'])} ms, {half['non_2xx'] + half['errors']} "
        f"errors. The bare app at the same rate with the same generator: p50 {_ms(bare_half['p50_ms'])} ms, "
        f"p99 {_ms(bare_half['p99_ms'])} ms (the generator's own share).", "",
        "Ad decisions `/ad.json` gave the same 300 sampled visitors (path, fallback reason; winning campaign):", "",
        "| | paths | winners |", "|---|---|---|",
    ]
    for label, key in (("before the runs", "mix_before"), ("after the runs", "mix_after")):
        mix = r[key]
        lines.append(f"| {label} | {', '.join(f'{k} {v}' for k, v in mix['paths'].items())} "
                     f"| {', '.join(f'{k} {v}' for k, v in mix['winners'].items())} |")
    lag = r["lag"]
    lines += [
        "", f"End-to-end lag (pixel answered -> row visible in ClickHouse), {lag['seen']}/{lag['hits']} hits: "
        f"p50 {lag['p50_s']} s, p99 {lag['p99_s']} s.", "",
        "Ad unit bytes (HTML + CSS, without product images, a visitor with a profile; the promise is 8,192): "
        + ", ".join(f"{size} {n:,}" for size, n in r["ad_bytes"].items()) + ".", "",
    ]
    if "writer" in r:
        w = r["writer"]
        lines += [
            "## Writer", "",
            f"Writer ({w['writers']} process{'es' if w['writers'] > 1 else ''}, entries of {w.get('pack', 1)} "
            f"event{'s' if w.get('pack', 1) > 1 else ''}): {w['events']:,} events from "
            f"the stream into ClickHouse in {w['seconds']} s = "
            f"**{w['events_per_s']:,} events/s**.", "",
        ]
    if r.get("reports"):
        lines += [
            "## Reports at " + " and ".join(f"{x['impressions'] / 1e6:g} million" for x in r["reports"])
            + " impressions", "",
            "`scripts/gen_events.py` loads synthetic traffic of advertiser `bench` (30 days, Asia/Shanghai) into a "
            "`bench` database of the same ClickHouse server, cumulatively (the second volume adds what the first "
            f"lacks); a 30-day report is then timed, p50 of {args.report_runs} runs, after the one-off resolution of "
            "the orders' attribution (see `docs/reports.md`). `--skip-reports` leaves this out; it is most of the "
            "run time.", "",
            "| impressions | events in the table | load s | one-off s | by day ms | by product (sku) ms | dashboard page ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in r["reports"]:
            lines.append(f"| {x['impressions']:,} | {x['events']:,} | {x['generate_s']:,} | {x['one_off_s']} "
                         f"| **{x['by_day_ms']}** | {x['by_product_ms']} | {x['dashboard_ms']} |")
        lines.append("")
    return "\n".join(lines) + "\n" + notes
