"""``python -m scripts.bench_insert``: ClickHouse's cost per insert with and without the report views, on the
test server, in a database of its own that it drops."""

from __future__ import annotations

import os
import re

import pytest

from scripts import bench_insert


@pytest.mark.slow
def test_the_insert_bench_stores_every_row_it_times_and_drops_its_database(tmp_path, monkeypatch, capsys, server_ch):
    monkeypatch.setenv("ADSERVER_BENCH_DIR", str(tmp_path))

    results = bench_insert.main(["--use-test-servers", "--rows", "3,7", "--inserts", "2", "--rounds", "2"])

    stored = {(r["table"], r["rows"]): (r["inserts"], r["stored"]) for r in results}
    assert stored == {("events", 3): (4, 12), ("events_without_views", 3): (4, 12),
                      ("events", 7): (4, 28), ("events_without_views", 7): (4, 28)}
    assert all(r["wall_ms"] > 0 for r in results)
    if os.environ.get("ADSERVER_TEST_SERVERS_DIR"):  # a local server: its CPU is read from /proc
        assert all(r["server_cpu_ms"] is not None for r in results)
    out = capsys.readouterr().out
    views = int(re.search(r"events has (\d+) materialized views", out)[1])
    assert views == server_ch.execute(bench_insert.VIEWS, {"source": f"% FROM {server_ch.database}.events %"})[0][0]
    assert views > 0 and "the views multiply the insert's" in out
    left = server_ch.execute("SELECT name FROM system.databases WHERE name = %(name)s",
                             {"name": f"bench_insert_{os.getpid()}"})
    assert left == []
