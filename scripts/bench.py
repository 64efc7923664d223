#!/usr/bin/env python3
"""Benchmarks of the product against a bare Flask app, measured in the same run (``make bench``).

Starts throw-away Redis and ClickHouse servers, the product under gunicorn with
``deploy/gunicorn.conf.py`` plus its writer, and a bare Flask app returning the 43-byte GIF under
the same gunicorn settings; drives them with wrk; prints a table and writes ``docs/benchmarks.md``.
The load generator shares the machine's cores with the servers: compare ratios, not raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def parse_wrk(output: str) -> dict:
    """req/s and latency percentiles from ``wrk --latency`` output."""
    def seconds(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    lat = {p: seconds(v) * 1000 for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def wrk(url: str, seconds: int, connections: int, headers: dict | None = None) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


class Stack:
    """Servers and processes of one benchmark run; everything is stopped by ``close``."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ)

    def start_servers(self) -> None:
        servers = self.workdir / "servers"
        subprocess.run([PY, str(ROOT / "scripts" / "test_servers.py"), "start", "--dir", str(servers)], check=True)
        info = json.loads((servers / "servers.json").read_text())
        self.env.update({
            "ADSERVER_REDIS_URL": info["env"]["ADSERVER_TEST_REDIS_URL"],
            "ADSERVER_CLICKHOUSE_URL": info["env"]["ADSERVER_TEST_CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/adserver",
            "ADSERVER_SECRET_KEY": secrets.token_urlsafe(32),
            "ADSERVER_DATA_DIR": str(self.workdir / "var"),
            "ADSERVER_WORKERS": str(self.workers),
        })

    def spawn(self, cmd: list[str], log: str, **env: str) -> subprocess.Popen:
        out = open(self.workdir / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def gunicorn(self, app: str, port: int, log: str) -> subprocess.Popen:
        proc = self.spawn([PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), app], log,
                          ADSERVER_BIND=f"127.0.0.1:{port}", PYTHONPATH=str(ROOT))
        return proc

    def cli(self, *args: str) -> str:
        return subprocess.run([PY, "-m", "adserver", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run([PY, str(ROOT / "scripts" / "test_servers.py"), "stop", "--dir", str(self.workdir / "servers")])


def redis_client(env: dict):
    import redis

    return redis.Redis.from_url(env["ADSERVER_REDIS_URL"], socket_timeout=10)


def clickhouse(env: dict):
    from tracker.clickhouse import DriverClickHouse
    from tracker.settings import parse_clickhouse_url

    return DriverClickHouse(parse_clickhouse_url(env["ADSERVER_CLICKHOUSE_URL"]), 5, 120)


def visitor_cookie(base: str, skus: list[str]) -> str:
    """A visitor with a populated profile: the cookie their views were recorded under."""
    opener = urllib.request.build_opener()
    cookie = None
    for sku in skus:
        req = urllib.request.Request(f"{base}/px.gif?a=demo&e=view_item&sku={sku}")
        if cookie:
            req.add_header("Cookie", cookie)
        resp = opener.open(req)
        set_cookie = resp.headers.get("Set-Cookie", "")
        if set_cookie.startswith("uid="):
            cookie = set_cookie.split(";", 1)[0]
    return cookie


def writer_throughput(stack: Stack, events: int) -> dict:
    """Events per second from the stream into ClickHouse, for a backlog of ``events``."""
    client = redis_client(stack.env)
    stream = "bench:writer"
    row = {"ts": time.time(), "advertiser": "demo", "event": "view_item", "uid": "u", "skus": ["D1001"]}
    payload = json.dumps(row)
    pipe = client.pipeline(transaction=False)
    for n in range(events):
        pipe.xadd(stream, {"t": "ev", "d": payload})
        if n % 10000 == 9999:
            pipe.execute()
    pipe.execute()
    ch = clickhouse(stack.env)
    before = ch.execute("SELECT count() FROM events")[0][0]
    started = time.monotonic()
    proc = stack.spawn([PY, "-m", "tracker.writer"], "writer-bench.log", ADSERVER_STREAM_KEY=stream,
                       ADSERVER_WRITER_NAME="bench", ADSERVER_WRITER_BATCH_SIZE="50000")
    while client.xlen(stream) and time.monotonic() - started < 600:
        time.sleep(0.05)
    seconds = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    written = ch.execute("SELECT count() FROM events")[0][0] - before
    return {"events": written, "seconds": round(seconds, 2), "events_per_s": round(written / seconds)}


def end_to_end_lag(stack: Stack, base: str, hits: int = 300) -> dict:
    """Pixel answered -> row visible in ClickHouse, per hit (p50/p99), with the real writer running."""
    ch = clickhouse(stack.env)
    marker = "lag" + secrets.token_hex(3)
    sent: list[float] = []
    for n in range(hits):
        urllib.request.urlopen(f"{base}/px.gif?a=demo&e=view_item&sku={marker}-{n}").read()
        sent.append(time.monotonic())
        time.sleep(0.005)
    visible: dict[int, float] = {}
    deadline = time.monotonic() + 60
    while len(visible) < hits and time.monotonic() < deadline:
        rows = ch.execute("SELECT sku FROM events WHERE event = 'view_item' AND sku LIKE %(m)s", {"m": marker + "-%"})
        now = time.monotonic()
        for (sku,) in rows:
            visible.setdefault(int(sku.rsplit("-", 1)[1]), now)
        time.sleep(0.02)
    lags = sorted(visible[n] - sent[n] for n in visible)
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None  # noqa: E731
    return {"hits": hits, "seen": len(lags), "p50_s": pick(0.5), "p99_s": pick(0.99)}


def ad_bytes(base: str, cookie: str) -> dict:
    sizes = ("300x250", "728x90", "160x600", "320x50", "320x100", "responsive")
    out = {}
    for size in sizes:
        req = urllib.request.Request(f"{base}/ad?p=demo-feed&size={size}", headers={"Cookie": cookie})
        out[size] = len(urllib.request.urlopen(req).read())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writer-events", type=int, default=200_000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if not subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.workers)
    results: dict = {}
    try:
        stack.start_servers()
        product_port, bare_port = free_port(), free_port()
        base = f"http://127.0.0.1:{product_port}"
        stack.env["ADSERVER_PUBLIC_URL"] = base
        stack.env["ADSERVER_COOKIE_SECURE"] = "0"
        stack.cli("migrate")
        print(stack.cli("demo", "--base-url", base).strip())
        stack.gunicorn("adserver:create_app()", product_port, "product.log")
        stack.gunicorn("scripts.bare_app:create_app()", bare_port, "bare.log")
        stack.spawn([PY, "-m", "tracker.writer"], "writer.log")
        wait_http(f"{base}/healthz")
        wait_http(f"http://127.0.0.1:{bare_port}/px.gif")
        cookie = visitor_cookie(base, ["D1004", "D1012", "D1021", "D1040"])
        ad = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/ad.json?p=demo-feed&size=300x250", headers={"Cookie": cookie})).read())
        click_path = "/c/" + ad["products"][0]["click_url"].rsplit("/c/", 1)[1]
        run = lambda url, headers=None: wrk(url, args.seconds, args.connections, headers)  # noqa: E731
        print("measuring the bare app ...")
        results["bare"] = run(f"http://127.0.0.1:{bare_port}/px.gif")
        print("measuring the pixel ...")
        results["pixel"] = run(f"{base}/px.gif?a=demo&e=view_item&sku=D1001", {"Cookie": cookie})
        print("measuring the ad ...")
        results["ad"] = run(f"{base}/ad?p=demo-feed&size=300x250", {"Cookie": cookie})
        print("measuring the click ...")
        results["click"] = run(f"{base}{click_path}", {"Cookie": cookie})
        print("measuring end-to-end lag ...")
        results["lag"] = end_to_end_lag(stack, base)
        results["ad_bytes"] = ad_bytes(base, cookie)
        print("measuring the writer ...")
        results["writer"] = writer_throughput(stack, args.writer_events)
    finally:
        stack.close()
    report = render(results, args)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    print(f"written to {args.out}")
    return 0


def render(r: dict, args) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    bare = r["bare"]["rps"]
    lines = [
        "# Benchmarks", "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit `{commit}` on "
        f"{platform.machine()} with {os.cpu_count()} cores ({platform.python_implementation()} "
        f"{platform.python_version()}), by `make bench` (`scripts/bench.py`). wrk -t1 -c{args.connections}, "
        f"{args.seconds} s per endpoint; gunicorn with `deploy/gunicorn.conf.py` ({args.workers} gthread workers) "
        "for both the product and the bare app; load generator, servers, Redis and ClickHouse share the cores, "
        "so the ratios are the figures to compare.", "",
        "| endpoint | req/s | ratio to bare | p50 ms | p99 ms | non-2xx/3xx |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("bare", "pixel", "ad", "click"):
        x = r[name]
        lines.append(f"| {name} | {x['rps']:,.0f} | {x['rps'] / bare:.2f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} "
                     f"| {x['non_2xx']} |")
    w, lag = r["writer"], r["lag"]
    lines += [
        "", f"Writer: {w['events']:,} events from the stream into ClickHouse in {w['seconds']} s = "
        f"**{w['events_per_s']:,} events/s**.", "",
        f"End-to-end lag (pixel answered -> row visible in ClickHouse), {lag['seen']}/{lag['hits']} hits: "
        f"p50 {lag['p50_s']} s, p99 {lag['p99_s']} s.", "",
        "Ad unit bytes (HTML + CSS, without product images): "
        + ", ".join(f"{size} {n:,}" for size, n in r["ad_bytes"].items()) + ".", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
