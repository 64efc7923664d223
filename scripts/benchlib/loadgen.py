#!/usr/bin/env python3
"""A small HTTP/1.1 load generator: fixed-rate (open loop) or as fast as possible (closed loop).

wrk measures a server's maximum rate, but it cannot hold a given rate, and its latencies are those
of requests sent when a connection was free: a server stall delays the next requests instead of
counting against them (coordinated omission). ``wrk2`` fixes both but is not packaged here, so this
script does the part the benchmark needs:

- ``rate`` mode sends request *i* at ``start + i / rate`` whatever the server does, over a pool of
  keep-alive connections, and measures each latency from that *intended* send time: a request
  that waits for a free connection counts its wait, as a browser's would.
- ``closed`` mode sends ``requests`` requests over ``connections`` connections as fast as the
  server answers (used to seed visitor profiles before the measurements).

Requests rotate over a list of ``(path, headers)``; responses are read by ``Content-Length``
(gunicorn and Flask always send it for these endpoints). Python's event loop costs CPU on the
same machine as the server: at a few thousand requests per second this is a fraction of a core,
which is why the maximum rates still come from wrk.

Usage::

    python -m scripts.benchlib.loadgen --url http://127.0.0.1:8000/ad?p=demo-feed --rate 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Request = tuple[str, dict[str, str]]


@dataclass
class Result:
    """Latencies in seconds (from the intended send time in ``rate`` mode) and status counts."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = sorted(self.latencies)

        def pick(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None

        done = len(lat)
        return {"requests": done, "rps": round(done / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "max_ms": pick(1.0),
                "errors": self.errors, "non_2xx": sum(n for s, n in self.statuses.items() if not 200 <= s < 400),
                "statuses": dict(sorted(self.statuses.items()))}


class Connection:
    """One keep-alive connection; reconnects when the server closed it (gunicorn's keepalive timeout)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(raw)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
                continue
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                await self.reader.readexactly(length)
            if close:
                self.close()
            return status
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode(host: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _run_rate(host: str, port: int, requests: Sequence[bytes], rate: float, seconds: float,
                    connections: int) -> Result:
    result = Result()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(Connection(host, port))
    total = int(rate * seconds)
    tasks = []

    async def one(raw: bytes, intended: float) -> None:
        conn = await idle.get()
        try:
            status = await conn.request(raw)
            result.latencies.append(time.perf_counter() - intended)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conn.close()
            result.errors += 1
        finally:
            idle.put_nowait(conn)

    start = time.perf_counter()
    cycle = itertools.cycle(requests)
    for i in range(total):
        intended = start + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(next(cycle), intended)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return result


async def _run_closed(host: str, port: int, requests: Sequence[bytes], count: int, connections: int) -> Result:
    result = Result()
    counter = itertools.count()

    async def worker() -> None:
        conn = Connection(host, port)
        while (i := next(counter)) < count:
            sent = time.perf_counter()
            try:
                status = await conn.request(requests[i % len(requests)])
                result.latencies.append(time.perf_counter() - sent)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                result.errors += 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - start
    return result


def _target(base: str, requests: Iterable[Request]) -> tuple[str, int, list[bytes]]:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    return host, port, [encode(parts.netloc, path, headers) for path, headers in requests]


def fixed_rate(base: str, requests: Iterable[Request], rate: float, seconds: float,
               connections: int = 64) -> dict:
    """Open-loop load at ``rate`` req/s for ``seconds``; latency percentiles from intended send times."""
    host, port, raw = _target(base, requests)
    summary = asyncio.run(_run_rate(host, port, raw, rate, seconds, connections)).summary()
    summary["target_rps"] = rate
    return summary


def closed_loop(base: str, requests: Iterable[Request], count: int, connections: int = 16) -> dict:
    """``count`` requests as fast as the server answers, ``connections`` at a time."""
    host, port, raw = _target(base, requests)
    return asyncio.run(_run_closed(host, port, raw, count, connections)).summary()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.benchlib.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="http://host:port/path?query")
    parser.add_argument("--header", "-H", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--rate", type=float, help="requests per second (open loop); without it: closed loop")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--requests", type=int, default=10000, help="closed loop: how many requests")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = dict(h.split(":", 1) for h in args.header)
    reqs = [(path, {k.strip(): v.strip() for k, v in headers.items()})]
    base = f"{parts.scheme}://{parts.netloc}"
    if args.rate:
        out = fixed_rate(base, reqs, args.rate, args.seconds, args.connections)
    else:
        out = closed_loop(base, reqs, args.requests, args.connections)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
