"""HTTP for the benchmarks: free ports, waiting for a server, wrk runs and their figures."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

# A current desktop Chrome on Windows: what most of the traffic looks like.
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
ROTATE_LUA = Path(__file__).resolve().parents[1] / "rotate.lua"


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


def get_json(url: str, cookie: str) -> dict:
    req = urllib.request.Request(url, headers={"Cookie": cookie, "User-Agent": USER_AGENT})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())


def parse_wrk(output: str) -> dict:
    """req/s and latency percentiles from ``wrk --latency`` output."""
    def seconds(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    lat = {p: seconds(v) * 1000 for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    answered = re.search(r"(\d+) requests in ", output)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "non_2xx": int(errors.group(1)) if errors else 0, "requests": int(answered.group(1)) if answered else 0}


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
