"""The writer's throughput: a backlog of events drained from the Redis stream into ClickHouse."""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Mapping

from tracker.partitions import Partitions
from tracker.stream_entries import encode_row, entry_fields
from tracker.writer.stream_io import pairs

from .cpu import cpu_seconds, total_cpu_seconds
from .stack import PY, Stack, clickhouse, redis_client, server_pids

__all__ = ["cpu_seconds", "partition_ranges", "stream_packing", "writer_throughput"]


def partition_ranges(partitions: int, writers: int) -> list[str]:
    """``--partitions`` of each writer process: ``partitions`` split into ``writers`` contiguous ranges."""
    if not 1 <= writers <= partitions:
        raise ValueError(f"{writers} writers cannot share {partitions} partitions")
    bounds = [-(-n * partitions // writers) for n in range(writers + 1)]  # the first writers take the spare ones
    return [f"{lo}-{hi - 1}" for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _fill(client, partitions: Partitions, events: int, pack: int = 1) -> None:
    """``events`` pixel events of distinct visitors, each on its visitor's partition as the pixel puts it,
    in entries of ``pack`` events (``tracker.stream_entries``), as the web processes' batches write them.

    Distinct visitors spread the rows over every partition and, in ClickHouse, over every shard."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    waiting: dict[str, list[bytes]] = {}
    for n in range(events):
        uid = f"bench-{n}"
        row = {"ts": now, "advertiser": "demo", "event": "view_item", "uid": uid, "skus": ["D1001"]}
        stream = partitions.stream(partitions.of(uid))
        rows = waiting.setdefault(stream, [])
        rows.append(encode_row(row))
        if len(rows) == pack:
            _add_entry(pipe, stream, waiting.pop(stream))
        if len(pipe) >= 10_000:
            pipe.execute()
    for stream, rows in waiting.items():
        _add_entry(pipe, stream, rows)
    pipe.execute()


def _add_entry(pipe, stream: str, payloads: list[bytes]) -> None:
    pipe.xadd(stream, pairs(entry_fields(payloads)))


def stream_packing(env: Mapping[str, str], since: float) -> dict:
    """Events per stream entry among the events ClickHouse stored since ``since`` (unix seconds): how
    the web processes' batches packed them (a packed event's ``stream_id`` is its entry's id and
    ``.<place>``, ``tracker.stream_entries``)."""
    ch = clickhouse(dict(env))
    try:
        (events, entries), = ch.execute(
            "SELECT count(), uniqExact(splitByChar('.', stream_id)[1]) FROM events "
            "WHERE inserted_at >= toDateTime(%(since)s) AND stream_id != ''", {"since": int(since)})
    finally:
        ch.close()
    return {"events": events, "entries": entries, "per_entry": round(events / entries, 2) if entries else None}


def writer_throughput(stack: Stack, events: int, writers: int = 1, batch_size: int = 50_000,
                      servers: Mapping[str, int | list[int]] | None = None, partitions: int = 1,
                      mode: Mapping[str, str] | None = None, pack: int = 1) -> dict:
    """Events per second from the stream into ClickHouse, for a backlog of ``events``.

    The backlog is written to Redis before any writer starts; the clock runs from spawning the
    writer processes (start-up and migration check included) until every partition's stream is
    empty and every row is visible in ClickHouse. The stream has ``partitions`` partitions; the
    ``writers`` processes take contiguous ranges of them (``--partitions``), and with one partition
    several writers share it as consumers of one group. ``mode`` holds settings over the stack's
    (the cluster's, for cluster mode). CPU time per event of the writers (start-up included) and of
    the ``servers`` (name -> pid or pids) is reported too: on a shared machine it varies far less
    than the wall-clock rate. The backlog's entries hold ``pack`` events each (``stream_packing``
    measures what the pixel's runs wrote).
    """
    mode = dict(mode or {})
    env = {**stack.env, **mode}
    servers = servers if servers is not None else server_pids(stack.workdir / "servers")
    pids = {name: pid if isinstance(pid, list) else [pid] for name, pid in servers.items()}
    client = redis_client(env)
    layout = Partitions("bench:writer:" + secrets.token_hex(3), partitions)
    _fill(client, layout, events, pack)
    ch = clickhouse(env)
    count = lambda: ch.execute("SELECT count() FROM events")[0][0]  # noqa: E731
    backlog = lambda: sum(client.xlen(stream) for stream in layout.streams())  # noqa: E731
    before = count()
    cpu_before = {name: total_cpu_seconds(p) for name, p in pids.items()}
    ranges = partition_ranges(partitions, writers) if partitions > 1 else [None] * writers
    started = time.monotonic()
    writer_env = {**mode, "ADSERVER_STREAM_KEY": layout.stream_key, "ADSERVER_STREAM_PARTITIONS": str(partitions),
                  "ADSERVER_WRITER_BATCH_SIZE": str(batch_size)}
    procs = [stack.spawn([PY, "-m", "tracker.writer", *(["--partitions", owned] if owned else [])],
                         f"writer-bench-{n}.log", **writer_env, ADSERVER_WRITER_NAME=f"bench-{n}")
             for n, owned in enumerate(ranges, 1)]
    logs = [stack.workdir / f"writer-bench-{n}.log" for n in range(1, writers + 1)]
    ready = None  # when the first writer finished start-up (imports, migrations check) and began reading
    while time.monotonic() - started < 600:
        if ready is None and any(b" draining " in log.read_bytes() for log in logs if log.exists()):
            ready = time.monotonic()
        if not backlog() and count() - before >= events:
            break
        if any(proc.poll() is not None for proc in procs):
            raise RuntimeError(f"a writer exited with status {[p.returncode for p in procs]}: see {logs}")
        time.sleep(0.02)
    done = time.monotonic()
    seconds = done - started
    ready = ready or started
    cpu = {"writers": total_cpu_seconds(proc.pid for proc in procs)}
    cpu.update({name: total_cpu_seconds(p) - cpu_before[name] for name, p in pids.items()})
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)
    written = count() - before
    for stream in layout.streams():
        client.delete(stream)
    client.close()
    ch.close()
    return {"events": written, "seconds": round(seconds, 2), "events_per_s": round(written / seconds),
            "startup_s": round(ready - started, 2), "after_startup_per_s": round(written / max(done - ready, 1e-3)),
            "writers": writers, "partitions": partitions, "pack": pack,
            "cpu_us_per_event": {k: round(v / max(written, 1) * 1e6, 2) for k, v in cpu.items()}}
