"""``deploy/gunicorn.conf.py``: gunicorn accepts its hooks, and the worker hooks do what they say."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from gunicorn.config import Config

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


def test_post_worker_init_freezes_what_the_worker_loaded():
    """Run in a child process: freezing this test process's objects would outlive the test."""
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
    env_root = str(CONF.parents[1])
    result = subprocess.run([sys.executable, "-c", code], cwd=env_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("frozen ")
