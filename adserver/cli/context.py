"""What a command runs with: the settings it was started with and the stores they name.

The root group owns one :class:`CommandContext` per invocation (``ctx.obj`` of the root click context)
and closes it when the invocation ends. It is built when the command starts, after click has parsed the
command line, so ``--help`` and usage errors answer without reading the configuration (or creating the
embedded data directory). Tests pass a ready :class:`~tracker.settings.Settings` as ``obj``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import IO, Any

import click

from tracker.clickhouse import ClickHouse
from tracker.settings import Settings, load_settings
from tracker.stores import Stores


class CommandContext:
    """Settings and stores of one CLI invocation, built once and closed when the command ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores = Stores(settings)

    def clickhouse(self, migrate: bool = True) -> ClickHouse:
        """The ClickHouse client on the current schema (commands need the tables).

        The embedded ClickHouse is migrated first, as the embedded app does at start; a server must
        have been migrated by ``migrate`` (the one command that changes a server's schema), or this
        raises ``SchemaNotCurrent`` naming the pending migrations. ``migrate=False``: no schema check.
        """
        from tracker import schema

        ch = self.stores.clickhouse()
        if migrate and self.settings.clickhouse_url is None:
            ch.create_database()
            schema.migrate(ch)
        elif migrate:
            schema.require_current(ch)
        return ch

    def close(self) -> None:
        self.stores.close()


class CommandFailed(click.ClickException):
    """A failure the command explains in full: ``message`` goes to stderr as is, then exit ``exit_code``.

    Operators and scripts match these lines (``error (<code>): ...``, ``configuration error: ...``),
    so they carry no click decoration.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.message, err=True)


def command_context(ctx: click.Context) -> CommandContext:
    """The invocation's context, built on the root click context the first time a command asks."""
    root = ctx.find_root()
    if not isinstance(root.obj, CommandContext):
        settings = root.obj if isinstance(root.obj, Settings) else load_settings()
        root.obj = CommandContext(settings)
        root.call_on_close(root.obj.close)
    return root.obj


def with_context(command: Callable[..., int | None]) -> Callable[..., None]:
    """Call ``command(context, **params)``; the int it returns is the process's exit status."""

    @click.pass_context
    @functools.wraps(command)
    def run(ctx: click.Context, /, **params: Any) -> None:
        status = command(command_context(ctx), **params)
        if status:
            ctx.exit(status)

    return run


def positive(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """Option callback: a count of days must be at least 1."""
    if value is not None and value < 1:
        raise click.UsageError(f"{param.opts[0]} must be at least 1", ctx)
    return value
