"""What a migration is made of: statements (DDL strings) and columns added only where missing."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.clickhouse import ClickHouse


@dataclass(frozen=True)
class AddColumn:
    """``ALTER TABLE ... ADD COLUMN`` applied only if the column is missing (18.16 has no IF NOT EXISTS).

    ``table`` may be qualified (``db.table``); ``cluster`` makes it ``ALTER TABLE ... ON CLUSTER``;
    ``each_node`` runs it on every node of the client's cluster, one connection each (ClickHouse refuses
    ``ON CLUSTER`` for the ALTER of a table that is not replicated, a ``Distributed`` one, on a cluster
    whose shards have replicas). The check reads ``system.columns`` of the server the ALTER goes to.
    """

    table: str
    column: str
    definition: str
    cluster: str = ""
    each_node: bool = False

    @property
    def sql(self) -> str:
        on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
        return f"ALTER TABLE {self.table}{on_cluster} ADD COLUMN {self.column} {self.definition}"

    def missing(self, ch: ClickHouse) -> bool:
        database, _, table = self.table.rpartition(".")
        rows = ch.execute(
            "SELECT count() FROM system.columns WHERE database = " + ("%(db)s" if database else "currentDatabase()")
            + " AND table = %(table)s AND name = %(column)s",
            {"db": database, "table": table, "column": self.column},
        )
        return not rows[0][0]

    def apply(self, ch: ClickHouse) -> None:
        if not self.each_node:
            if self.missing(ch):
                ch.execute(self.sql)
            return
        for node in ch.replicas():
            try:
                if self.missing(node):
                    node.execute(self.sql)
            finally:
                node.close()


Statement = str | AddColumn


@dataclass(frozen=True)
class Migration:
    """One numbered change of schema, frozen once released: databases in use have run it as it is."""

    version: int
    name: str
    statements: tuple[Statement, ...]
