"""Statements on the rows of a schema table where they are stored: emptying it (``truncate_stored``) and
``ALTER``-ing its rows (``alter_stored``), on one server or across a cluster.

On a cluster a sharded table stores nothing in its ``Distributed`` table: its rows are in each shard's
``<table>_local``; a table without a sharding key (``LAYOUTS``) is one replicated table on every node.
Either way a statement runs on one replica (of each shard, or of the cluster) and replication carries
it to the others. Never ``ON CLUSTER``: ClickHouse 18.16's DDL worker runs such an ALTER on one replica
per shard, and under load a second replica can run it too and stop its DDL worker on the clash ("Node
exists"), after which every ``ON CLUSTER`` statement waits for that node in vain.

Only a table of the schema registry is formatted into a statement (an identifier, never a value).
"""

from __future__ import annotations

from tracker.clickhouse import ClickHouse
from tracker.schema.migrations import LAYOUTS, _cluster
from tracker.schema.shards import empty_stored, on_each_shard


def truncate_stored(ch: ClickHouse, table: str) -> None:
    """Empty ``table`` where its rows are.

    On one server, ``TRUNCATE``. On a cluster, every partition is dropped instead, one ``ALTER TABLE ...
    DROP PARTITION ID`` each (``tracker.schema.shards``): a replicated ``TRUNCATE`` on ClickHouse 18.16
    holds the table's lock while it waits for every replica to apply it, and a replica that is fetching
    a part from that very node waits for the lock before it can, so both wait until the fetch times out
    (30 minutes); a dropped partition waits only for the replica that ran it, and the others apply it
    from the replication log, a replica that is down once it is back."""
    _registered(table)
    empty_stored(ch, table, sharded=LAYOUTS[table] is not None)


def alter_stored(ch: ClickHouse, table: str, clause: str, params: dict | None = None) -> None:
    """``ALTER TABLE <table> <clause>`` (``DELETE WHERE ...``, ``DROP PARTITION ...``) where its rows are.

    On a cluster a sharded table's ALTER runs once per shard, on its first replica that answers. Both
    clauses are safe to run twice (a replica that timed out after taking it, then the next one).
    ``clause`` is the caller's fixed SQL with ``%(name)s`` placeholders; every value goes in ``params``.
    """
    _registered(table)
    if not _cluster(ch):
        ch.execute(f"ALTER TABLE {table} {clause}", params)
    elif LAYOUTS[table] is None:
        ch.execute(f"ALTER TABLE {ch.database}.{table} {clause}", params)
    else:
        on_each_shard(ch, lambda node: node.execute(f"ALTER TABLE {ch.database}.{table}_local {clause}", params))


def _registered(table: str) -> None:
    if table not in LAYOUTS:
        raise ValueError(f"not a table of the schema: {table!r}")
