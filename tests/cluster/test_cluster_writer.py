"""The writer's exactly-once on a single server and on the ClickHouse cluster, by the same code path: a
batch stored before a crash (insert landed, acknowledgement lost) is recovered without a second copy."""

from __future__ import annotations

import time

import pytest

from tests.conftest import drain
from tracker.stream import EventStream
from tracker.writer import BatchWriter


@pytest.fixture(params=["server", pytest.param("cluster", marks=pytest.mark.slow)])
def store(request):
    return request.getfixturevalue("ch" if request.param == "server" else "cluster_any_ch")


def _push(stream: EventStream, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        stream.record({"ts": time.time(), "advertiser": "shop", "event": "view_item", "skus": [f"S{i}"],
                       "uid": f"u{i}"}, uid=f"u{i}")


def test_crash_after_insert_before_ack_stores_each_event_once(settings, redis_client, store):
    stream = EventStream(redis_client, settings.stream_key, settings.profile_size, settings.profile_ttl_days)
    writer = BatchWriter(redis_client, store, settings.stream_key, "w1", batch_size=1000, batch_seconds=0.01)
    writer.ensure_group()
    _push(stream, 40)  # forty visitors: both shards get some
    batch = writer._build(writer._gather())
    writer._insert("events", batch.event_names, batch.events)  # then the writer died before acknowledging
    _push(stream, 5, start=40)
    again = BatchWriter(redis_client, store, settings.stream_key, "w1", batch_seconds=0.05)
    assert again.recover() == 40
    drain(again)
    assert store.execute("SELECT count(), uniqExact(stream_id) FROM events") == [(45, 45)]
