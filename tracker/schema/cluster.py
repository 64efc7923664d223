"""The cluster form of the single-node DDL: the same migrations create the schema of a ClickHouse cluster.

With ``ADSERVER_CLICKHOUSE_CLUSTER`` each statement of a migration goes through :func:`cluster_form`
(there is no second copy of the DDL). Tables fall in two kinds, read off their DDL:

- **sharded**: tables with a ``uid`` column (``events``, ``bad_events``, touchpoints, order touches) and
  the report aggregates (``AggregatingMergeTree``, filled by the views). Each node holds
  ``<table>_local``, a ``Replicated*MergeTree`` whose ZooKeeper path carries the ``{shard}`` macro, and
  ``<table>``, a ``Distributed`` table over them, so every query keeps reading and writing the public
  name. Rows with a visitor go to shard ``cityHash64(uid)``: all of a visitor's events, touches and
  orders sit on one shard. Rows without one (viewability beacons, anonymous orders) go to any shard
  (``rand()``): under one key they would all land on a single shard, as many rows as impressions. The report aggregates have no visitor: the views write them on the shard
  that holds the events, and a direct insert (``rebuild-reports``) may go anywhere (``rand()``),
  because reads merge the aggregation states of every shard.
- **on every node**: the registries (catalog, campaigns, accounts, images, ``schema_migrations``):
  small, read on every request and with ``FINAL``. One replicated table whose path has no
  ``{shard}``, so all nodes are replicas of it: a read is local and ``FINAL`` sees every version.

Materialized views are created on each node over ``events_local``: each shard aggregates its own
rows into its own ``report_*_local`` (replication copies them to the other replica), and reports read
through the ``Distributed`` report tables.

Every name is qualified with the database: an ``ON CLUSTER`` statement runs on other servers, whose
current database is not this connection's. Everything here runs on ClickHouse 18.16.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tracker.schema.steps import AddColumn, CopyRows, Statement

VISITOR_KEY = "if(uid = '', toUInt64(rand()), cityHash64(uid))"
ANY_SHARD_KEY = "rand()"

_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS (\w+) \(")
_ENGINE = re.compile(r"ENGINE = (\w+)\(([^)]*)\)")
_CREATE_VIEW = re.compile(r"^\s*CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS ", re.S)
_DROP = re.compile(r"^\s*DROP TABLE IF EXISTS (\w+)\s*$")
_FROM_EVENTS = re.compile(r"\bFROM events\b")


def sharding_key(create_table: str) -> str | None:
    """How the rows of the table a ``CREATE TABLE`` makes are spread over shards; None: on every node."""
    columns = create_table.split("ENGINE", 1)[0]
    if re.search(r"\buid String\b", columns):
        return VISITOR_KEY
    if "ENGINE = AggregatingMergeTree" in create_table:
        return ANY_SHARD_KEY
    return None


def live_tables(statements: Iterable[Statement]) -> tuple[str, ...]:
    """The tables the statements create and do not drop afterwards, in the order created."""
    tables: dict[str, None] = {}
    for statement in statements:
        if isinstance(statement, str) and (match := _CREATE_TABLE.match(statement)):
            tables[match.group(1)] = None
        elif isinstance(statement, str) and (match := _DROP.match(statement)):
            tables.pop(match.group(1), None)
    return tuple(tables)


def table_layouts(statements: Iterable[Statement]) -> dict[str, str | None]:
    """Each table the statements create, with its sharding key (None: on every node)."""
    layouts: dict[str, str | None] = {}
    for statement in statements:
        if isinstance(statement, str) and (match := _CREATE_TABLE.match(statement)):
            layouts[match.group(1)] = sharding_key(statement)
    return layouts


def cluster_form(statement: Statement, cluster: str, database: str,
                 layouts: dict[str, str | None]) -> tuple[Statement, ...]:
    """The statements that do on ``cluster`` what ``statement`` does on a single server.

    ``layouts`` tells each table's kind (:func:`table_layouts` over every migration): an
    ``AddColumn`` or a view names tables created by earlier statements.
    """
    if isinstance(statement, AddColumn):
        return _add_column(statement, cluster, database, layouts)
    if isinstance(statement, CopyRows):
        return (statement,)  # once, through the Distributed tables (see CopyRows)
    if match := _CREATE_TABLE.match(statement):
        return _create_table(statement, match.group(1), cluster, database, layouts)
    if match := _CREATE_VIEW.match(statement):
        view, target = match.groups()
        select = _FROM_EVENTS.sub(f"FROM {database}.events_local", statement[match.end():])
        return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{view} ON CLUSTER {cluster} "
                f"TO {database}.{_stored_in(target, layouts)} AS {select}",)
    if match := _DROP.match(statement):
        name = match.group(1)
        dropped = (name, f"{name}_local") if layouts.get(name) is not None else (name,)
        return tuple(f"DROP TABLE IF EXISTS {database}.{table} ON CLUSTER {cluster}" for table in dropped)
    raise ValueError(f"no cluster form for this statement: {statement[:80]!r}")


def _stored_in(table: str, layouts: dict[str, str | None]) -> str:
    """Where a table's rows are: ``<table>_local`` for a sharded table, the table itself otherwise."""
    if table not in layouts:
        raise ValueError(f"unknown table {table!r}: no migration creates it")
    return f"{table}_local" if layouts[table] is not None else table


def _create_table(statement: str, table: str, cluster: str, database: str,
                  layouts: dict[str, str | None]) -> tuple[str, ...]:
    key = layouts.get(table, sharding_key(statement))
    stored = f"{table}_local" if key is not None else table
    path = f"/clickhouse/tables/{{shard}}/{database}/{table}" if key is not None else \
        f"/clickhouse/tables/all/{database}/{table}"

    def replicated(match: re.Match) -> str:
        engine, args = match.groups()
        args = f"'{path}', '{{replica}}'" + (f", {args.strip()}" if args.strip() else "")
        return f"ENGINE = Replicated{engine}({args})"

    body = statement[statement.index("("):]
    local = (f"CREATE TABLE IF NOT EXISTS {database}.{stored} ON CLUSTER {cluster} "
             + _ENGINE.sub(replicated, body, count=1))
    if key is None:
        return (local,)
    return (local, f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{stored} "
                   f"ENGINE = Distributed({cluster}, {database}, {stored}, {key})")


def _add_column(add: AddColumn, cluster: str, database: str,
                layouts: dict[str, str | None]) -> tuple[AddColumn, ...]:
    if layouts.get(add.table, "?") is None:
        # One replicated table on every node: the ALTER itself is replicated to every replica, and
        # ON CLUSTER would run it once per shard on that one table.
        return (AddColumn(f"{database}.{add.table}", add.column, add.definition),)
    _stored_in(add.table, layouts)
    # The local tables (altered on one replica of each shard, replication carries it to the other
    # replica), then the Distributed table of every node, which must list the column to read it.
    return (AddColumn(f"{database}.{add.table}_local", add.column, add.definition, cluster),
            AddColumn(f"{database}.{add.table}", add.column, add.definition, each_node=True))


def with_columns(create_table: str, added: Iterable[AddColumn]) -> str:
    """``create_table`` declaring also the ``added`` columns, after its own ones in the order given
    (where ``ALTER ... ADD COLUMN`` appends them)."""
    added = list(added)
    if not added:
        return create_table
    end = create_table.rindex(")", 0, create_table.index("ENGINE"))
    extra = "".join(f",\n    {add.column} {add.definition}" for add in added)
    return f"{create_table[:end].rstrip()}{extra}\n{create_table[end:]}"


def current_schema(statements: Iterable[Statement], cluster: str, database: str,
                   layouts: dict[str, str | None]) -> tuple[dict[str, str], tuple[AddColumn, ...]]:
    """What ``statements`` (every migration's, in order) leave on each node of ``cluster``: each table
    and view by name with the cluster-form statement that creates it as it is at the end, in an order
    that creates a table before what reads it; and the cluster form of every added column.

    A table's statement declares every column added to it later: ClickHouse refuses to create a
    replica whose columns differ from those its shard keeps in ZooKeeper (a replaced node beside a
    twin that has them), and the last form of a view may read them. A view dropped and created again
    keeps its last SELECT.
    """
    creates: dict[str, str] = {}
    added: dict[str, list[AddColumn]] = {}
    for statement in statements:
        if isinstance(statement, CopyRows):
            continue
        if isinstance(statement, AddColumn):
            added.setdefault(statement.table, []).append(statement)
        elif match := _CREATE_TABLE.match(statement) or _CREATE_VIEW.match(statement):
            creates.setdefault(match.group(1), statement)
        elif match := _DROP.match(statement):
            creates.pop(match.group(1), None)
            added.pop(match.group(1), None)
    created = re.compile(rf"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS {re.escape(database)}\.(\w+) ON CLUSTER ")
    objects: dict[str, str] = {}
    for name, statement in creates.items():
        if _CREATE_TABLE.match(statement):
            statement = with_columns(statement, added.get(name, ()))
        for step in cluster_form(statement, cluster, database, layouts):
            objects[created.match(step).group(1)] = step
    columns = tuple(step for adds in added.values() for add in adds
                    for step in _add_column(add, cluster, database, layouts))
    return objects, columns
