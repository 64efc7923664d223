"""``migrate`` on the 2 x 2 test cluster: the same migrations as on one server, in their cluster form.

Sharded tables are replicated ``*_local`` tables with a ``Distributed`` table under the public name on
every node; registries are one table replicated on every node; the report views aggregate each shard's
own events; the writer's recovery check sees a row that only one replica holds yet.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from datetime import datetime

import pytest

from tests.waiting import poll
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.settings_parsers import parse_clickhouse_url
from tracker.writer.recovery import already_stored

pytestmark = pytest.mark.slow


def node(url: str, database: str) -> DriverClickHouse:
    return DriverClickHouse(replace(parse_clickhouse_url(url), database=database), connect_timeout=5, timeout=60)


def event(uid: str, stream_id: str, event: str = "impression") -> tuple:
    return (datetime(2026, 11, 27, 8, 30), "shop", event, uid, "A1", ["A1"], ["recent"], "", 0.0, "CNY",
            "feed", secrets.token_hex(4), "300x250", 1, "desktop", "", "", stream_id,
            "", 0.0, 0.0, 0, 0, 0, "", 0)


def sync(cluster, database: str, table: str) -> None:
    for url in cluster.clickhouse_nodes:
        ch = node(url, database)
        try:
            ch.execute(f"SYSTEM SYNC REPLICA {database}.{table}")
        finally:
            ch.close()


def test_migrate_creates_local_and_distributed_tables_on_every_node(cluster, cluster_ch):
    db = cluster_ch.database
    sync(cluster, db, "schema_migrations")
    for url in cluster.clickhouse_nodes:
        ch = node(url, db)
        try:
            engines = dict(ch.execute("SELECT name, engine FROM system.tables WHERE database = %(db)s", {"db": db}))
            replicas = dict(ch.execute("SELECT table, total_replicas FROM system.replicas WHERE database = %(db)s",
                                       {"db": db}))
            versions = [r[0] for r in ch.execute("SELECT version FROM schema_migrations ORDER BY version")]
        finally:
            ch.close()
        for table in (*schema.TABLES, "schema_migrations"):
            key = schema.LAYOUTS[table]
            if key is None:  # on every node: all four nodes are replicas of one table
                assert engines[table].startswith("Replicated") and f"{table}_local" not in engines, table
                assert replicas[table] == 4, table
            else:
                assert engines[f"{table}_local"].startswith("Replicated"), table
                assert engines[table] == "Distributed", table
                assert replicas[f"{table}_local"] == 2, table  # the two replicas of this node's shard
        assert {f"{table}_mv" for table, _ in schema.REPORT_VIEWS} == {
            name for name, engine in engines.items() if engine == "MaterializedView"}
        dropped = set(schema.LAYOUTS) - set(schema.TABLES) - {"schema_migrations"}
        assert dropped and not dropped & {name.removesuffix("_local") for name in engines}  # on no node
        assert versions == [m.version for m in schema.MIGRATIONS]


def test_migrate_again_changes_nothing(cluster_ch):
    assert schema.migrate(cluster_ch) == []
    assert schema.pending(cluster_ch) == []


def test_each_shard_aggregates_its_own_events_and_reports_read_them_all(cluster, cluster_any_ch):
    ch = cluster_any_ch
    rows = [event(secrets.token_hex(8), f"{n}-0") for n in range(400)]
    ch.insert_columns("events", schema.EVENTS_COLUMNS, [list(column) for column in zip(*rows)])

    (total,), = ch.execute("SELECT sumMerge(impressions) FROM report_hours WHERE dim = 'placement'")
    assert total == 400  # read through Distributed: both shards' aggregates
    sync(cluster, ch.database, "report_hours_local")
    per_node = {}
    for url in cluster.clickhouse_nodes:
        replica = node(url, ch.database)
        try:
            (events,), = replica.execute("SELECT count() FROM events_local")
            (aggregated,), = replica.execute("SELECT sumMerge(impressions) FROM report_hours_local "
                                               "WHERE dim = 'placement'")
        finally:
            replica.close()
        per_node[url] = (events, aggregated)
    first, second = cluster.clickhouse_nodes[:2], cluster.clickhouse_nodes[2:]
    assert per_node[first[0]][1] == per_node[first[1]][1]  # the other replica fetched the aggregates
    assert per_node[first[0]][1] + per_node[second[0]][1] == 400
    assert per_node[first[0]][1] == per_node[first[0]][0] > 0  # each shard aggregated its own rows
    assert per_node[second[0]][1] > 0


def test_rows_of_a_visitor_share_a_shard_and_rows_without_one_spread_over_both(cluster, cluster_any_ch):
    ch = cluster_any_ch
    visitor = secrets.token_hex(8)
    rows = [event(visitor, f"{n}-1") for n in range(50)] + [event("", f"{n}-2", "viewable") for n in range(200)]
    ch.insert_columns("events", schema.EVENTS_COLUMNS, [list(column) for column in zip(*rows)])
    per_shard = []
    for url in (cluster.clickhouse_nodes[0], cluster.clickhouse_nodes[2]):  # one replica of each shard
        replica = node(url, ch.database)
        try:
            (counts,) = replica.execute("SELECT countIf(uid = %(uid)s), countIf(uid = '') FROM events_local",
                                        {"uid": visitor})
        finally:
            replica.close()
        per_shard.append(counts)
    assert sorted(visits for visits, _ in per_shard) == [0, 50]
    anonymous = [count for _, count in per_shard]
    assert sum(anonymous) == 200 and min(anonymous) > 40  # binomial(200, 1/2) below 41: eight standard deviations off


def test_the_recovery_check_sees_a_row_only_one_replica_holds(cluster, cluster_any_ch):
    """The replica a Distributed read picks may not have fetched a part its twin stored: the check reads
    every replica, so a batch inserted before a crash is never inserted twice."""
    ch = cluster_any_ch
    now_ms = int(time.time() * 1000)  # the check looks for rows inserted around the ids' time
    ids = [f"{now_ms + n}-0" for n in range(3)]
    first, second = (node(url, ch.database) for url in cluster.clickhouse_nodes[2:])  # shard 2's replicas
    try:
        first.execute(f"SYSTEM STOP FETCHES {ch.database}.events_local")
        second.insert("events_local", schema.EVENTS_COLUMNS, [event("visitor", ids[1])])
        (seen_by_first,), = first.execute("SELECT count() FROM events_local")
        assert seen_by_first == 0  # the lagging replica
        assert already_stored(ch, ids) == {ids[1]}
    finally:
        first.execute(f"SYSTEM START FETCHES {ch.database}.events_local")
        first.execute(f"SYSTEM SYNC REPLICA {ch.database}.events_local")  # caught up before the next test
        first.close()
        second.close()


def test_the_migrate_command_on_a_migrated_cluster_applies_nothing(cluster, cluster_ch, tmp_path):
    from click.testing import CliRunner

    from adserver.cli import PROG_NAME, main
    from tests.conftest import SECRET
    from tracker.settings import load_settings

    settings = load_settings({
        "ADSERVER_REDIS_URL": cluster.redis_url,
        "ADSERVER_CLICKHOUSE_URL": f"{cluster.clickhouse_nodes[-1].rsplit('/', 1)[0]}/{cluster_ch.database}",
        "ADSERVER_CLICKHOUSE_CLUSTER": cluster.name,
        "ADSERVER_SECRET_KEY": SECRET,
        "ADSERVER_DATA_DIR": str(tmp_path),
    })
    result = CliRunner().invoke(main, ["migrate"], obj=settings, catch_exceptions=False, prog_name=PROG_NAME)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"schema up to date ({len(schema.MIGRATIONS)} migrations, 0 applied now)"


def test_forgetting_removes_the_visitors_rows_on_every_shard_and_replica(cluster, cluster_any_ch):
    from tracker.retention import drop_expired, forget_visitors

    ch = cluster_any_ch
    gone = [secrets.token_hex(8) for _ in range(40)]  # spread over both shards by cityHash64(uid)
    kept = [secrets.token_hex(8) for _ in range(40)]
    rows = [event(uid, f"{n}-0") for n, uid in enumerate(gone + kept)]
    ch.insert_columns("events", schema.EVENTS_COLUMNS, [list(column) for column in zip(*rows)])

    found = forget_visitors(ch, gone)
    assert found["events"] == 40

    def per_replica() -> list[tuple[int, int]]:  # (rows of the forgotten visitors, all rows) on each replica
        counts = []
        for url in cluster.clickhouse_nodes:
            replica = node(url, ch.database)
            try:
                counts.append(replica.execute("SELECT countIf(uid IN %(g)s), count() FROM events_local",
                                              {"g": tuple(gone)})[0])
            finally:
                replica.close()
        return counts

    poll(lambda: all(left == 0 for left, _ in per_replica()), 60, interval=0.2)
    counts = per_replica()
    assert [left for left, _ in counts] == [0, 0, 0, 0]  # every shard deleted its own, every replica too
    assert counts[0][1] + counts[2][1] == 40 and counts[0][1] > 0 and counts[2][1] > 0  # the others kept

    dropped = drop_expired(ch, days=1, now=datetime(2027, 6, 1))  # the rows are from 2026-11
    assert dropped["events"] == ["202611"]
    (left,), = ch.execute("SELECT count() FROM events")
    assert left == 0


@pytest.mark.parametrize(("table", "stored", "insert"), [
    ("advertisers", "advertisers",
     "INSERT INTO {db}.advertisers (id, name, version) SELECT toString(number), 'shop', 1 "
     "FROM system.numbers LIMIT %(rows)s"),
    ("events", "events_local",
     "INSERT INTO {db}.events_local (ts, advertiser, event, uid) SELECT toDateTime('2026-01-01 00:00:00') "
     "+ number * 60, 'shop', 'view', toString(number) FROM system.numbers LIMIT %(rows)s"),
])
def test_a_cluster_table_is_emptied_while_its_replicas_fetch_a_new_part(cluster, cluster_any_ch, table, stored,
                                                                       insert):
    """A replicated TRUNCATE on ClickHouse 18.16 holds the table's lock while it waits for every replica,
    and a replica fetching the part just inserted on that node waits for the same lock: both stall
    until the fetch times out. The table is emptied right after a large insert, on the node that took it."""
    ch = cluster_any_ch
    first_of_each_shard = [cluster.clickhouse_nodes[0], cluster.clickhouse_nodes[2]]
    for url in first_of_each_shard if stored.endswith("_local") else first_of_each_shard[:1]:
        writer = node(url, ch.database)
        try:
            writer.execute(insert.format(db=ch.database), {"rows": 300_000})
        finally:
            writer.close()

    schema.truncate_stored(ch, table)

    sync(cluster, ch.database, stored)
    for url in cluster.clickhouse_nodes:
        replica = node(url, ch.database)
        try:
            assert replica.execute(f"SELECT count() FROM {stored}") == [(0,)], url
        finally:
            replica.close()
