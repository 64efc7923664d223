"""Refill the report tables from ``events`` (after restoring events, changing a view, or adding the
reports to a database that already had events). Run it while the writer is stopped: events
inserted during a rebuild could be counted twice."""

from __future__ import annotations

from collections.abc import Callable

from adserver.console import attribution
from tracker import schema
from tracker.clickhouse import ClickHouse


def rebuild_reports(ch: ClickHouse, progress: Callable[[int, int], None] | None = None) -> int:
    """Empty every report table, run each view's SELECT over ``events`` a month at a time, then
    resolve the attribution of every settled order. Returns the number of months processed."""
    tables = list(dict.fromkeys(t for t, _ in schema.REPORT_VIEWS)) + list(schema.REPORT_CACHES)
    for table in tables:
        schema.truncate_stored(ch, table)  # on a cluster, each shard's local table
    months = [int(r[0]) for r in ch.execute("SELECT DISTINCT toYYYYMM(ts) AS m FROM events ORDER BY m")]
    for done, month in enumerate(months, 1):
        for table, select in schema.REPORT_VIEWS:
            sql = select.replace("FROM events", "FROM (SELECT * FROM events WHERE toYYYYMM(ts) = %(month)s)", 1)
            ch.execute("INSERT INTO " + table + " " + sql, {"month": month})  # table from the schema registry
        if progress:
            progress(done, len(months))
    attribution.forget_kept()
    attribution.keep_all(ch)
    return len(months)
