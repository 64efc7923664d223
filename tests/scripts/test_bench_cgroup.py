"""``scripts.benchlib.cgroup``: the bench's stand-in for the shared-host drop-in (ClickHouse at idle CPU
weight), and how the targets table reports what it measured."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.benchlib.cgroup import Unavailable, drop_in_weight, idle_cpu_group
from scripts.benchlib.targets import figures, render_targets


def test_the_bench_models_the_weight_the_shared_host_drop_in_sets():
    assert drop_in_weight() == "idle"


def test_a_process_runs_in_an_idle_cpu_group_for_the_measurement_and_goes_back_after():
    child = subprocess.Popen(["sleep", "60"])
    name = f"adserver-test-{os.getpid()}"
    try:
        before = Path(f"/proc/{child.pid}/cgroup").read_text()
        try:
            with idle_cpu_group([child.pid], name) as group:
                assert (group / "cpu.idle").read_text().strip() == "1"
                assert (group / "cgroup.procs").read_text().split() == [str(child.pid)]
                assert f"/{name}" in Path(f"/proc/{child.pid}/cgroup").read_text()
        except Unavailable as exc:
            pytest.skip(f"no cgroup can be made on this machine: {exc}")
        assert Path(f"/proc/{child.pid}/cgroup").read_text() == before
        assert not group.exists()
    finally:
        child.kill()
        child.wait()


def test_a_machine_without_a_cpu_controller_is_reported_not_failed(tmp_path):
    with pytest.raises(Unavailable, match="no cpu controller"), idle_cpu_group([os.getpid()], "x", root=tmp_path):
        pass


def _results(idle: dict) -> dict:
    web = {"pixel_ratios": [0.6], "ad_ratios": [0.15], "ad_half_runs": [{"p99_ms": 12.5}, {"p99_ms": 30.0}],
           "ad_half_idle_store": idle, "lag": {"p99_s": 0.9, "p50_s": 0.4, "seen": 300, "hits": 300}}
    return {"targets": {"single": web}}


def test_the_targets_table_shows_the_idle_weight_runs_beside_the_default_ones():
    r = _results({"runs": [{"p99_ms": 6.5}, {"p99_ms": 9.25}]})

    assert figures(r, "single")["ad_p99_idle_store_ms"] == 9.25
    row = next(line for line in render_targets(r) if "idle CPU weight" in line)
    assert "**9.25 ms** | yes" in row and "single: 6.5, 9.2" in row


def test_the_targets_table_says_why_the_idle_weight_was_not_measured():
    r = _results({"unavailable": "no cpu controller under /sys/fs/cgroup"})

    assert figures(r, "single")["ad_p99_idle_store_ms"] is None
    row = next(line for line in render_targets(r) if "idle CPU weight" in line)
    assert "**not measured** | n/a" in row and "not measured: no cpu controller" in row
