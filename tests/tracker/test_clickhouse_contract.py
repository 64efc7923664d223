"""The store contract: both ClickHouse backends (server over the native protocol, and chdb) and the
cluster mode (2 shards x 2 replicas, tests/cluster) behave the same for everything the project does
with them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.cluster.conftest import cluster, cluster_any_ch, cluster_ch  # noqa: F401 - fixtures of the cluster case
from tests.conftest import truncate
from tracker import schema
from tracker.clickhouse import DriverClickHouse
from tracker.errors import StoreError, StoreUnavailable
from tracker.settings import parse_clickhouse_url

ROOT = Path(__file__).resolve().parents[2]

ROW = (datetime(2026, 11, 27, 8, 30, 1), "shop", "view_item", "uid1", "A1", ["A1", "B2"], [], "", 12.5, "CNY",
       "", "", "", 1, "mobile", "https://shop.example/p/A1", "", "1-0",
       "", 0.0, 0.0, 0, 0, 0, "", 0)


@pytest.fixture(params=["server", "chdb", "cluster"])
def any_ch(request):
    """Both backends and the cluster (skipped without one), emptied."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_any_ch")
    ch = request.getfixturevalue("server_ch" if request.param == "server" else "chdb_ch")
    truncate(ch)
    return ch


def test_migrations_are_recorded_and_idempotent(any_ch):
    assert schema.applied_versions(any_ch) == {m.version for m in schema.MIGRATIONS}
    assert schema.migrate(any_ch) == []
    tables = {r[0] for r in any_ch.execute("SELECT name FROM system.tables WHERE database = %(db)s",
                                           {"db": any_ch.database})}
    assert set(schema.TABLES) <= tables


def test_insert_and_read_back_with_types(any_ch):
    assert any_ch.insert("events", schema.EVENTS_COLUMNS, [ROW]) == 1
    rows = any_ch.execute("SELECT ts, date, advertiser, skus, value, addressable, stream_id FROM events")
    assert rows == [(datetime(2026, 11, 27, 8, 30, 1), date(2026, 11, 27), "shop", ["A1", "B2"], 12.5, 1, "1-0")]


def test_the_drivers_date_table_is_filled_as_dates_are_met():
    """Not the whole of 1900-2299 at import (0.3 s and 40 MB in every process); dates read back the same
    (``test_insert_and_read_back_with_types``)."""
    script = ("import resource, tracker.clickhouse; from clickhouse_driver.columns.datecolumn import DateColumn; "
              "print(len(DateColumn.date_lut), DateColumn.date_lut[20419], DateColumn.date_lut_reverse[date(2025, 11, 27)])")
    env = {k: v for k, v in os.environ.items() if k != "CLICKHOUSE_DRIVER_LASY_DATE_LUT"}
    done = subprocess.run([sys.executable, "-c", "from datetime import date; " + script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["0", "2025-11-27", "20419"]


@pytest.mark.parametrize("hostile", ["x' OR 1=1 --", "a\\'b", "\\", "'); DROP TABLE events; --", "中文\n\t\0"])
def test_parameters_are_never_sql(any_ch, hostile):
    any_ch.insert("events", schema.EVENTS_COLUMNS, [ROW[:1] + (hostile,) + ROW[2:]])
    any_ch.insert("events", schema.EVENTS_COLUMNS, [ROW])
    rows = any_ch.execute("SELECT advertiser FROM events WHERE advertiser = %(a)s", {"a": hostile})
    assert rows == [(hostile,)]
    assert any_ch.execute("SELECT count() FROM events")[0][0] == 2


def test_in_tuples_and_datetimes_as_parameters(any_ch):
    any_ch.insert("events", schema.EVENTS_COLUMNS, [ROW, ROW[:17] + ("2-0",) + ROW[18:]])
    rows = any_ch.execute(
        "SELECT stream_id FROM events WHERE stream_id IN %(ids)s AND ts >= %(since)s ORDER BY stream_id",
        {"ids": ("2-0", "9-9"), "since": datetime(2026, 11, 27)})
    assert rows == [("2-0",)]


def test_replacing_tables_keep_the_newest_version(any_ch):
    cols = schema.ADVERTISERS_COLUMNS
    now = datetime(2026, 1, 1)
    any_ch.insert("advertisers", cols, [("a", "Old", "CNY", 0, 1, now)])
    any_ch.insert("advertisers", cols, [("a", "New", "EUR", 0, 2, now)])
    assert any_ch.execute("SELECT name, currency FROM advertisers FINAL") == [("New", "EUR")]


def test_bad_sql_raises_the_projects_error(any_ch):
    with pytest.raises(StoreError) as info:
        any_ch.execute("SELECT * FROM no_such_table")
    assert not info.value.retryable
    with pytest.raises(StoreError):
        any_ch.insert("no_such_table", ("a",), [(1,)])


def test_identifiers_are_checked(any_ch):
    with pytest.raises(StoreError, match="identifier"):
        any_ch.insert("events; DROP TABLE x", ("ts",), [(1,)])


def test_a_node_the_server_could_not_reach_mid_query_is_retryable(clickhouse_url):
    """A Distributed query whose shard replica dies mid-query fails with the server's NETWORK_ERROR or
    ALL_CONNECTION_TRIES_FAILED: retried like a network error of ours, and reported as unavailable."""
    ch = DriverClickHouse(parse_clickhouse_url(clickhouse_url), connect_timeout=0.5, timeout=5, retries=1)
    try:
        with pytest.raises(StoreUnavailable) as info:
            ch.execute("SELECT * FROM remote('127.0.0.1:1', system.one)")  # a port nobody listens on
        assert info.value.retryable
    finally:
        ch.close()


def test_unreachable_server_is_retryable_and_times_out():
    # A port nobody listens on: connection refused, mapped to the project's retryable error.
    ch = DriverClickHouse(parse_clickhouse_url("clickhouse://127.0.0.1:1/adserver"), connect_timeout=0.5,
                          timeout=1, retries=1)
    with pytest.raises(StoreUnavailable) as info:
        ch.ping()
    assert info.value.retryable
