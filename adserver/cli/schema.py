"""Schema and retention commands: ``migrate``, ``purge-events``."""

from __future__ import annotations

import click

from adserver.cli.context import CommandContext, positive, with_context


@click.command("migrate")
@with_context
def migrate(context: CommandContext) -> int:
    """Create or update the ClickHouse schema.

    Applies the pending migrations in order; running it again changes nothing (the writer runs them at
    start too).
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


COMMANDS = (migrate, purge_events)
