"""``/metrics`` in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): the histograms of separate
processes writing to one folder are merged by whichever process answers the scrape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROCESS = """
import sys
from adserver import create_app
app = create_app()
client = app.test_client()
for _ in range(int(sys.argv[1])):
    assert client.get("/px.gif?a=demo&e=view_home").status_code == 200
client.get("/no/such/page")
if sys.argv[2] == "scrape":
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
app.extensions["adserver"].close()
"""


def _env(tmp_path: Path, urls: tuple[str, str], folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADSERVER_", "PROMETHEUS_"))}
    env.update({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": urls[0],
        "ADSERVER_CLICKHOUSE_URL": urls[1], "ADSERVER_DATA_DIR": str(tmp_path / "var"),
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    })
    return env


def _counts(text: str) -> dict[tuple[str, str], float]:
    return {(s.labels["endpoint"], s.labels["status"]): s.value
            for family in text_string_to_metric_families(text) if family.name == "adserver_request_duration_seconds"
            for s in family.samples if s.name.endswith("_count")}


def test_two_processes_are_merged_at_scrape(tmp_path, redis_url, clickhouse_url, ch, redis_client):
    folder = tmp_path / "prometheus"  # made by the app when missing
    env = _env(tmp_path, (redis_url, clickhouse_url), folder)
    writers = [subprocess.Popen([sys.executable, "-c", PROCESS, str(n), "-"], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True) for n in (3, 5)]
    for proc in writers:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    scraper = subprocess.run([sys.executable, "-c", PROCESS, "2", "scrape"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert scraper.returncode == 0, scraper.stderr[-2000:]
    counts = _counts(scraper.stdout)
    assert counts[("tracking.pixel", "2xx")] == 3 + 5 + 2
    assert counts[("unmatched", "4xx")] == 3
    assert len(list(folder.glob("histogram_*.db"))) == 3  # one file per process
    # The cluster-wide counters come from Redis, once, whichever process answers.
    families = {f.name: f for f in text_string_to_metric_families(scraper.stdout)}
    assert families["adserver_pixel_rejected"].samples[0].value == 10  # "demo" is unknown here: rejected


def test_the_variable_must_be_set_before_prometheus_client_is_imported(tmp_path, redis_url, clickhouse_url):
    late = """
import os, sys
import prometheus_client
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from adserver import create_app
try:
    create_app()
except RuntimeError as exc:
    print(exc)
"""
    env = _env(tmp_path, (redis_url, clickhouse_url), tmp_path / "unused")
    del env["PROMETHEUS_MULTIPROC_DIR"]
    result = subprocess.run([sys.executable, "-c", late, str(tmp_path / "late")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported" in result.stdout
