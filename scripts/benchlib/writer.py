"""The writer's throughput: a backlog of events drained from the Redis stream into ClickHouse."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path

from .stack import PY, Stack, clickhouse, redis_client, server_pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``); 0.0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
