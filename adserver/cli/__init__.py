"""The operator CLI: ``python -m adserver <command>``, with the same settings as the server.

:data:`main` is the root click group; the commands live in one module per domain and import only
:mod:`adserver.cli.context` and the domain packages, never this module.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from adserver.cli import campaigns, catalog, console, demo, images, learning, schema
from adserver.cli.context import CommandFailed
from tracker.errors import AdServerError
from tracker.settings import Settings, SettingsError

PROG_NAME = "python -m adserver"


class OperatorGroup(click.Group):
    """Lists commands grouped by domain, in the order they are added, and turns the configuration
    and domain errors of any command into one line and an exit status."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise CommandFailed(f"configuration error: {exc}", 2) from exc
        except AdServerError as exc:
            raise CommandFailed(f"error ({exc.code}): {exc}", 1) from exc


@click.group(cls=OperatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def main(verbose: bool) -> None:
    """Operate the retargeting ad server (same settings as the server: ADSERVER_* variables)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


for _module in (schema, catalog, images, learning, campaigns, demo, console):
    for _command in _module.COMMANDS:
        main.add_command(_command)


def run(argv: list[str], settings: Settings | None = None) -> int:
    """Run one command in this process (scripts and tests) and return its exit status."""
    try:
        main.main(argv, prog_name=PROG_NAME, obj=settings)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
