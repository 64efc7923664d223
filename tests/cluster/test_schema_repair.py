"""``migrate`` brings every node of the 2 x 2 test cluster up to the schema, whatever the record says.

``schema_migrations`` is one table replicated to every node, so a node new to the cluster or emptied
reads every migration as applied. These tests take tables and columns away from some nodes behind
the record's back and check that ``migrate`` puts them back, that a node without its tables refuses
to serve, and that events and reports then use every shard again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from tests.waiting import wait_for
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.settings_parsers import parse_clickhouse_url

pytestmark = pytest.mark.slow


def client(url: str, database: str, cluster: str | None = None) -> DriverClickHouse:
    return DriverClickHouse(replace(parse_clickhouse_url(url), database=database), connect_timeout=5, timeout=120,
                            cluster=cluster)


@pytest.fixture
def database(cluster) -> Iterator[str]:
    """A database of this test's own, migrated on the cluster through the first node, dropped at the end."""
    name = f"{parse_clickhouse_url(cluster.clickhouse_url).database}_{secrets.token_hex(3)}"
    ch = client(cluster.clickhouse_nodes[0], name, cluster.name)
    try:
        ch.create_database()
        schema.migrate(ch)
    finally:
        ch.close()
    yield name
    admin = client(cluster.clickhouse_nodes[0], "default")
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {name} ON CLUSTER {cluster.name}")
    finally:
        admin.close()


def on_node(url: str, database: str, sql: str, params: dict | None = None) -> list[tuple]:
    ch = client(url, database)
    try:
        return ch.execute(sql, {"db": database, **(params or {})})
    finally:
        ch.close()


def layout(url: str, database: str) -> dict[str, tuple]:
    """Each table and view of the database on one node: its engine and its columns in their order."""
    engines = dict(on_node(url, database, "SELECT name, engine FROM system.tables WHERE database = %(db)s"))
    columns: dict[str, list] = {name: [] for name in engines}
    for table, *column in on_node(url, database, "SELECT table, name, type, default_kind, default_expression "
                                                 "FROM system.columns WHERE database = %(db)s"):
        columns[table].append(tuple(column))
    return {name: (engine, tuple(columns[name])) for name, engine in engines.items()}


def event(uid: str, n: int) -> tuple:
    return (datetime(2026, 11, 27, 8, 30), "shop", "impression", uid, "A1", ["A1"], ["recent"], "", 0.0, "CNY",
            "feed", secrets.token_hex(4), "300x250", 1, "desktop", "", "", f"{n}-0",
            "", 0.0, 0.0, 0, 0, 0, "", 0)


def repairs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("schema repaired: ")]


def test_a_shard_that_lost_its_tables_gets_them_back_from_migrate(cluster, database, caplog):
    nodes = cluster.clickhouse_nodes  # shard by shard: the last two are shard 2's replicas
    expected = layout(nodes[0], database)
    assert {name for name, (engine, _) in expected.items() if engine == "MaterializedView"}
    ch = client(nodes[0], database, cluster.name)
    ch.insert("advertisers", ("id", "name", "currency", "deleted", "version", "updated_at"),
              [("kept", "Kept", "CNY", 0, 1, datetime(2026, 11, 27))])
    # Shard 2 empties: every table and view but the record of migrations, which a node joining the
    # cluster gets first (migrate's first statement). Views first, then what they write to; a
    # replicated table's DROP also takes the replica out of ZooKeeper.
    order = {"MaterializedView": 0, "Distributed": 1}
    for url in nodes[2:]:
        for name, _ in sorted(expected.items(), key=lambda item: order.get(item[1][0], 2)):
            if name != "schema_migrations":
                on_node(url, database, f"DROP TABLE {database}.{name}")
    assert set(layout(nodes[3], database)) == {"schema_migrations"}

    shard2 = client(nodes[2], database, cluster.name)
    try:
        assert schema.pending(shard2) == []  # the record alone says nothing is missing
        with pytest.raises(schema.SchemaNotCurrent, match=r"lacks \d+ table\(s\).*python -m adserver migrate") as info:
            schema.require_current(shard2)
        assert {"events_local", "events", "report_hours_mv", "advertisers"} <= set(info.value.missing_tables)
    finally:
        shard2.close()
    schema.require_current(ch)  # shard 1 still has everything

    try:
        with caplog.at_level(logging.WARNING, logger="tracker.schema.migrations"):
            assert schema.migrate(ch) == []
        repaired = repairs(caplog)
        assert any(line.startswith(f"schema repaired: created {database}.events_local on shard 2 replica 1")
                   and "shard 2 replica 2" in line for line in repaired), repaired
        assert not any("shard 1" in line for line in repaired), repaired

        for url in nodes[1:]:
            assert layout(url, database) == expected, url  # same tables, engines, columns in the same order
        for url in nodes[2:]:
            node = client(url, database, cluster.name)
            try:
                schema.require_current(node)
            finally:
                node.close()
            on_node(url, database, f"SYSTEM SYNC REPLICA {database}.advertisers")
            assert on_node(url, database, "SELECT id, timezone FROM advertisers") == [("kept", "UTC")]

        rows = [event(secrets.token_hex(8), n) for n in range(300)]
        ch.insert_columns("events", schema.EVENTS_COLUMNS, [list(column) for column in zip(*rows)])
        per_shard = [on_node(url, database, "SELECT count() FROM events_local")[0][0] for url in (nodes[0], nodes[2])]
        assert sum(per_shard) == 300 and min(per_shard) > 0, per_shard  # both shards store events again
        (total,), = ch.execute("SELECT sumMerge(impressions) FROM report_hours WHERE dim = 'placement'")
        assert total == 300  # shard 2's views aggregate its events; reports read both shards
        (aggregated,), = on_node(nodes[2], database, "SELECT sumMerge(impressions) FROM report_hours_local "
                                                            "WHERE dim = 'placement'")
        assert aggregated == per_shard[1]

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="tracker.schema.migrations"):
            assert schema.migrate(ch) == []
        assert repairs(caplog) == []  # nothing left to repair
    finally:
        ch.close()


def test_an_add_column_finished_half_way_is_finished_by_migrate(cluster, database, caplog):
    nodes = cluster.clickhouse_nodes
    expected = layout(nodes[0], database)
    column, _ = schema.EVENTS_CONSENT_COLUMN  # the last column a migration added to events
    # As if the ALTER ... ON CLUSTER had reached shard 1 only: shard 2's first replica drops it, and
    # replication takes it from the second. A Distributed table, altered node by node, misses it
    # on one node, and a registry (one replicated table on every node) misses its last column everywhere.
    on_node(nodes[2], database, f"ALTER TABLE {database}.events_local DROP COLUMN {column}")
    on_node(nodes[3], database, f"ALTER TABLE {database}.events DROP COLUMN {column}")
    on_node(nodes[0], database, f"ALTER TABLE {database}.advertisers DROP COLUMN {schema.ADVERTISERS_DOMAINS_COLUMN}")

    def has(url: str, table: str, name: str) -> bool:
        return bool(on_node(url, database, "SELECT count() FROM system.columns WHERE database = %(db)s "
                                           "AND table = %(table)s AND name = %(name)s",
                            {"table": table, "name": name})[0][0])

    wait_for(lambda: not has(nodes[3], "events_local", column) and not any(
        has(url, "advertisers", schema.ADVERTISERS_DOMAINS_COLUMN) for url in nodes),
             60, "the DROP COLUMN replicated", tolerate=(), interval=0.2)
    assert has(nodes[0], "events_local", column)

    ch = client(nodes[0], database, cluster.name)
    try:
        with caplog.at_level(logging.WARNING, logger="tracker.schema.migrations"):
            assert schema.migrate(ch) == []
    finally:
        ch.close()
    assert sorted(repairs(caplog)) == sorted([
        f"schema repaired: added column {column} to {database}.events_local on shard 2 replica 1 "
        f"({parse_clickhouse_url(nodes[2]).host}:{parse_clickhouse_url(nodes[2]).port})",
        f"schema repaired: added column {column} to {database}.events on shard 2 replica 2 "
        f"({parse_clickhouse_url(nodes[3]).host}:{parse_clickhouse_url(nodes[3]).port})",
        f"schema repaired: added column {schema.ADVERTISERS_DOMAINS_COLUMN} to {database}.advertisers on "
        f"shard 1 replica 1 ({parse_clickhouse_url(nodes[0]).host}:{parse_clickhouse_url(nodes[0]).port})",
    ])
    for url in nodes:  # migrate returned once every replica had them: the columns are back everywhere
        assert layout(url, database) == expected, url
