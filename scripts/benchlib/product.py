"""The product as the benchmarks run it: settings for load from one address, the demo data, gunicorn and a writer."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence

from .loadgen import closed_loop
from .stack import PY, Stack
from .traffic import as_loadgen, pixel_requests
from .web import wait_http

CAMPAIGNS = ("demo-retargeting", "outdoor-retargeting")


def bench_settings(stack: Stack) -> None:
    """Settings every benchmark of the product shares (plain HTTP on loopback, one client address)."""
    stack.env["ADSERVER_COOKIE_SECURE"] = "0"
    # The whole bench comes from one address: the click-flood limits would mark nearly every click.
    stack.env["ADSERVER_CLICK_LIMIT_VISITOR"] = stack.env["ADSERVER_CLICK_LIMIT_ADDRESS"] = "1000000000"


def start_product(stack: Stack, port: int, name: str, writer_args: Sequence[str] = (),
                  **env: str) -> tuple[str, subprocess.Popen, subprocess.Popen]:
    """Migrate, load the demo, start gunicorn and the writer (``env`` over the stack's settings).

    Returns the base URL, the gunicorn master and the writer; logs go to ``<name>.log`` and
    ``<name>-writer.log``. Both demo campaigns get budgets the bench cannot spend (the budget
    scripts still run on every ad and click)."""
    base = f"http://127.0.0.1:{port}"
    env = {"ADSERVER_PUBLIC_URL": base, **env}
    stack.cli("migrate", **env)
    print(stack.cli("demo", "--base-url", base, **env).strip())
    for campaign in CAMPAIGNS:
        stack.cli("create-campaign", campaign, "--daily-budget", "100000000", **env)
    web = stack.gunicorn("adserver:create_app()", port, f"{name}.log", **env)
    writer = stack.spawn([PY, "-m", "tracker.writer", *writer_args], f"{name}-writer.log", **env)
    wait_http(f"{base}/healthz")
    return base, web, writer


def seed_profiles(base: str, visitors: list[str], rng: random.Random) -> dict:
    """Fill the visitors' profiles with product views (``traffic.pixel_requests``) before any measurement."""
    seed = pixel_requests(visitors, rng)
    print(f"seeding {len(visitors):,} visitor profiles with {len(seed):,} pixel hits at {base} ...", flush=True)
    return closed_loop(base, as_loadgen(seed), len(seed), connections=16)
