"""``deploy/gunicorn.conf.py`` and multiprocess metrics: a folder per boot, dead workers marked,
and under a real gunicorn with two workers, one scrape counts the requests of both."""

from __future__ import annotations

import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "deploy" / "gunicorn.conf.py"
VAR = "PROMETHEUS_MULTIPROC_DIR"


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, msg: str, *args) -> None:
        self.warnings.append(msg % args)


def _server(preload_app: bool = False) -> SimpleNamespace:
    """What the hooks use of gunicorn's arbiter."""
    return SimpleNamespace(log=_Log(), cfg=SimpleNamespace(preload_app=preload_app))


@pytest.fixture
def conf(monkeypatch) -> dict:
    monkeypatch.setenv(VAR, "")  # restored (removed) after the test, whatever the hooks set
    monkeypatch.delenv(VAR)
    return runpy.run_path(str(CONF))


def test_gunicorn_accepts_the_metrics_hooks(conf):
    cfg = Config()
    for name in ("on_starting", "child_exit", "on_exit"):
        cfg.set(name, conf[name])  # gunicorn checks each hook's arity
        assert getattr(cfg, name) is conf[name]


def test_unset_the_arbiter_makes_a_fresh_folder_and_removes_it(conf, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    server = _server()
    conf["on_starting"](server)
    assert server.log.warnings == []
    folder = Path(os.environ[VAR])
    assert folder.parent == tmp_path and folder.is_dir() and not any(folder.iterdir())
    (folder / "histogram_123.db").write_bytes(b"")
    conf["on_exit"](server)
    assert not folder.exists()


def test_unset_with_the_app_preloaded_is_reported(conf, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    server = _server(preload_app=True)
    conf["on_starting"](server)
    assert VAR not in os.environ and not any(tmp_path.iterdir())
    assert len(server.log.warnings) == 1 and VAR in server.log.warnings[0]


def test_an_operator_folder_is_kept_and_leftovers_reported(conf, monkeypatch, tmp_path):
    folder = tmp_path / "run" / "prometheus"
    monkeypatch.setenv(VAR, str(folder))
    server = _server()
    conf["on_starting"](server)
    assert folder.is_dir() and server.log.warnings == []
    (folder / "histogram_123.db").write_bytes(b"")
    conf["on_starting"](server)
    assert len(server.log.warnings) == 1 and str(folder) in server.log.warnings[0]
    conf["on_exit"](server)
    assert folder.is_dir()  # not ours to remove


def test_child_exit_marks_the_worker_dead(conf, monkeypatch, tmp_path):
    monkeypatch.setenv(VAR, str(tmp_path))
    live = tmp_path / "gauge_livesum_4242.db"
    live.write_bytes(b"")
    histogram = tmp_path / "histogram_4242.db"
    histogram.write_bytes(b"")
    conf["child_exit"](None, SimpleNamespace(pid=4242))
    assert not live.exists() and histogram.exists()  # a dead worker's requests still count


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # a new connection each time
        return response.read()


@pytest.mark.slow
def test_two_gunicorn_workers_one_scrape(tmp_path, redis_url, clickhouse_url, redis_client):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADSERVER_", "PROMETHEUS_"))}
    env.update({
        "ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url, "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
        "ADSERVER_DATA_DIR": str(tmp_path / "var"), "ADSERVER_BIND": f"127.0.0.1:{port}",
        "ADSERVER_WORKERS": "2", "ADSERVER_THREADS": "2", "TMPDIR": str(tmp_path),
    })
    log = tmp_path / "gunicorn.log"  # a file, not a pipe: a full pipe would block the processes writing to it
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(CONF), "adserver:create_app()"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    folders: list[Path] = []
    try:
        log_tail = lambda: log.read_text()[-3000:]  # noqa: E731
        wait_for(lambda: proc.poll() is not None or _get(f"{base}/healthz"), 120, log_tail, tolerate=(OSError,),
                 interval=0.2)
        assert proc.poll() is None, log_tail()
        folders = list(tmp_path.glob("adserver-prometheus-*"))
        assert len(folders) == 1
        # Each worker makes its file as it loads the app: wait for the second one, which boots later.
        wait_for(lambda: len(list(folders[0].glob("histogram_*.db"))) >= 2, 120, log_tail, interval=0.2)
        for _ in range(30):
            assert _get(f"{base}/px.gif?a=demo&e=view_home").startswith(b"GIF89a")
        text = _get(f"{base}/metrics").decode()
        counts = {s.labels["endpoint"]: s.value for f in text_string_to_metric_families(text)
                  if f.name == "adserver_request_duration_seconds" for s in f.samples if s.name.endswith("_count")}
        assert counts["tracking.pixel"] == 30
        assert counts["health.healthz"] >= 1
    finally:
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    left = sorted(p.name for p in folders[0].iterdir()) if folders and folders[0].exists() else None
    # Removed by the arbiter on exit (the message says what was left and how long the stop took).
    assert folders and left is None, (left, time.monotonic() - stopping, log.read_text()[-3000:])
