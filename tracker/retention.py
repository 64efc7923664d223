"""Data removal in ClickHouse: a visitor's rows on request, and raw events past their retention.

Retention drops whole monthly partitions (ClickHouse 18.16 has no TTL clause, and dropping a
partition is instant and leaves no mutation behind). Visitors' rows are removed with an
``ALTER TABLE ... DELETE`` mutation in every MergeTree table that has a ``uid`` column, so tables
added later (aggregates keyed by visitor) are covered without a list to keep in sync. Mutations
rewrite whole tables, so visitors are removed in batches: requests wait in ``tracker.forget``'s queue.

On a cluster the rows live in each shard's ``<table>_local``: rows are counted through the public
(``Distributed``) table, which reads every shard, and removed with ``schema.alter_stored``, which
alters each shard's local table on one of its replicas (replication carries it to the other). Partitions are listed on every replica, since each shard holds its own months.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tracker import schema
from tracker.clickhouse import ClickHouse

# Raw events, and the per-visitor copy of ad events the reports keep for attribution.
RAW_TABLES = ("events", "bad_events", "report_touchpoints")


def visitor_tables(ch: ClickHouse) -> list[str]:
    rows = ch.execute(
        "SELECT c.table FROM system.columns AS c "
        "WHERE c.database = %(db)s AND c.name = 'uid' AND c.type = 'String' AND c.table IN ("
        "  SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree')"
        " ORDER BY c.table",
        {"db": ch.database},
    )
    # On a cluster the MergeTree tables are the shards' ``<table>_local``: name them by their public table.
    return sorted({r[0][:-len("_local")] if r[0].endswith("_local") else r[0] for r in rows})


def forget_visitors(ch: ClickHouse, uids: Sequence[str]) -> dict[str, int]:
    """Schedule the deletion of every row of ``uids``: one mutation per table that holds any of them
    (a table without any is only read). Returns the rows found per table."""
    found: dict[str, int] = {}
    if not uids:
        return found
    params = {"uids": tuple(uids)}
    for table in visitor_tables(ch):
        count = ch.execute("SELECT count() FROM " + table + " WHERE uid IN %(uids)s", params)[0][0]
        if count:
            schema.alter_stored(ch, table, "DELETE WHERE uid IN %(uids)s", params)
        found[table] = int(count)
    return found


def expired_partitions(ch: ClickHouse, table: str, days: int, now: datetime | None = None) -> list[str]:
    """Monthly partitions (``YYYYMM``) of ``table`` whose every day is older than ``days``."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    cutoff = now - timedelta(days=days)
    replicas = ch.replicas()
    stored = table + "_local" if replicas else table
    try:
        rows = {row for node in replicas or [ch] for row in node.execute(
            "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s AND table = %(t)s AND active",
            {"db": ch.database, "t": stored},
        )}
    finally:
        for node in replicas:
            node.close()
    expired = []
    for (partition,) in rows:
        text = str(partition).strip("'")
        if len(text) != 6 or not text.isdigit():
            continue
        year, month = int(text[:4]), int(text[4:])
        first_of_next = datetime(year + (month == 12), month % 12 + 1, 1)
        if first_of_next <= cutoff:
            expired.append(text)
    return sorted(expired)


def drop_expired(ch: ClickHouse, days: int, now: datetime | None = None) -> dict[str, list[str]]:
    """Drop raw-event partitions past the retention; returns what was dropped per table."""
    dropped: dict[str, list[str]] = {}
    for table in RAW_TABLES:
        parts = expired_partitions(ch, table, days, now)
        for partition in parts:
            schema.alter_stored(ch, table, "DROP PARTITION %(p)s", {"p": int(partition)})
        dropped[table] = parts
    return dropped
