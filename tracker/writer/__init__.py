"""The batch writer: drains the Redis event stream into ClickHouse.

It reads with a consumer group, gathers a batch bounded by size and time, inserts it, and only
then acknowledges (and deletes) the entries. A failed insert is retried with back-off and never
acknowledged, so nothing accepted is lost; entries left pending by a crash are read again at
start-up, and those ClickHouse already holds (rows carry their stream id) are not inserted twice.

Throughput (``docs/benchmarks.md``, "Writer profile"): the work is Python per event, so the path
avoids per-event Python wherever it can. Stream replies are taken raw from hiredis (no dict per
entry), JSON is parsed by orjson, rows are built a column at a time with C-level checks of the
common well-formed case (``event_columns``) and sent as one columnar native block. While one batch
is inserted and acknowledged by a second thread, the next one is read and built: both wait on
servers much of the time, so the waits overlap. Several writer processes may share the stream,
each under its own consumer name (``ADSERVER_WRITER_NAME``). A partitioned stream
(``ADSERVER_STREAM_PARTITIONS``, ``tracker.partitions``) has a stream and a consumer group per
partition; a process drains the partitions it is given (``--partitions``), with one ``BatchWriter``
each (``fleet.partition_writers``), so writers on disjoint partitions add up. With
``--partitions auto`` the processes share the partitions through leases in Redis instead (``leases``):
a writer started later takes its share, and a dead writer's partitions move to the others.

Run it as its own process in production (``python -m tracker.writer``); the embedded single-process
mode runs it as a thread of the web app (``start_thread``). SIGTERM makes it flush what it holds
and exit.

- ``rows``: cleaning of single values, ``bad_events`` rows;
- ``columns``: the ``events`` columns of a whole batch;
- ``batch``: a batch of raw stream entries and the building of its columns;
- ``stream_io``: the consumer group, reads, acknowledgements and trimming of the stream;
- ``recovery``: which entries of a batch read again ClickHouse already holds (with a replica down too);
- ``pipeline``: ``BatchWriter``, its reading and inserting threads, retries and recovery;
- ``leases``: partitions shared by writer processes through leases, and why each entry stays stored once;
- ``__main__``: the writer process.
"""

from __future__ import annotations

from tracker.writer.columns import event_block, event_columns
from tracker.writer.fleet import start_thread
from tracker.writer.pipeline import BatchWriter
from tracker.writer.rows import bad_row
from tracker.writer.stream_io import GROUP

__all__ = ["GROUP", "BatchWriter", "bad_row", "event_block", "event_columns", "start_thread"]
