"""The migrations' registry (numbered, frozen, one module each), their cluster form, and the start-up check
that keeps servers off a schema older than their code."""

from __future__ import annotations

import hashlib
import pkgutil
import re
import secrets
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.schema import cluster as cluster_schema
from tracker.schema import migrations
from tracker.schema.reports import recreate_views
from tracker.settings import parse_clickhouse_url

# What each released migration executes. A database that ran a migration will never run it again, so
# changing one (or a DDL constant it uses) leaves databases in use with another schema than new ones:
# change the schema with a new migration instead. A new migration adds its line here.
FINGERPRINTS = {
    1: "e448cd424ed2f0d9",
    2: "76571086c09d62f5",
    3: "cc39b3d9eb224d1f",
    4: "c03feb27b7ead716",
    5: "c44d569b26b1f389",
    6: "ee2c1579aca3ba6e",
    7: "167f458e3de056db",
    8: "5189de2323e087c7",
    10: "68e2ea84972fe118",
    11: "f43db7135255712c",
    12: "fd5e037e0876ffec",
    13: "f04ad2e6d651e51b",
    14: "4d0bddae714b85d8",
    15: "2bd70cc2e632c9fc",
    16: "fe28206d9a10fa04",
    17: "b39df16e2b619d7b",
}


def fingerprint(migration: schema.Migration) -> str:
    digest = hashlib.sha256()
    for statement in migration.statements:
        if isinstance(statement, schema.CopyRows):
            text = f"CopyRows({statement.target},{statement.copies})"
        else:
            text = statement if isinstance(statement, str) else \
                f"AddColumn({statement.table},{statement.column},{statement.definition})"
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]


def test_released_migrations_are_frozen():
    assert {m.version: fingerprint(m) for m in schema.MIGRATIONS} == FINGERPRINTS


def test_numbers_are_unique_and_contiguous_but_for_the_documented_gaps():
    versions = [m.version for m in schema.MIGRATIONS]
    assert len(set(versions)) == len(versions)
    assert versions == sorted(versions)
    assert set(versions).isdisjoint(schema.UNUSED)
    assert set(versions) | set(schema.UNUSED) == set(range(1, max(versions) + 1))


def test_each_migration_is_a_module_named_by_its_number():
    modules = [m.name for m in pkgutil.iter_modules(migrations.__path__) if m.name.startswith("m")]
    numbers = [int(re.match(r"m(\d{4})_\w+$", name).group(1)) for name in modules]
    assert sorted(numbers) == [m.version for m in schema.MIGRATIONS]
    assert len(set(numbers)) == len(numbers)


def test_every_table_has_a_layout_and_the_tests_empty_it():
    created = {re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)", s).group(1)
               for m in schema.MIGRATIONS for s in m.statements
               if isinstance(s, str) and s.lstrip().startswith("CREATE TABLE")}
    dropped = {re.match(r"DROP TABLE IF EXISTS (\w+)$", s).group(1)
               for m in schema.MIGRATIONS for s in m.statements if isinstance(s, str) and s.startswith("DROP TABLE")}
    assert created - dropped == set(schema.TABLES)
    assert {"report_ads_hourly", "report_hourly"} <= created and "report_ads_hourly" in dropped
    assert set(schema.LAYOUTS) == created | {"schema_migrations"}  # old migrations keep their cluster form


# --- the cluster form ----------------------------------------------------------------------------

def test_a_visitor_table_becomes_replicated_local_tables_and_a_distributed_one():
    local, distributed = cluster_schema.cluster_form(schema.EVENTS_TABLE, "c1", "db", schema.LAYOUTS)
    assert local.startswith("CREATE TABLE IF NOT EXISTS db.events_local ON CLUSTER c1 (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/events', '{replica}')" in local
    assert "PARTITION BY toYYYYMM(ts)" in local and "ORDER BY (advertiser, event, ts)" in local
    assert distributed == ("CREATE TABLE IF NOT EXISTS db.events ON CLUSTER c1 AS db.events_local "
                           "ENGINE = Distributed(c1, db, events_local, if(uid = '', toUInt64(rand()), cityHash64(uid)))")


def test_engines_with_arguments_keep_them_after_the_replication_ones():
    local, _ = cluster_schema.cluster_form(schema.REPORT_ORDER_TOUCHES_TABLE, "c1", "db", schema.LAYOUTS)
    assert ("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/report_order_touches', "
            "'{replica}', version)") in local
    local, distributed = cluster_schema.cluster_form(schema.REPORT_ADS_HOURLY_TABLE, "c1", "db", schema.LAYOUTS)
    assert "ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/db/report_ads_hourly', " \
           "'{replica}')" in local
    assert distributed.endswith("Distributed(c1, db, report_ads_hourly_local, rand())")


def test_registries_are_one_replicated_table_on_every_node():
    (statement,) = cluster_schema.cluster_form(schema.ADVERTISERS_TABLE, "c1", "db", schema.LAYOUTS)
    assert statement.startswith("CREATE TABLE IF NOT EXISTS db.advertisers ON CLUSTER c1 (")
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/db/advertisers', '{replica}', version)" in statement
    (add,) = cluster_schema.cluster_form(schema.AddColumn("advertisers", "x", "UInt8 DEFAULT 0"), "c1", "db",
                                         schema.LAYOUTS)
    assert add.sql == "ALTER TABLE db.advertisers ADD COLUMN x UInt8 DEFAULT 0"  # replication carries it


def test_views_read_the_local_events_and_fill_the_local_tables():
    (view,) = cluster_schema.cluster_form(schema.REPORT_ADS_HOURLY_VIEW, "c1", "db", schema.LAYOUTS)
    assert view.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS db.report_ads_hourly_mv ON CLUSTER c1 "
                           "TO db.report_ads_hourly_local AS ")
    assert "FROM db.events_local\n" in view and "FROM events" not in view
    drop, create = (cluster_schema.cluster_form(s, "c1", "db", schema.LAYOUTS)[0]
                    for s in recreate_views(schema.REPORT_VIEWS_V15[:1]))
    assert drop == "DROP TABLE IF EXISTS db.report_ads_hourly_mv ON CLUSTER c1"
    assert "TO db.report_ads_hourly_local AS" in create


def test_a_dropped_sharded_table_goes_on_every_node_with_its_local_tables():
    assert cluster_schema.cluster_form("DROP TABLE IF EXISTS report_ads_daily", "c1", "db", schema.LAYOUTS) == (
        "DROP TABLE IF EXISTS db.report_ads_daily ON CLUSTER c1",
        "DROP TABLE IF EXISTS db.report_ads_daily_local ON CLUSTER c1")
    assert cluster_schema.cluster_form("DROP TABLE IF EXISTS report_ads_daily_mv", "c1", "db", schema.LAYOUTS) == (
        "DROP TABLE IF EXISTS db.report_ads_daily_mv ON CLUSTER c1",)


def test_a_copy_runs_once_through_the_distributed_tables():
    copy = next(s for m in schema.MIGRATIONS for s in m.statements if isinstance(s, schema.CopyRows))
    assert cluster_schema.cluster_form(copy, "c1", "db", schema.LAYOUTS) == (copy,)
    m16 = next(m for m in schema.MIGRATIONS if m.version == 16)
    objects, _ = cluster_schema.current_schema([*m16.statements], "c1", "db", schema.LAYOUTS)
    assert "report_hourly_local" in objects and "report_hourly_mv" in objects
    objects, _ = cluster_schema.current_schema([s for m in schema.MIGRATIONS for s in m.statements], "c1", "db",
                                               schema.LAYOUTS)
    assert {"report_hours_local", "report_hours_mv"} <= set(objects) and "report_hourly_local" not in objects


def test_added_columns_go_to_the_local_and_the_distributed_tables():
    local, distributed = cluster_schema.cluster_form(schema.AddColumn("events", "consent", "UInt8 DEFAULT 0"),
                                                     "c1", "db", schema.LAYOUTS)
    assert local.sql == "ALTER TABLE db.events_local ADD COLUMN consent UInt8 DEFAULT 0" and local.cluster == "c1"
    assert distributed.sql == "ALTER TABLE db.events ADD COLUMN consent UInt8 DEFAULT 0" and distributed.each_node


def test_truncating_a_table_empties_it_where_its_rows_are(server_ch):
    server_ch.execute("INSERT INTO advertisers (id, name) VALUES", [("t-trunc", "T")])
    schema.truncate_stored(server_ch, "advertisers")
    assert server_ch.execute("SELECT count() FROM advertisers WHERE id = 't-trunc'") == [(0,)]


def test_every_statement_of_every_migration_has_a_cluster_form():
    for migration in schema.MIGRATIONS:
        for statement in migration.statements:
            assert cluster_schema.cluster_form(statement, "c1", "db", schema.LAYOUTS)
    with pytest.raises(ValueError, match="no cluster form"):
        cluster_schema.cluster_form("OPTIMIZE TABLE events", "c1", "db", schema.LAYOUTS)
    with pytest.raises(ValueError, match="unknown table"):
        cluster_schema.cluster_form(schema.AddColumn("nowhere", "x", "UInt8"), "c1", "db", schema.LAYOUTS)


# --- servers refuse a schema older than their code ----------------------------------------------

@pytest.fixture
def fresh_url(clickhouse_url: str) -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards."""
    url = f"{clickhouse_url.rsplit('/', 1)[0]}/pending_{secrets.token_hex(4)}"
    yield url
    ch = DriverClickHouse(parse_clickhouse_url(url.rsplit("/", 1)[0] + "/default"), connect_timeout=5, timeout=60)
    ch.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")
    ch.close()


def _client(url: str) -> DriverClickHouse:
    return DriverClickHouse(parse_clickhouse_url(url), connect_timeout=5, timeout=60)


def test_pending_names_what_a_database_lacks(fresh_url):
    ch = _client(fresh_url)
    assert schema.pending(ch) == list(schema.MIGRATIONS)  # no database yet
    ch.create_database()
    schema.applied_versions(ch)  # the record, empty
    ch.insert("schema_migrations", ("version", "name", "applied_at"),
              [(m.version, m.name, datetime(2026, 1, 1)) for m in schema.MIGRATIONS[:-2]])
    assert [m.version for m in schema.pending(ch)] == [m.version for m in schema.MIGRATIONS[-2:]]
    with pytest.raises(schema.SchemaNotCurrent) as info:
        schema.require_current(ch)
    numbers = ", ".join(str(m.version) for m in schema.MIGRATIONS[-2:])
    assert f"lacks migration(s) {numbers}" in str(info.value) and "python -m adserver migrate" in str(info.value)
    ch.close()


def test_the_app_and_the_writer_refuse_to_start_until_migrate_ran(fresh_url, tmp_path, redis_url, monkeypatch):
    from adserver import create_app
    from tests.conftest import server_settings
    from tracker.writer.__main__ import main as writer_main

    settings = server_settings(tmp_path / "var", redis_url, fresh_url)
    with pytest.raises(schema.SchemaNotCurrent, match=r"lacks migration\(s\) 1, 2, 3"):
        create_app(settings)
    for name, value in {"ADSERVER_SECRET_KEY": settings.secret_key, "ADSERVER_REDIS_URL": redis_url,
                        "ADSERVER_CLICKHOUSE_URL": fresh_url, "ADSERVER_DATA_DIR": str(tmp_path / "var")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", ["tracker.writer"])
    assert writer_main() == 3

    ch = _client(fresh_url)
    ch.create_database()
    assert [m.version for m in schema.migrate(ch)] == [m.version for m in schema.MIGRATIONS]
    ch.close()
    app = create_app(settings)  # starts now
    app.extensions["adserver"].close()


def test_commands_other_than_migrate_refuse_a_pending_schema(fresh_url, tmp_path, redis_url):
    from click.testing import CliRunner

    from adserver.cli import PROG_NAME, main
    from tests.conftest import server_settings

    settings = server_settings(tmp_path / "var", redis_url, fresh_url)

    def run(*argv: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(argv), obj=settings, catch_exceptions=False, prog_name=PROG_NAME)
        return result.exit_code, result.output

    code, out = run("create-advertiser", "shop")
    assert code == 1 and "error (schema_not_current)" in out and "python -m adserver migrate" in out, out
    code, out = run("migrate")
    assert code == 0 and f"({len(schema.MIGRATIONS)} migrations, {len(schema.MIGRATIONS)} applied now)" in out, out
    code, out = run("create-advertiser", "shop")
    assert code == 0, out
