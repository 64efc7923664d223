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

from tracker.clickhouse import ClickHouse
from tracker.errors import StoreError
from tracker.schema.cluster import cluster_form, table_layouts
from tracker.schema.steps import AddColumn, Migration, Statement

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

# Every table the migrations create (tests empty them all between tests).
TABLES = tuple(table for table in LAYOUTS if table != "schema_migrations")


class SchemaNotCurrent(StoreError):
    """The database lacks migrations: a server must not run on a schema older than its code."""

    def __init__(self, pending: list[Migration]) -> None:
        numbers = ", ".join(str(m.version) for m in pending)
        super().__init__(f"the ClickHouse schema lacks migration(s) {numbers}: run `python -m adserver migrate` "
                         "(with the writers stopped), then start again", code="schema_not_current")
        self.pending = pending


def _cluster(ch: ClickHouse) -> str | None:
    return getattr(ch, "cluster", None)


def statements_for(ch: ClickHouse, statement: Statement) -> tuple[Statement, ...]:
    """``statement`` as it runs on this client's ClickHouse: itself, or its cluster form."""
    cluster = _cluster(ch)
    if not cluster:
        return (statement,)
    return cluster_form(statement, cluster, ch.database, LAYOUTS)


def stored_table(ch: ClickHouse, table: str) -> str:
    """What a statement that changes stored rows (``TRUNCATE``, ``ALTER ... DELETE``, ``DROP PARTITION``)
    names for ``table``: the table itself on one server; on a cluster ``db.<table>_local ON CLUSTER c``
    for a sharded table (a Distributed table stores nothing; the statement runs once per shard and
    replication carries it to the other replica), ``db.<table>`` for a table on every node (the change
    is replicated to every node)."""
    cluster = _cluster(ch)
    if not cluster:
        return table
    if LAYOUTS[table] is None:
        return f"{ch.database}.{table}"
    return f"{ch.database}.{table}_local ON CLUSTER {cluster}"


def _run(ch: ClickHouse, statement: Statement) -> None:
    for step in statements_for(ch, statement):
        if isinstance(step, AddColumn):
            step.apply(ch)
        else:
            ch.execute(step)


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
    """Raise :class:`SchemaNotCurrent` naming the pending migrations, if any."""
    missing = pending(ch)
    if missing:
        raise SchemaNotCurrent(missing)


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
    return applied


__all__ = ["LAYOUTS", "MIGRATIONS", "MIGRATIONS_TABLE", "TABLES", "UNUSED", "AddColumn", "Migration",
           "SchemaNotCurrent", "Statement", "applied_versions", "migrate", "pending", "require_current",
           "statements_for", "stored_table"]
