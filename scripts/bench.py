#!/usr/bin/env python3
"""Benchmarks of the product against a bare Flask app, measured in the same run (``make bench``).

Starts throw-away Redis and ClickHouse servers, the product under gunicorn with
``deploy/gunicorn.conf.py`` plus its writer, and a bare Flask app returning the 43-byte GIF under
the same gunicorn settings; drives them with wrk; prints a table and writes ``docs/benchmarks.md``.
The load generator shares the machine's cores with the servers: compare ratios, not raw figures.

What the requests look like, and why:

- Every request carries a desktop Chrome ``User-Agent``: the product classifies requests without
  one as invalid traffic (no profile, no frequency state, no charge), a cheaper path than a person's.
- Visitors are many (``--visitors``, cookies minted with the bench's secret key, exactly as the
  server mints them) and their profiles are filled by pixel hits before any measurement. wrk rotates
  over them (``scripts/rotate.lua``): one cookie would be capped and fatigued after a few ads and
  measure the fallback path. The mix of ``path``s ``/ad.json`` answers for these visitors is printed
  before and after the ad runs.
- Clicks rotate over the click links of several hundred impressions; the click-flood limits are
  raised in the product's environment because the whole bench comes from one address.
- Campaign budgets are raised so the bench does not spend them out mid-run (the budget scripts
  still run on every ad and click).
- "p99 at half of the maximum rate" comes from ``scripts/loadgen.py`` (open loop, latency from the
  intended send time): wrk cannot hold a rate and wrk2 is not packaged here.
- Report latency at 10 and 100 million events (``--report-events``): ``scripts/gen_events.py``
  fills a ``bench`` database of the same ClickHouse server, then 30-day reports are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from loadgen import closed_loop, fixed_rate  # noqa: E402

# A current desktop Chrome on Windows: what most of the traffic looks like.
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
ROTATE_LUA = ROOT / "scripts" / "rotate.lua"
DEMO_SKUS = [f"D{n}" for n in range(1001, 1061)]
OUTDOOR_SKUS = [f"T{n}" for n in range(2001, 2025)]
AD_SIZES = ("300x250", "728x90", "160x600", "320x50", "320x100", "responsive")


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


def wrk(url: str, seconds: int, connections: int, headers: dict | None = None, requests: Path | None = None) -> dict:
    """One wrk run; ``requests`` is a file of ``path<TAB>cookie`` lines to rotate over (``rotate.lua``)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in {"User-Agent": USER_AGENT, **(headers or {})}.items():
        cmd += ["-H", f"{key}: {value}"]
    cmd.append(url)
    if requests is not None:
        cmd[-1:-1] = ["-s", str(ROTATE_LUA)]
        cmd += ["--", str(requests)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``); 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(servers_dir: Path) -> dict[str, int]:
    """Process ids of the Redis and ClickHouse servers ``scripts/test_servers.py`` started there."""
    try:
        info = json.loads((servers_dir / "servers.json").read_text())
    except OSError:
        return {}
    return {name: info[name]["pid"] for name in ("redis", "clickhouse") if info.get(name, {}).get("pid")}


def redis_client(env: dict):
    import redis

    return redis.Redis.from_url(env["ADSERVER_REDIS_URL"], socket_timeout=10)


def clickhouse(env: dict):
    from tracker.clickhouse import DriverClickHouse
    from tracker.settings import parse_clickhouse_url

    return DriverClickHouse(parse_clickhouse_url(env["ADSERVER_CLICKHOUSE_URL"]), 5, 120)


def mint_visitors(env: dict, count: int) -> list[str]:
    """``count`` visitor cookies (``uid=…``), signed with the product's key as the pixel would sign them."""
    from tracker.identity import UID_COOKIE, VisitorIds

    ids = VisitorIds([k.strip() for k in env["ADSERVER_SECRET_KEY"].split(",") if k.strip()])
    return [f"{UID_COOKIE}={ids.new()[1]}" for _ in range(count)]


def pixel_requests(cookies: list[str], rng: random.Random, per_visitor: int = 3) -> list[tuple[str, str]]:
    """Product views of each visitor: two thirds browse the demo store only, one third also the outdoor store
    (its CPM campaign then competes with the demo's CPC campaign in their auctions)."""
    out = []
    for n, cookie in enumerate(cookies):
        skus = [("demo", sku) for sku in rng.sample(DEMO_SKUS, per_visitor)]
        if n % 3 == 2:
            skus[-1] = ("outdoor", rng.choice(OUTDOOR_SKUS))
        out += [(f"/px.gif?a={adv}&e=view_item&sku={sku}", cookie) for adv, sku in skus]
    return out


def write_requests(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{p}\t{c}\n" for p, c in rows))
    return path


def as_loadgen(rows: list[tuple[str, str]]) -> list[tuple[str, dict[str, str]]]:
    return [(p, {"User-Agent": USER_AGENT, **({"Cookie": c} if c else {})}) for p, c in rows]


def get_json(url: str, cookie: str) -> dict:
    req = urllib.request.Request(url, headers={"Cookie": cookie, "User-Agent": USER_AGENT})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def path_mix(base: str, cookies: list[str], placement: str = "demo-feed") -> dict:
    """What ``/ad.json`` answers these visitors: path (and fallback reason) and winning campaign counts."""
    with ThreadPoolExecutor(8) as pool:
        ads = list(pool.map(lambda c: get_json(f"{base}/ad.json?p={placement}&size=300x250", c), cookies))
    paths = Counter(a["path"] + (f" ({a['fallback_reason']})" if a.get("fallback_reason") else "") for a in ads)
    winners = Counter(a.get("campaign") or "house" for a in ads)
    return {"sampled": len(ads), "paths": dict(paths.most_common()), "winners": dict(winners.most_common())}


def click_requests(base: str, cookies: list[str]) -> list[tuple[str, str]]:
    """The click links of one impression per visitor, with that visitor's cookie."""
    with ThreadPoolExecutor(8) as pool:
        ads = list(pool.map(lambda c: (c, get_json(f"{base}/ad.json?p=demo-feed&size=300x250", c)), cookies))
    return [("/c/" + p["click_url"].rsplit("/c/", 1)[1], c) for c, ad in ads for p in ad["products"]]


def writer_throughput(stack: Stack, events: int, writers: int = 1, batch_size: int = 50_000,
                      servers: dict[str, int] | None = None) -> dict:
    """Events per second from the stream into ClickHouse, for a backlog of ``events``.

    The backlog is written to Redis before any writer starts; the clock runs from spawning the
    writer processes (start-up and migration check included) until the stream is empty and every
    row is visible in ClickHouse. ``writers`` processes share the stream as consumers of one group.
    CPU time per event of the writers (start-up included) and of the ``servers`` (name -> pid) is
    reported too: on a shared machine it varies far less than the wall-clock rate.
    """
    servers = servers if servers is not None else server_pids(stack.workdir / "servers")
    client = redis_client(stack.env)
    stream = "bench:writer:" + secrets.token_hex(3)
    row = {"ts": time.time(), "advertiser": "demo", "event": "view_item", "uid": "u", "skus": ["D1001"]}
    payload = json.dumps(row)
    pipe = client.pipeline(transaction=False)
    for n in range(events):
        pipe.xadd(stream, {"t": "ev", "d": payload})
        if n % 10000 == 9999:
            pipe.execute()
    pipe.execute()
    ch = clickhouse(stack.env)
    count = lambda: ch.execute("SELECT count() FROM events")[0][0]  # noqa: E731
    before = count()
    cpu_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    started = time.monotonic()
    procs = [stack.spawn([PY, "-m", "tracker.writer"], f"writer-bench-{n}.log", ADSERVER_STREAM_KEY=stream,
                         ADSERVER_WRITER_NAME=f"bench-{n}", ADSERVER_WRITER_BATCH_SIZE=str(batch_size))
             for n in range(1, writers + 1)]
    logs = [stack.workdir / f"writer-bench-{n}.log" for n in range(1, writers + 1)]
    ready = None  # when the first writer finished start-up (imports, migrations check) and began reading
    while time.monotonic() - started < 600:
        if ready is None and any(b" draining " in log.read_bytes() for log in logs if log.exists()):
            ready = time.monotonic()
        if not client.xlen(stream) and count() - before >= events:
            break
        time.sleep(0.02)
    done = time.monotonic()
    seconds = done - started
    ready = ready or started
    cpu = {"writers": sum(cpu_seconds(proc.pid) for proc in procs)}
    cpu.update({name: cpu_seconds(pid) - cpu_before[name] for name, pid in servers.items()})
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)
    written = count() - before
    client.delete(stream)
    return {"events": written, "seconds": round(seconds, 2), "events_per_s": round(written / seconds),
            "startup_s": round(ready - started, 2), "after_startup_per_s": round(written / max(done - ready, 1e-3)),
            "writers": writers, "cpu_us_per_event": {k: round(v / max(written, 1) * 1e6, 2) for k, v in cpu.items()}}


def end_to_end_lag(stack: Stack, base: str, hits: int = 300) -> dict:
    """Pixel answered -> row visible in ClickHouse, per hit (p50/p99), with the real writer running.

    ClickHouse is polled every 20 ms from before the first hit, in a thread of its own: polling only
    once every hit was sent (~2 s) would count that sending time into the early hits' lag.
    """
    ch = clickhouse(stack.env)
    marker = "lag" + secrets.token_hex(3)
    sent: dict[int, float] = {}
    visible: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        deadline = time.monotonic() + 60
        while len(visible) < hits and time.monotonic() < deadline and not done.is_set():
            # A row in the answer was visible when the query started: that moment is its visibility
            # time (taking the time after the answer would add the query's own duration to every lag).
            now = time.monotonic()
            rows = ch.execute("SELECT sku FROM events WHERE event = 'view_item' AND sku LIKE %(m)s",
                              {"m": marker + "-%"})
            for (sku,) in rows:
                visible.setdefault(int(sku.rsplit("-", 1)[1]), now)
            time.sleep(0.02)

    poller = threading.Thread(target=poll, name="lag-poller", daemon=True)
    poller.start()
    for n in range(hits):
        urllib.request.urlopen(urllib.request.Request(f"{base}/px.gif?a=demo&e=view_item&sku={marker}-{n}",
                                                      headers={"User-Agent": USER_AGENT})).read()
        sent[n] = time.monotonic()
        time.sleep(0.005)
    poller.join(timeout=70)
    done.set()
    visible = {n: t for n, t in visible.items() if n in sent}
    lags = sorted(visible[n] - sent[n] for n in visible)
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None  # noqa: E731
    return {"hits": hits, "seen": len(lags), "p50_s": pick(0.5), "p99_s": pick(0.99)}


def ad_bytes(base: str, cookie: str) -> dict:
    """Bytes of the HTML unit of every size (the six formats), for a visitor with a profile."""
    out = {}
    for size in AD_SIZES:
        req = urllib.request.Request(f"{base}/ad?p=demo-feed&size={size}",
                                     headers={"Cookie": cookie, "User-Agent": USER_AGENT})
        out[size] = len(urllib.request.urlopen(req).read())
    return out


def report_latency(stack: Stack, volumes: list[int], runs: int) -> list[dict]:
    """30-day report latency (p50 of ``runs``) after loading each volume of impressions into a ``bench`` database.

    Volumes are cumulative: the second load adds what the first lacks (another seed, same 30 days),
    so 10 M then 100 M generates 100 M impressions in all, not 110 M.
    """
    from adserver.console import attribution
    from adserver.console.report import ReportRequest
    from tracker.clickhouse import DriverClickHouse
    from tracker.settings import parse_clickhouse_url

    url = stack.env["ADSERVER_CLICKHOUSE_URL"].rsplit("/", 1)[0] + "/bench"
    timezone = "Asia/Shanghai"
    end = datetime.now(ZoneInfo(timezone)).date() - timedelta(days=1)
    loaded, out = 0, []
    for seed, volume in enumerate(sorted(volumes), 1):
        print(f"loading {volume - loaded:,} impressions for the report benchmark ...", flush=True)
        started = time.monotonic()
        subprocess.run([PY, str(ROOT / "scripts" / "gen_events.py"), "--impressions", str(volume - loaded),
                        "--seed", str(seed), "--end", end.isoformat(), "--timezone", timezone, "--clickhouse", url],
                       cwd=ROOT, env=stack.env, check=True)
        generated = time.monotonic() - started
        loaded = volume
        ch = DriverClickHouse(parse_clickhouse_url(url), 10, 600)
        events = ch.execute("SELECT count() FROM events WHERE advertiser = 'bench'")[0][0]
        request = ReportRequest("bench", end - timedelta(days=29), end, "day", timezone)
        s, e = request.bounds()
        attribution.forget_kept()
        started = time.monotonic()
        attribution.keep_resolutions(ch, "bench", s, e)  # one-off per order, as bench_reports.py does
        one_off = time.monotonic() - started

        out.append({"impressions": volume, "events": events, "generate_s": round(generated),
                    "one_off_s": round(one_off, 1), **time_reports(ch, request, runs)})
        print(out[-1], flush=True)
    return out


def time_reports(ch, request, runs: int) -> dict:
    """p50 (ms) of the 30-day report by day, by product, and of a dashboard page's three queries."""
    from adserver.console.report import run_report

    def p50(fn) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return round(statistics.median(times) * 1000, 1)

    def dashboard() -> None:
        run_report(ch, request)
        run_report(ch, request.previous(), with_rows=False)
        run_report(ch, regroup(request, "placement"))

    return {"by_day_ms": p50(lambda: run_report(ch, request)),
            "by_product_ms": p50(lambda: run_report(ch, regroup(request, "sku"))),
            "dashboard_ms": p50(dashboard)}


def regroup(request, group_by: str):
    """The same report broken down another way."""
    return replace(request, group_by=group_by)


def median_run(runs: list[dict]) -> dict:
    """The run with the median req/s (its latencies come with it), plus every run's req/s."""
    ordered = sorted(runs, key=lambda x: x["rps"])
    return {**ordered[len(ordered) // 2], "all_rps": [round(x["rps"]) for x in runs]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="wrk runs per endpoint (interleaved); the median is kept")
    parser.add_argument("--visitors", type=int, default=20_000, help="visitors with profiles the ad bench rotates over")
    parser.add_argument("--click-impressions", type=int, default=500, help="impressions whose click links are rotated")
    parser.add_argument("--writer-events", type=int, default=200_000)
    parser.add_argument("--writers", type=int, default=1, help="writer processes draining the stream together")
    parser.add_argument("--report-events", default="10000000,100000000",
                        help="impression volumes for the report latency (comma-separated, cumulative)")
    parser.add_argument("--report-runs", type=int, default=5)
    parser.add_argument("--skip-reports", action="store_true", help="no report latency (saves ~20 minutes)")
    parser.add_argument("--skip-writer", action="store_true", help="no writer throughput")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if not subprocess.run(["which", "wrk"], capture_output=True).returncode == 0:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(os.environ.get("ADSERVER_BENCH_DIR") or f"/tmp/adserver-bench-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, args.workers)
    results: dict = {"started": time.monotonic(), "commit": source_state()}  # what is measured: the tree at start
    rng = random.Random(1)
    try:
        stack.start_servers()
        product_port, bare_port = free_port(), free_port()
        base = f"http://127.0.0.1:{product_port}"
        bare_url = f"http://127.0.0.1:{bare_port}"
        stack.env["ADSERVER_PUBLIC_URL"] = base
        stack.env["ADSERVER_COOKIE_SECURE"] = "0"
        # The whole bench comes from one address: the click-flood limits would mark nearly every click.
        stack.env["ADSERVER_CLICK_LIMIT_VISITOR"] = stack.env["ADSERVER_CLICK_LIMIT_ADDRESS"] = "1000000000"
        stack.cli("migrate")
        print(stack.cli("demo", "--base-url", base).strip())
        for campaign in ("demo-retargeting", "outdoor-retargeting"):  # not spent out mid-bench
            stack.cli("create-campaign", campaign, "--daily-budget", "100000000")
        stack.gunicorn("adserver:create_app()", product_port, "product.log")
        stack.gunicorn("scripts.bare_app:create_app()", bare_port, "bare.log")
        stack.spawn([PY, "-m", "tracker.writer"], "writer.log")
        wait_http(f"{base}/healthz")
        wait_http(f"{bare_url}/px.gif")

        visitors = mint_visitors(stack.env, args.visitors)
        seed = pixel_requests(visitors, rng)
        print(f"seeding {len(visitors):,} visitor profiles with {len(seed):,} pixel hits ...", flush=True)
        results["seed"] = closed_loop(base, as_loadgen(seed), len(seed), connections=16)
        sample = rng.sample(visitors, min(300, len(visitors)))
        results["mix_before"] = path_mix(base, sample)
        print("ad paths before the runs:", results["mix_before"], flush=True)
        clicks = click_requests(base, visitors[:args.click_impressions])
        files = {
            "pixel": write_requests(workdir / "pixel.txt", pixel_requests(visitors, rng)),
            "ad": write_requests(workdir / "ad.txt", [("/ad?p=demo-feed&size=300x250", c) for c in visitors]),
            "click": write_requests(workdir / "click.txt", clicks),
        }
        urls = {"bare": f"{bare_url}/px.gif", "pixel": f"{base}/px.gif", "ad": f"{base}/ad", "click": f"{base}/c/"}
        runs: dict[str, list[dict]] = {name: [] for name in urls}
        for n in range(args.runs):  # interleaved, so drift of the shared machine spreads over every endpoint
            for name, url in urls.items():
                print(f"run {n + 1}/{args.runs}: {name} ...", flush=True)
                runs[name].append(wrk(url, args.seconds, args.connections, requests=files.get(name)))
        for name, measured in runs.items():
            results[name] = median_run(measured)
            print(name, results[name], flush=True)
        results["click"]["links"] = len(clicks)
        results["mix_after"] = path_mix(base, sample)
        print("ad paths after the runs:", results["mix_after"], flush=True)

        rate = round(results["ad"]["rps"] / 2)
        ad_rows = as_loadgen([("/ad?p=demo-feed&size=300x250", c) for c in visitors])
        print(f"fixed rate: the ad and the bare app at {rate} req/s ...", flush=True)
        results["ad_half"] = fixed_rate(base, ad_rows, rate, args.seconds)
        results["bare_half"] = fixed_rate(bare_url, as_loadgen([("/px.gif", "")]), rate, args.seconds)
        print(results["ad_half"], results["bare_half"], flush=True)

        print("measuring end-to-end lag ...")
        results["lag"] = end_to_end_lag(stack, base)
        results["ad_bytes"] = ad_bytes(base, visitors[-1])
        results["web_seconds"] = round(time.monotonic() - results["started"])
        if not args.skip_writer:
            print("measuring the writer ...")
            results["writer"] = writer_throughput(stack, args.writer_events, args.writers)
        if not args.skip_reports:
            volumes = [int(v) for v in args.report_events.split(",") if v.strip()]
            started = time.monotonic()
            results["reports"] = report_latency(stack, volumes, args.report_runs)
            results["reports_seconds"] = round(time.monotonic() - started)
        results["total_seconds"] = round(time.monotonic() - results["started"])
    finally:
        stack.close()
    out = Path(args.out)
    report = render(results, args, kept_notes(out))
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")
    return 0


NOTES_MARK = "<!-- Written by hand below this line: make bench keeps it. -->"


def kept_notes(path: Path) -> str:
    """The hand-written part of the previous document (profiles, analysis), kept across runs."""
    text = path.read_text() if path.exists() else ""
    return text[text.index(NOTES_MARK):] if NOTES_MARK in text else NOTES_MARK + "\n"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def source_state() -> tuple[str, bool]:
    """The commit and whether tracked files differ from it (a long run must name what it started with)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return commit, bool(dirty)


def render(r: dict, args, notes: str = "") -> str:
    commit, dirty = r["commit"]
    bare = r["bare"]["rps"]
    seed = r["seed"]
    lines = [
        "# Benchmarks", "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit `{commit}`"
        f"{' (with uncommitted changes in the tree)' if dirty else ''} on "
        f"{platform.machine()} with {os.cpu_count()} cores ({platform.python_implementation()} "
        f"{platform.python_version()}), by `make bench` (`scripts/bench.py`), in {r['total_seconds']} s "
        f"(web {r['web_seconds']} s, reports {r.get('reports_seconds', 0)} s). The machine was shared with "
        "other work: load generator, servers, Redis and ClickHouse share the two cores, so the ratios to the "
        "bare app measured in the same run are the figures to compare.", "",
        "## Web: product against a bare Flask app", "",
        f"wrk -t1 -c{args.connections}, {args.seconds} s per run, {args.runs} runs per endpoint interleaved "
        "(bare, pixel, ad, click, bare, ...); the table shows the run with the median req/s (all runs in the "
        f"last column). gunicorn with `deploy/gunicorn.conf.py` ({args.workers} workers) for both apps. Every "
        "request sends a desktop Chrome `User-Agent`. Requests rotate (`scripts/rotate.lua`) over "
        f"{args.visitors:,} visitors whose profiles were filled by {seed['requests']:,} pixel hits first "
        f"({seed['rps']:,.0f} req/s, {seed['non_2xx']} errors): the pixel over views of 2-3 products of one or "
        "two stores per visitor, the ad (`/ad?p=demo-feed&size=300x250`) over the visitors' cookies, the click "
        f"over {r['click']['links']:,} click links of {args.click_impressions} impressions with their visitors' "
        "cookies. For the bench only: click-flood limits (`ADSERVER_CLICK_LIMIT_VISITOR`, "
        "`ADSERVER_CLICK_LIMIT_ADDRESS`) raised to 10^9, since every request comes from 127.0.0.1, and both "
        "demo campaigns' daily budgets raised to 10^8, so they are not spent out mid-run (the budget scripts "
        "still run).", "",
        "| endpoint | req/s | ratio to bare | p50 ms | p99 ms | non-2xx/3xx | req/s of each run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("bare", "pixel", "ad", "click"):
        x = r[name]
        lines.append(f"| {name} | {x['rps']:,.0f} | {x['rps'] / bare:.2f} | {_ms(x['p50_ms'])} | {_ms(x['p99_ms'])} "
                     f"| {x['non_2xx']} | {', '.join(f'{v:,}' for v in x['all_rps'])} |")
    half, bare_half = r["ad_half"], r["bare_half"]
    lines += [
        "", f"**Ad at half of its maximum rate** ({half['target_rps']:,.0f} req/s, open loop for {args.seconds} s, "
        "`scripts/loadgen.py`: requests leave on schedule whatever the server does, latency counted from the "
        "scheduled time, 64 keep-alive connections; wrk cannot hold a rate and wrk2 is not packaged here): "
        f"achieved {half['rps']:,.0f} req/s, p50 **{_ms(half['p50_ms'])} ms**, p90 {_ms(half['p90_ms'])} ms, "
        f"p99 **{_ms(half['p99_ms'])} ms**, max {_ms(half['max_ms'])} ms, {half['non_2xx'] + half['errors']} "
        f"errors. The bare app at the same rate with the same generator: p50 {_ms(bare_half['p50_ms'])} ms, "
        f"p99 {_ms(bare_half['p99_ms'])} ms (the generator's own share).", "",
        "Ad decisions `/ad.json` gave the same 300 sampled visitors (path, fallback reason; winning campaign):", "",
        "| | paths | winners |", "|---|---|---|",
    ]
    for label, key in (("before the runs", "mix_before"), ("after the runs", "mix_after")):
        mix = r[key]
        lines.append(f"| {label} | {', '.join(f'{k} {v}' for k, v in mix['paths'].items())} "
                     f"| {', '.join(f'{k} {v}' for k, v in mix['winners'].items())} |")
    lag = r["lag"]
    lines += [
        "", f"End-to-end lag (pixel answered -> row visible in ClickHouse), {lag['seen']}/{lag['hits']} hits: "
        f"p50 {lag['p50_s']} s, p99 {lag['p99_s']} s.", "",
        "Ad unit bytes (HTML + CSS, without product images, a visitor with a profile; the promise is 8,192): "
        + ", ".join(f"{size} {n:,}" for size, n in r["ad_bytes"].items()) + ".", "",
    ]
    if "writer" in r:
        w = r["writer"]
        lines += [
            "## Writer", "",
            f"Writer ({w['writers']} process{'es' if w['writers'] > 1 else ''}): {w['events']:,} events from "
            f"the stream into ClickHouse in {w['seconds']} s = "
            f"**{w['events_per_s']:,} events/s**.", "",
        ]
    if r.get("reports"):
        lines += [
            "## Reports at " + " and ".join(f"{x['impressions'] / 1e6:g} million" for x in r["reports"])
            + " impressions", "",
            "`scripts/gen_events.py` loads synthetic traffic of advertiser `bench` (30 days, Asia/Shanghai) into a "
            "`bench` database of the same ClickHouse server, cumulatively (the second volume adds what the first "
            f"lacks); a 30-day report is then timed, p50 of {args.report_runs} runs, after the one-off resolution of "
            "the orders' attribution (see `docs/reports.md`). `--skip-reports` leaves this out; it is most of the "
            "run time.", "",
            "| impressions | events in the table | load s | one-off s | by day ms | by product (sku) ms | dashboard page ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in r["reports"]:
            lines.append(f"| {x['impressions']:,} | {x['events']:,} | {x['generate_s']:,} | {x['one_off_s']} "
                         f"| **{x['by_day_ms']}** | {x['by_product_ms']} | {x['dashboard_ms']} |")
        lines.append("")
    return "\n".join(lines) + "\n" + notes


if __name__ == "__main__":
    raise SystemExit(main())
