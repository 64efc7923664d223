"""``python -m scripts.bench --cluster`` (``make bench-cluster``): a quick run end to end on its own throw-away
cluster, the shape of what it writes, and the pieces it is made of."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.benchlib.report import NOTES_MARK
from scripts.benchlib.web import parse_wrk
from scripts.benchlib.writer import partition_ranges
from scripts.testservers.leftovers import find_leftovers
from tracker.partitions import parse_range

ROOT = Path(__file__).resolve().parents[2]

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8000/px.gif
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.12ms    3.01ms  40.00ms   80.00%
  Latency Distribution
     50%    9.87ms
     75%   11.00ms
     90%   13.00ms
     99%   21.50ms
  5382 requests in 2.00s, 1.01MB read
Requests/sec:   2690.51
Transfer/sec:    517.00KB
"""


def test_wrk_output_gives_the_requests_answered_that_cpu_per_request_divides_by():
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["requests"] == 5382 and parsed["rps"] == 2690.51
    assert parsed["p50_ms"] == pytest.approx(9.87) and parsed["p99_ms"] == pytest.approx(21.5)
    assert parsed["non_2xx"] == 0


@pytest.mark.parametrize(("partitions", "writers", "ranges"), [
    (1, 1, ["0-0"]), (4, 4, ["0-0", "1-1", "2-2", "3-3"]), (4, 2, ["0-1", "2-3"]), (6, 4, ["0-1", "2-2", "3-4", "5-5"]),
])
def test_writers_take_disjoint_ranges_covering_every_partition(partitions, writers, ranges):
    assert partition_ranges(partitions, writers) == ranges
    taken = [p for text in ranges for p in parse_range(text, partitions)]  # as the writer reads --partitions
    assert sorted(taken) == list(range(partitions))


def test_more_writers_than_partitions_is_refused():
    with pytest.raises(ValueError, match="cannot share"):
        partition_ranges(2, 3)


@pytest.mark.slow
def test_quick_cluster_bench_measures_both_setups_and_keeps_the_hand_written_notes(tmp_path):
    if not shutil.which("wrk"):
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out, figures, workdir = tmp_path / "scaling.md", tmp_path / "scaling.json", tmp_path / "bench"
    out.write_text(f"# old figures\n\n{NOTES_MARK}\n\n## Capacity model\n\nwritten by hand\n")
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench", "--cluster", "--quick", "--out", str(out), "--json", str(figures)],
        cwd=ROOT, env={**_clean_env(), "ADSERVER_BENCH_DIR": str(workdir)}, capture_output=True, text=True,
        timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert find_leftovers([workdir / "servers"]) == []  # the cluster and the single-node servers are stopped

    results = json.loads(figures.read_text())
    shapes = [(r["mode"], r["partitions"], r["writers"]) for r in results["writer"]]
    assert shapes == [("single", 1, 1), ("cluster", 1, 1), ("cluster", 2, 2), ("cluster", 4, 4)]
    for row in results["writer"]:
        assert row["events"] == 3000  # every pre-filled event stored, none twice
        assert row["events_per_s"] > 0 and row["cpu_us_per_event"]["writers"] > 0
    for mode in ("single", "cluster"):
        for endpoint in ("pixel", "ad"):
            run = results["web"][mode][endpoint]
            assert run["rps"] > 0 and run["non_2xx"] == 0 and run["requests"] > 0
            assert run["cpu_us"]["workers"] > 0 and run["cpu_us"]["redis"] > 0
    assert set(results["cpu_ratio"]) == {"pixel", "ad"} and min(results["cpu_ratio"].values()) > 0

    text = out.read_text()
    assert "# old figures" not in text and text.count(NOTES_MARK) == 1
    assert text.rstrip().endswith("written by hand")
    writer_rows = [line for line in text.splitlines() if line.startswith(("| single | 1 |", "| cluster | "))]
    assert len(writer_rows) == 4
    web_rows = [line for line in text.splitlines() if line.startswith(("| pixel |", "| ad |"))]
    assert [row.split(" | ")[1] for row in web_rows] == ["single", "cluster", "single", "cluster"]
    assert "CPU per request of the gunicorn workers, cluster / single-node: pixel " in text
    assert "CPU per request of the gunicorn workers" in done.stdout  # the table is printed too


def _clean_env() -> dict[str, str]:
    """The environment without the test run's own servers and settings: the bench starts its own."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
