"""Schema and retention commands: ``migrate``, ``purge-events``, ``forget-pending``."""

from __future__ import annotations

import click

from adserver.cli.context import CommandContext, positive, with_context


@click.command("migrate")
@with_context
def migrate(context: CommandContext) -> int:
    """Create or update the ClickHouse schema.

    Applies the pending migrations in order; running it again changes nothing. The one command that
    migrates a server: the web app, the writer and the other commands refuse to start while a migration
    is pending. Run it with the writers stopped. With ADSERVER_CLICKHOUSE_CLUSTER it creates the
    replicated local tables and the Distributed tables on every node of the cluster.
    """
    from tracker import schema

    ch = context.clickhouse(migrate=False)
    ch.create_database()
    applied = schema.migrate(ch)
    for migration in applied:
        click.echo(f"applied {migration.version}: {migration.name}")
    click.echo(f"schema up to date ({len(schema.MIGRATIONS)} migrations, {len(applied)} applied now)")
    return 0


@click.command("purge-events")
@click.option("--older-than-days", type=int, required=True, callback=positive, metavar="N",
              help="Drop partitions whose events are all older than N days.")
@with_context
def purge_events(context: CommandContext, older_than_days: int) -> int:
    """Retention: drop raw-event partitions older than N days.

    Drops the monthly partitions of events and bad_events whose every row is older than N days.
    """
    from tracker.retention import drop_expired

    for table, partitions in drop_expired(context.clickhouse(), older_than_days).items():
        click.echo(f"{table}: dropped {len(partitions)} partition(s) {' '.join(partitions)}".rstrip())
    return 0


@click.command("forget-pending")
@with_context
def forget_pending(context: CommandContext) -> int:
    """Delete the queued forgotten visitors' rows now.

    Runs the writer's forget job once (it runs every ADSERVER_FORGET_INTERVAL seconds): the oldest
    queued visitors, one deletion per table holding their rows. Exit 1 if a previous deletion still runs.
    """
    from tracker.forget import run_pending

    run = run_pending(context.clickhouse(), context.stores.redis("writer"))
    if run.discarded:
        click.echo(f"dropped {run.discarded} queue entries that are not visitor ids")
    if run.deferred:
        click.echo(f"deferred: {run.deferred}; {run.remaining} visitor(s) wait, run it again once it is done")
        return 1
    if not run.visitors:
        click.echo("nobody is waiting to be forgotten")
        return 0
    click.echo(f"forgot {run.visitors} visitor(s)")
    for table, rows in run.rows.items():
        click.echo(f"{table}: {rows} row(s)" + (", deletion scheduled" if run.mutations.get(table) else ""))
    click.echo(f"{run.remaining} still queued")
    return 0


COMMANDS = (migrate, purge_events, forget_pending)
