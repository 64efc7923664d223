"""``deploy/gunicorn.conf.py``: gunicorn accepts its hooks, and the worker hooks do what they say."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

from gunicorn.config import Config

from tests.conftest import SECRET

CONF = Path(__file__).resolve().parents[1] / "deploy" / "gunicorn.conf.py"


def _config(conf: dict) -> Config:
    """The settings as gunicorn loads them (its validators check each hook's name and arity)."""
    cfg = Config()
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_gunicorn_accepts_the_hooks_and_settings():
    conf = runpy.run_path(str(CONF))
    cfg = _config(conf)
    assert cfg.worker_class_str == "gthread"
    assert cfg.post_fork is conf["post_fork"]
    assert cfg.post_worker_init is conf["post_worker_init"]
    assert cfg.max_requests == 0


def test_post_worker_init_freezes_what_the_worker_loaded(tmp_path, redis_url, clickhouse_url):
    """Run in a child process: freezing this test process's objects would outlive the test. The child
    gets the test servers and a data directory of its own, never the checkout's ``var/``."""
    code = f"""
import gc, runpy
from adserver import create_app
app = create_app()
assert gc.get_freeze_count() == 0
runpy.run_path({str(CONF)!r})["post_worker_init"](None)
frozen = gc.get_freeze_count()
assert frozen > 10_000, frozen
assert len(gc.get_objects()) < frozen / 10, (len(gc.get_objects()), frozen)
print("frozen", frozen)
"""
    root = str(CONF.parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADSERVER_")}
    env.update({"ADSERVER_SECRET_KEY": SECRET, "ADSERVER_REDIS_URL": redis_url, "ADSERVER_CLICKHOUSE_URL": clickhouse_url,
                "ADSERVER_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": root})
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("frozen ")
