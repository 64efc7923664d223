"""Where a table's rows are on a cluster, and emptying them there: the work under ``tracker.schema.stored``,
kept apart so that migrations can empty a table they just created without importing ``stored`` (which
reads the migrations' table layouts).

The caller says whether the table is sharded; every name formatted into a statement comes from the
schema's own DDL, never from a request.
"""

from __future__ import annotations

from collections.abc import Callable

from tracker.clickhouse import ClickHouse
from tracker.errors import StoreUnavailable


def empty_stored(ch: ClickHouse, table: str, sharded: bool) -> None:
    """Empty ``table`` where its rows are (see ``tracker.schema.stored.truncate_stored``): ``TRUNCATE`` on
    one server; on a cluster every partition dropped, once per shard for a sharded table (in each shard's
    ``<table>_local``), once for a table on every node."""
    if not getattr(ch, "cluster", None):
        ch.execute(f"TRUNCATE TABLE IF EXISTS {table}")
    elif not sharded:
        _drop_every_partition(ch, table)
    else:
        on_each_shard(ch, lambda node: _drop_every_partition(node, f"{table}_local"))


def _drop_every_partition(node: ClickHouse, stored: str) -> None:
    """Drop each partition of the replicated table ``stored`` that its ZooKeeper node knows (the list
    ``TRUNCATE`` itself works through: it includes partitions whose parts this replica has not fetched
    yet). With ``replication_alter_partitions_sync`` at its default (1) each statement returns once this
    replica has dropped the partition."""
    rows = node.execute("SELECT zookeeper_path FROM system.replicas WHERE database = %(db)s AND table = %(table)s",
                        {"db": node.database, "table": stored})
    if not rows:  # not created yet (IF EXISTS), or not replicated: nothing to wait for
        node.execute(f"TRUNCATE TABLE IF EXISTS {node.database}.{stored}")
        return
    (zookeeper_path,), = rows
    partitions = node.execute("SELECT name FROM system.zookeeper WHERE path = %(path)s",
                              {"path": f"{zookeeper_path}/block_numbers"})
    for (partition_id,) in partitions:
        node.execute(f"ALTER TABLE {node.database}.{stored} DROP PARTITION ID %(id)s", {"id": partition_id})


def on_each_shard(ch: ClickHouse, action: Callable[[ClickHouse], object]) -> None:
    """Run ``action(node)`` once per shard of the cluster, on the first of its replicas that answers."""
    nodes = ch.replicas()
    try:
        for shard in sorted({node.shard for node in nodes}):
            failures = []
            for node in (n for n in nodes if n.shard == shard):
                try:
                    action(node)
                    break
                except StoreUnavailable as exc:
                    failures.append(str(exc))
            else:
                raise StoreUnavailable(f"no replica of shard {shard} answers: {'; '.join(failures)}")
    finally:
        for node in nodes:
            node.close()
