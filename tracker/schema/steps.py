"""What a migration is made of: statements (DDL strings) and columns added only where missing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError


@dataclass(frozen=True)
class AddColumn:
    """``ALTER TABLE ... ADD COLUMN`` applied only if the column is missing (18.16 has no IF NOT EXISTS).

    ``table`` may be qualified (``db.table``); ``cluster`` names the cluster of a sharded replicated
    table, altered on one replica of each shard (replication carries it to the others); ``each_node``
    runs it on every node of the client's cluster, one connection each (a ``Distributed`` table, which
    is not replicated). The check reads ``system.columns`` of the server the ALTER goes to;
    :meth:`finish` checks every node.
    """

    table: str
    column: str
    definition: str
    cluster: str = ""
    each_node: bool = False

    @property
    def sql(self) -> str:
        """The ALTER on one node (``apply`` runs it where the column is missing)."""
        return f"ALTER TABLE {self.table} ADD COLUMN {self.column} {self.definition}"

    def missing(self, ch: ClickHouse) -> bool:
        database, _, table = self.table.rpartition(".")
        rows = ch.execute(
            "SELECT count() FROM system.columns WHERE database = " + ("%(db)s" if database else "currentDatabase()")
            + " AND table = %(table)s AND name = %(column)s",
            {"db": database, "table": table, "column": self.column},
        )
        return not rows[0][0]

    def apply(self, ch: ClickHouse) -> None:
        if not self.each_node and not self.cluster:
            if self.missing(ch):
                ch.execute(self.sql)
            return
        # A sharded table is altered shard by shard (``finish``), never ``ON CLUSTER``: ClickHouse
        # 18.16's DDL worker runs such an ALTER of a replicated table on one replica per shard, and
        # under load the other replica can run it too, fail ("column already exists"), and stop its
        # DDL worker on the clash, after which every ``ON CLUSTER`` statement waits for that node.
        nodes = ch.replicas()
        try:
            self.finish(nodes)
        finally:
            for node in nodes:
                node.close()

    def finish(self, nodes: Sequence[ClickHouse], timeout: float = 60.0) -> list[ClickHouse]:
        """Add the column on the ``nodes`` of the client's cluster that lack it (an ``ON CLUSTER`` ALTER
        that stopped half-way, a node created from older statements); returns the nodes it altered.

        A ``Distributed`` table (``each_node``) is altered on each node that lacks the column. A
        replicated table keeps its columns in ZooKeeper, once per shard (``cluster``) or once for every
        node (a table on every node): when no replica of such a group has the column, the ALTER runs
        on the first replica alone and replication carries it to the others; when one has it, the
        others are only behind. Either way this waits until every replica of the group has it.
        """
        local = replace(self, cluster="", each_node=False)
        if self.each_node:
            altered = [node for node in nodes if local.missing(node)]
            for node in altered:
                node.execute(local.sql)
            return altered
        groups: dict[int, list[ClickHouse]] = {}
        for node in nodes:
            groups.setdefault(getattr(node, "shard", 0) if self.cluster else 0, []).append(node)
        altered = []
        for shard, group in groups.items():
            lacking = [node for node in group if local.missing(node)]
            if len(lacking) == len(group):
                group[0].execute(local.sql)
                altered.append(group[0])
            deadline = time.monotonic() + timeout
            while lacking := [node for node in lacking if local.missing(node)]:
                if time.monotonic() > deadline:
                    where = f"shard {shard}" if self.cluster else "the cluster"
                    raise StoreError(f"{len(lacking)} replica(s) of {where} still lack column {self.column} of "
                                     f"{self.table} {timeout:.0f} s after the ALTER: see their "
                                     "system.replication_queue, then run `python -m adserver migrate` again",
                                     code="schema_repair_timeout")
                time.sleep(0.2)
        return altered


@dataclass(frozen=True)
class CopyRows:
    """Fill ``target`` with the rows of other tables: ``copies`` holds each source table with the
    ``INSERT INTO <target> ... SELECT ... FROM <source>`` that copies it. How a migration moves
    aggregates into a new table before it drops the old ones.

    An ``INSERT ... SELECT`` run twice copies twice, so this runs only while every source exists, and
    empties the target first: a migration interrupted during the copy copies again from the start,
    and one interrupted after it began dropping the sources (its later statements) had finished the
    copy. Nothing else may fill the target before the sources are dropped: the migration creates the
    target's view after the drops. On a cluster the copy runs once, through the ``Distributed``
    tables, on the node that migrates.
    """

    target: str
    copies: tuple[tuple[str, str], ...]


Statement = str | AddColumn | CopyRows


@dataclass(frozen=True)
class Migration:
    """One numbered change of schema, frozen once released: databases in use have run it as it is."""

    version: int
    name: str
    statements: tuple[Statement, ...]
