"""Migrations 16 and 17 move the reports of a database in use into one table per time grain (16), then into
the same tables with smaller granules (17): the rows of the tables they replace are copied, not lost, on
both backends and the cluster; a copy run twice does not count twice."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import date, datetime

import pytest

from adserver.console import attribution
from adserver.console.report import ReportRequest, run_report
from tests.adserver.console.test_queries import generate
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.schema.migrations import _run
from tracker.settings import parse_clickhouse_url

OLD_TABLES = (*schema.REPORT_GRAIN_TABLES["hour"], *schema.REPORT_GRAIN_TABLES["day"])


@pytest.fixture(params=["server", "chdb", "cluster"])
def at_migration_15(request, clickhouse_url):
    """A database of its own with migrations 1-15 applied (none after), dropped afterwards; on the
    cluster, migrated in its cluster form through the first node."""
    name = f"grains_{secrets.token_hex(4)}"
    cluster = request.getfixturevalue("cluster") if request.param == "cluster" else None
    restore = None
    if cluster is not None:
        url = replace(parse_clickhouse_url(cluster.clickhouse_nodes[0]), database=name)
        ch = DriverClickHouse(url, connect_timeout=5, timeout=120, cluster=cluster.name)
        ch.create_database()
    elif request.param == "server":
        base = clickhouse_url.rsplit("/", 1)[0]
        ch = DriverClickHouse(parse_clickhouse_url(f"{base}/{name}"), connect_timeout=5, timeout=60)
        ch.create_database()
    else:
        ch = request.getfixturevalue("chdb_ch")
        ch.execute(f"CREATE DATABASE {name}")
        restore = ch.database
        ch.execute(f"USE {name}")
        ch.database = name
    upto = [m for m in schema.MIGRATIONS if m.version <= 15]
    _run(ch, schema.MIGRATIONS_TABLE)
    for migration in upto:
        for statement in migration.statements:
            _run(ch, statement)
    ch.insert("schema_migrations", ("version", "name", "applied_at"),
              [(m.version, m.name, datetime(2026, 1, 1)) for m in upto])
    yield ch
    if restore:
        ch.execute(f"USE {restore}")
        ch.database = restore
    ch.execute(f"DROP DATABASE IF EXISTS {name}" + (f" ON CLUSTER {cluster.name}" if cluster is not None else ""))
    if restore is None:
        ch.close()


def reports(ch) -> dict:
    out = {}
    for group_by in ("day", "placement", "campaign", "sku", "reason"):
        attribution.forget_kept()
        request = ReportRequest("shop", date(2026, 3, 2), date(2026, 3, 4), group_by, "Asia/Shanghai")
        out[group_by] = tuple([row.as_dict() for row in [*report.rows, report.totals]]
                              for report in (run_report(ch, request), run_report(ch, request, source="raw")))
    return out


def test_the_old_tables_rows_are_copied_into_the_grain_tables(at_migration_15):
    ch = at_migration_15
    generate(ch, days=5, impressions=6000)  # aggregated by the views of migrations 4-15
    old = {t: ch.execute(f"SELECT sumMerge(impressions), sumMerge(clicks) FROM {t}") for t in OLD_TABLES}
    assert all(rows[0][0] > 0 for rows in old.values())
    for table in ("events", "report_touchpoints"):  # from here, the reports can only come from the copied rows
        schema.truncate_stored(ch, table)
    assert [m.version for m in schema.migrate(ch)] == [16, 17]
    tables = {r[0] for r in ch.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    gone = {*OLD_TABLES, "report_hourly", "report_daily"}
    assert not tables & {*gone, *(f"{t}_mv" for t in gone)}
    assert {"report_hours", "report_days", "report_hours_mv", "report_days_mv"} <= tables
    for table in ("report_hours", "report_days"):  # migration 17: smaller granules
        (create,), = ch.execute("SELECT create_table_query FROM system.tables WHERE database = currentDatabase() "
                                "AND name = %(name)s", {"name": f"{table}_local" if ch.cluster else table})
        assert "index_granularity = 1024" in create, create
    dims = {"ads": "placement", "campaigns": "campaign", "reasons": "reason", "products": "sku"}
    for table, rows in old.items():
        grain = "report_hours" if table.endswith("_hourly") else "report_days"
        assert ch.execute(f"SELECT sumMerge(impressions), sumMerge(clicks) FROM {grain} WHERE dim = %(dim)s",
                          {"dim": dims[table.split("_")[1]]}) == rows, table


def test_reports_after_the_migration_equal_the_raw_events(at_migration_15):
    ch = at_migration_15
    generate(ch, days=5, impressions=6000)
    m16 = next(m for m in schema.MIGRATIONS if m.version == 16)
    copy = next(s for s in m16.statements if isinstance(s, schema.CopyRows))
    _run(ch, m16.statements[0])  # an old view dropped: the migration had begun
    _run(ch, schema.REPORT_HOURLY_TABLE)
    _run(ch, copy)
    _run(ch, copy)  # interrupted after its copy and run again: the copy starts over
    schema.migrate(ch)
    _run(ch, copy)  # the old tables are gone: nothing to copy, nothing emptied
    for group_by, (agg, raw) in reports(ch).items():
        assert agg == raw, group_by
        assert agg[-1]["impressions"] > 1000 and agg[-1]["clicks"] > 10
    # what the new views aggregate from now on adds to what was copied
    generate(ch, days=5, impressions=600)
    for group_by, (agg, raw) in reports(ch).items():
        assert agg == raw, group_by


def test_the_copy_names_every_state_each_old_table_had():
    for copies in schema.REPORT_MOVES.values():
        for table, sql in copies:
            assert f" FROM {table}" in sql and "sumMerge" not in sql
    ads = dict(schema.REPORT_MOVES["hour"])["report_ads_hourly"]
    assert "spend" in ads and "impression_share" not in ads and "hides" in ads
    reasons = dict(schema.REPORT_MOVES["day"])["report_reasons_daily"]
    assert "visitors" in reasons and "hides" not in reasons and "spend" not in reasons
