"""The writer's recovery check with a replica down: its caught-up twin answers for it, or the check fails.

Shard 2's second replica is stopped in turn: once after it stored a row its twin could not fetch yet
(the check must fail: nobody can tell whether that row is stored), once after its twin fetched
everything (the twin answers for it, so a recovered batch is not held up by a stopped replica).
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.cluster.conftest import settle_ddl
from tests.cluster.test_cluster_schema import event
from tracker import schema
from tracker.errors import StoreUnavailable
from tracker.writer.recovery import already_stored

pytestmark = pytest.mark.slow


def test_a_stopped_replica_is_answered_for_by_a_caught_up_twin_only(cluster, cluster_any_ch, clickhouse_nodes):
    ch = cluster_any_ch
    twin_node, victim_node = clickhouse_nodes[2:]  # shard 2's replicas; the client's node stays up
    twin, victim = twin_node.client(ch.database), victim_node.client(ch.database)
    stream_id = f"{int(time.time() * 1000)}-0"
    row = list(event("visitor", stream_id))
    row[0] = datetime.utcnow().replace(microsecond=0)
    try:
        twin.execute(f"SYSTEM STOP FETCHES {ch.database}.events_local")
        victim.insert("events_local", schema.EVENTS_COLUMNS, [row])
        victim.close()
        victim_node.stop()
        with pytest.raises(StoreUnavailable, match="no replica of its shard has every part"):
            already_stored(ch, [stream_id])  # the twin knows a part exists that it does not have

        twin.execute(f"SYSTEM START FETCHES {ch.database}.events_local")
        victim_node.start()
        twin.execute(f"SYSTEM SYNC REPLICA {ch.database}.events_local")
        victim_node.stop()
        assert already_stored(ch, [stream_id, f"{int(time.time() * 1000)}-1"]) == {stream_id}
    finally:
        twin.execute(f"SYSTEM START FETCHES {ch.database}.events_local")
        twin.close()
        victim_node.start()
        settle_ddl(clickhouse_nodes, cluster.name, ch.database)
