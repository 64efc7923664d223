#!/usr/bin/env python3
"""Report latency on the pre-aggregated tables against the same report computed from raw events.

Usage, from the checkout (after ``python -m scripts.gen_events`` filled the database)::

    python -m scripts.bench_reports [--clickhouse clickhouse://127.0.0.1:9000/adserver] [--advertiser bench]
        [--from 2026-03-02 --to 2026-03-31] [--runs 5] [--raw-runs 1]

For each breakdown it prints the median time of ``--runs`` reports (rows + totals, conversions
included) on the pre-aggregated tables, the time of the same report from raw ``events``, and
checks that both give the same totals. The first report of a range also keeps the resolved
attribution of its orders (once); that one-off time is printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from datetime import date, timedelta

from adserver.console import attribution
from adserver.console.report import GROUPS, ReportRequest, run_report
from scripts.gen_events import connect


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_reports", description="Time reports: pre-aggregated tables vs raw events.")
    parser.add_argument("--clickhouse", help="clickhouse://host:9000/db (default: ADSERVER_CLICKHOUSE_URL)")
    parser.add_argument("--advertiser", default="bench")
    parser.add_argument("--from", dest="start", type=date.fromisoformat)
    parser.add_argument("--to", dest="end", type=date.fromisoformat)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--raw-runs", type=int, default=1)
    args = parser.parse_args(argv)
    ch = connect(args.clickhouse)
    rows = ch.execute("SELECT timezone FROM advertisers FINAL WHERE id = %(a)s", {"a": args.advertiser})
    timezone = rows[0][0] if rows else "UTC"
    span = ch.execute("SELECT toDate(min(ts), %(tz)s), toDate(max(ts), %(tz)s) FROM events "
                      "WHERE advertiser = %(a)s AND event = 'impression'", {"a": args.advertiser, "tz": timezone})[0]
    end = args.end or span[1]
    start = args.start or max(span[0], end - timedelta(days=29))
    counts = dict(ch.execute("SELECT event, count() FROM events WHERE advertiser = %(a)s GROUP BY event",
                             {"a": args.advertiser}))
    print(f"advertiser {args.advertiser!r}, {start} .. {end} ({timezone}); events: "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) + f"; total {sum(counts.values()):,}")
    sizes = ch.execute("SELECT table, sum(rows) FROM system.parts WHERE database = currentDatabase() AND active "
                       "AND table LIKE 'report_%%' GROUP BY table ORDER BY table")
    print("report tables (rows): " + ", ".join(f"{t} {n:,}" for t, n in sizes))

    request = ReportRequest(args.advertiser, start, end, "day", timezone)
    s, e = request.bounds()
    attribution.forget_kept()
    started = time.perf_counter()
    kept = attribution.keep_resolutions(ch, args.advertiser, s, e)
    print(f"one-off: resolving and keeping the attribution of {kept:,} orders took {time.perf_counter() - started:.2f} s")

    print(f"\n{'group_by':<10} {'pre-aggregated':>15} {'raw events':>12} {'speed-up':>9}  totals equal")
    for group_by in GROUPS:
        req = replace(request, group_by=group_by)
        agg_time, agg = timed(lambda req=req: run_report(ch, req), args.runs)
        raw_time, raw = timed(lambda req=req: run_report(ch, req, source="raw"), args.raw_runs)
        same = (agg.totals.impressions, agg.totals.clicks, agg.totals.conversions, round(agg.totals.revenue, 2)) == (
            raw.totals.impressions, raw.totals.clicks, raw.totals.conversions, round(raw.totals.revenue, 2))
        print(f"{group_by:<10} {agg_time * 1000:>12.0f} ms {raw_time * 1000:>9.0f} ms {raw_time / agg_time:>8.0f}x  {same}")

    def dashboard():
        report = run_report(ch, request)
        run_report(ch, request.previous(), with_rows=False)
        run_report(ch, replace(request, group_by="placement"))
        return report

    dash_time, report = timed(dashboard, args.runs)
    t = report.totals
    print(f"\ndashboard page's queries (day rows + totals, previous period, placement table): {dash_time * 1000:.0f} ms")
    print(f"totals: {t.impressions:,} impressions, {t.clicks:,} clicks, CTR {t.ctr:.3%}, {t.visitors:,} visitors, "
          f"{t.conversions:,} conversions ({t.post_click_conversions:,} post-click), revenue {t.revenue:,.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
