"""The numbered migrations that create the schema, ``migrate`` that applies the missing ones, and the check
servers run at start.

One module per migration, ``mNNNN_<what>.py`` exporting ``MIGRATION``; its number is its version. A
migration is frozen once released (databases in use have run it): a change of schema is a new module
with the next number, whose DDL constants live beside their domain (``tracker/schema/<domain>.py``).
``tests/tracker/test_migrations.py`` holds a fingerprint of every released migration, so editing one (or
a constant it uses) fails there. Numbers are unique and contiguous but for ``UNUSED``.

A database records every migration it applied in ``schema_migrations``. Each statement is idempotent
(``IF NOT EXISTS``, ``AddColumn``), so a migration interrupted half-way can simply run again. On a
ClickHouse cluster (``ADSERVER_CLICKHOUSE_CLUSTER``) the same statements run in their cluster form
(``tracker/schema/cluster.py``).

On a cluster ``schema_migrations`` is one table replicated to every node, so a node that joins it (a
new shard, a node replaced with an empty disk) reads every migration as applied without having any
table. ``migrate`` therefore also checks every node against what the migrations leave there and
creates what a node lacks (:func:`repair`), and :func:`require_current` refuses a node without the
tables.

Only ``python -m adserver migrate`` migrates a server; the web app, the writer and the other commands
refuse to start while a migration is pending (:func:`require_current`). The embedded mode (chdb, one
process) migrates itself at start.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
from datetime import UTC, datetime
from functools import cache

from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError
from tracker.schema.cluster import cluster_form, current_schema, live_tables, table_layouts
from tracker.schema.shards import empty_stored
from tracker.schema.steps import AddColumn, CopyRows, Migration, Statement

log = logging.getLogger(__name__)

# Numbers no migration has: nothing may fill them later (a database could not tell the difference).
UNUSED = {9: "never assigned"}

_MODULE = re.compile(r"^m(\d{4})_\w+$")


def _discover() -> tuple[Migration, ...]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        match = _MODULE.match(module.name)
        if not match:
            continue
        migration = importlib.import_module(f"{__name__}.{module.name}").MIGRATION
        if migration.version != int(match.group(1)):
            raise ImportError(f"{module.name} holds migration {migration.version}: a module's number is its version")
        found.append(migration)
    return tuple(sorted(found, key=lambda m: m.version))


MIGRATIONS: tuple[Migration, ...] = _discover()

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version
"""

# Every table the migrations create, with its sharding key on a cluster (None: on every node).
LAYOUTS = table_layouts([MIGRATIONS_TABLE, *(s for m in MIGRATIONS for s in m.statements)])

# Every table the migrations leave (tests empty them all between tests).
TABLES = live_tables([s for m in MIGRATIONS for s in m.statements])


class SchemaNotCurrent(StoreError):
    """The database lacks migrations, or this node of a cluster lacks tables (``missing_tables``): a
    server must not run on a schema older than its code."""

    def __init__(self, pending: list[Migration], missing_tables: list[str] | None = None) -> None:
        if pending:
            numbers = ", ".join(str(m.version) for m in pending)
            message = f"the ClickHouse schema lacks migration(s) {numbers}"
        else:
            names = ", ".join((missing_tables or [])[:5]) + (", ..." if len(missing_tables or []) > 5 else "")
            message = (f"this ClickHouse node lacks {len(missing_tables or [])} table(s) of the schema ({names}), "
                       "a node new to the cluster or emptied")
        super().__init__(f"{message}: run `python -m adserver migrate` (with the writers stopped), then start again",
                         code="schema_not_current")
        self.pending = pending
        self.missing_tables = missing_tables or []


def _cluster(ch: ClickHouse) -> str | None:
    return getattr(ch, "cluster", None)


def statements_for(ch: ClickHouse, statement: Statement) -> tuple[Statement, ...]:
    """``statement`` as it runs on this client's ClickHouse: itself, or its cluster form."""
    cluster = _cluster(ch)
    if not cluster:
        return (statement,)
    return cluster_form(statement, cluster, ch.database, LAYOUTS)


def _run(ch: ClickHouse, statement: Statement) -> None:
    for step in statements_for(ch, statement):
        if isinstance(step, AddColumn):
            step.apply(ch)
        elif isinstance(step, CopyRows):
            _copy_rows(ch, step)
        else:
            ch.execute(step)


def _copy_rows(ch: ClickHouse, step: CopyRows) -> None:
    """Run a :class:`CopyRows` step: only while every source exists, into an emptied target."""
    sources = [source for source, _ in step.copies]
    present = {row[0] for row in ch.execute(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN %(names)s",
        {"names": tuple(sources)})}
    if len(present) < len(sources):
        return
    empty_stored(ch, step.target, sharded=LAYOUTS[step.target] is not None)
    for _, copy in step.copies:
        ch.execute(copy)


def applied_versions(ch: ClickHouse) -> set[int]:
    """Versions of the migrations this database has applied (creating the record table if needed)."""
    _run(ch, MIGRATIONS_TABLE)
    return {row[0] for row in ch.execute("SELECT version FROM schema_migrations")}


def pending(ch: ClickHouse) -> list[Migration]:
    """The migrations this database lacks, without creating anything (a missing database lacks them all)."""
    try:
        (exists,), = ch.execute("SELECT count() FROM system.tables WHERE database = currentDatabase() "
                                "AND name = 'schema_migrations'")
    except StoreError as exc:
        if exc.code == "unknown_database":
            return list(MIGRATIONS)
        raise
    done = {row[0] for row in ch.execute("SELECT version FROM schema_migrations")} if exists else set()
    return [m for m in MIGRATIONS if m.version not in done]


def require_current(ch: ClickHouse) -> None:
    """Raise :class:`SchemaNotCurrent` naming the pending migrations, if any; on a cluster also when the
    connected node lacks a table or view of the schema (its own ``system.tables``)."""
    missing = pending(ch)
    if missing:
        raise SchemaNotCurrent(missing)
    cluster = _cluster(ch)
    if cluster:
        objects, _ = _cluster_schema(cluster, ch.database)
        present = {row[0] for row in ch.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")}
        if absent := [name for name in objects if name not in present]:
            raise SchemaNotCurrent([], absent)


def migrate(ch: ClickHouse) -> list[Migration]:
    """Apply the migrations not applied yet, in order; returns those it applied."""
    done = applied_versions(ch)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        log.info("applying migration %d: %s", migration.version, migration.name)
        for statement in migration.statements:
            _run(ch, statement)
        ch.insert(
            "schema_migrations",
            ("version", "name", "applied_at"),
            [(migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None))],
        )
        applied.append(migration)
    repair(ch)
    return applied


@cache
def _cluster_schema(cluster: str, database: str) -> tuple[dict[str, str], tuple[AddColumn, ...]]:
    """Each table and view the migrations leave on every node of the cluster, with the statement that
    creates it, and the columns they add (:func:`tracker.schema.cluster.current_schema`)."""
    statements = [MIGRATIONS_TABLE, *(s for m in MIGRATIONS for s in m.statements)]
    return current_schema(statements, cluster, database, LAYOUTS)


def repair(ch: ClickHouse, timeout: float = 60.0) -> list[str]:
    """On a cluster: create on every node the tables and views the applied migrations made there and
    it lacks, and add the columns they added where missing; returns (and logs) what it repaired.

    Reads ``system.tables`` and ``system.columns`` of each node as ``system.clusters`` lists them (every
    node must answer). A missing table or view is created with its statement ``ON CLUSTER``: ``IF NOT
    EXISTS`` leaves the nodes that have it alone, and a table is created with every column added since
    (a new replica must match the columns its shard keeps in ZooKeeper). Columns an ``ALTER ... ON
    CLUSTER`` left missing are added node by node (:meth:`AddColumn.finish`, waiting at most
    ``timeout`` seconds for replication). Nothing on a single server.
    """
    cluster = _cluster(ch)
    if not cluster:
        return []
    objects, columns = _cluster_schema(cluster, ch.database)
    placed = ch.execute("SELECT shard_num, replica_num, host_name, port FROM system.clusters "
                        "WHERE cluster = %(cluster)s ORDER BY shard_num, replica_num", {"cluster": cluster})
    nodes = ch.replicas()
    labels = {id(node): f"shard {shard} replica {replica} ({host}:{port})"
              for (shard, replica, host, port), node in zip(placed, nodes, strict=True)}
    repaired: list[str] = []
    try:
        lacking: dict[str, list[str]] = {}  # table or view -> the nodes without it
        unfinished: list[AddColumn] = []
        for node in nodes:
            tables = {row[0] for row in node.execute(
                "SELECT name FROM system.tables WHERE database = %(db)s", {"db": ch.database})}
            present = set(node.execute("SELECT table, name FROM system.columns WHERE database = %(db)s",
                                       {"db": ch.database}))
            for name in objects:
                if name not in tables:
                    lacking.setdefault(name, []).append(labels[id(node)])
            for add in columns:
                table = add.table.rpartition(".")[2]
                if table in tables and (table, add.column) not in present and add not in unfinished:
                    unfinished.append(add)
        for name, statement in objects.items():
            if name in lacking:
                ch.execute(statement)
                repaired.append(f"created {ch.database}.{name} on {', '.join(lacking[name])}")
        for add in unfinished:
            for node in add.finish(nodes, timeout):
                repaired.append(f"added column {add.column} to {add.table} on {labels[id(node)]}")
    finally:
        for node in nodes:
            node.close()
    for line in repaired:
        log.warning("schema repaired: %s", line)
    return repaired


__all__ = ["LAYOUTS", "MIGRATIONS", "MIGRATIONS_TABLE", "TABLES", "UNUSED", "AddColumn", "CopyRows", "Migration",
           "SchemaNotCurrent", "Statement", "applied_versions", "migrate", "pending", "repair", "require_current",
           "statements_for"]
