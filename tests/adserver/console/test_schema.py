"""The report schema on both backends: migrations run twice, the time zone column is added once."""

from __future__ import annotations

import re

from tracker import schema


def test_migrations_are_idempotent(any_ch):
    assert schema.migrate(any_ch) == []
    add = next(s for s in schema.MIGRATIONS[3].statements if isinstance(s, schema.AddColumn))
    add.apply(any_ch)  # the column exists: nothing to do, no error
    add.apply(any_ch)
    columns = any_ch.execute("SELECT name, default_expression FROM system.columns WHERE database = currentDatabase() "
                             "AND table = 'advertisers' AND name = 'timezone'")
    assert columns == [("timezone", "'UTC'")]
    live = {*schema.TABLES, *(f"{table}_mv" for table, _ in schema.REPORT_VIEWS)}
    again = [s for s in schema.MIGRATIONS[3].statements
             if isinstance(s, str) and re.match(r"\s*CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (\w+)", s)[1] in live]
    assert len(again) > 5
    for statement in again:  # not those a later migration dropped: they would come back
        any_ch.execute(statement)  # every CREATE is IF NOT EXISTS


def test_every_report_table_is_truncated_by_the_tests(any_ch):
    tables = {r[0] for r in any_ch.execute(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine LIKE '%MergeTree'")}
    assert tables - {"schema_migrations"} <= set(schema.TABLES)


def test_an_advertiser_saved_before_the_migration_reads_as_utc(any_ch):
    from datetime import datetime

    any_ch.insert("advertisers", schema.ADVERTISERS_COLUMNS, [("old", "Old", "CNY", 0, 1, datetime(2026, 1, 1))])
    assert any_ch.execute("SELECT timezone FROM advertisers FINAL WHERE id = 'old'") == [("UTC",)]


def test_views_survive_odd_events(any_ch):
    from tests.adserver.console.conftest import insert, row

    insert(any_ch, [row(datetime_(), "shop", "impression", "u1", ["A", "B", "C"], ["recent"]),  # fewer reasons
                    row(datetime_(), "shop", "impression", "", [], []),  # no products
                    row(datetime_(), "shop", "purchase", "u1", ["A"], order_id="")])  # no order id
    assert any_ch.execute("SELECT count() FROM events") == [(3,)]
    reasons = dict(any_ch.execute("SELECT key, sumMerge(impressions) FROM report_hours WHERE dim = 'reason' GROUP BY key"))
    assert reasons == {"recent": 1, "": 2}


def datetime_():
    from datetime import datetime

    return datetime(2026, 3, 10, 12)
