"""Commands for the marketers' console: accounts, prices and the report tables.

``create-user <email> --advertiser <id> [--advertiser <id> ...]`` reads the password from standard
input (never from the command line, where ``ps`` and shell history would see it); ``set-price``
sets what an advertiser pays; ``rebuild-reports`` refills the report tables from ``events``.
"""

from __future__ import annotations

import getpass
import sys
from typing import IO

import click

from adserver.cli.context import CommandContext, with_context
from tracker.errors import AdServerError


def _known(ch, advertisers: list[str]) -> None:
    from adserver.catalog.registry import Registry

    registry = Registry(lambda: ch)
    registry.reload()
    unknown = [a for a in advertisers if a not in registry.advertisers]
    if unknown:
        raise AdServerError(f"unknown advertiser(s): {', '.join(unknown)}", "unknown_advertiser")


def read_password(stream: IO[str] | None = None) -> str:
    """The first line of standard input (asked twice, without echo, on a terminal)."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise AdServerError("the two passwords differ", "password_mismatch")
        return first
    line = stream.readline()
    if not line:
        raise AdServerError("no password on standard input", "password_missing")
    return line.rstrip("\r\n")


@click.command("create-user")
@click.argument("email")
@click.option("--advertiser", multiple=True, required=True, help="Advertiser the user may see (repeatable).")
@with_context
def create_user(context: CommandContext, email: str, advertiser: tuple[str, ...]) -> int:
    """Create a marketer account (password from stdin).

    Creates the user, or sets a new password, and gives access to the advertisers. The password is read
    from standard input (at least 10 characters).
    """
    from adserver.console.accounts import save_user

    ch = context.clickhouse()
    _known(ch, list(advertiser))
    user = save_user(ch, email, read_password(), list(advertiser))
    click.echo(f"user {user.email} can see: {', '.join(advertiser)}")
    return 0


@click.command("remove-user")
@click.argument("email")
@click.option("--advertiser", multiple=True, help="Only remove access to this advertiser (repeatable).")
@with_context
def remove_user(context: CommandContext, email: str, advertiser: tuple[str, ...]) -> int:
    """Disable a marketer account or remove advertisers.

    Without --advertiser the account is disabled; with it, only those memberships go.
    """
    from adserver.console.accounts import disable_user, normalize_email, set_memberships

    ch = context.clickhouse()
    email = normalize_email(email)
    if advertiser:
        set_memberships(ch, email, list(advertiser), remove=True)
        click.echo(f"user {email} can no longer see: {', '.join(advertiser)}")
        return 0
    if not disable_user(ch, email):
        click.echo(f"no such user {email}", err=True)
        return 1
    click.echo(f"user {email} disabled")
    return 0


@click.command("set-price")
@click.argument("advertiser")
@click.option("--cpc", type=float, help="Price per click.")
@click.option("--cpm", type=float, help="Price per 1000 impressions.")
@click.option("--none", "no_price", is_flag=True, help="Remove the price.")
@with_context
def set_price(context: CommandContext, advertiser: str, cpc: float | None, cpm: float | None,
              no_price: bool) -> int:
    """Set an advertiser's CPC or CPM price (cost, ROAS).

    One price per advertiser, in its currency; applies to every report. Give exactly one of --cpc, --cpm
    or --none.
    """
    from adserver.console.prices import set_price as store_price

    if (cpc is not None) + (cpm is not None) + no_price != 1:
        raise click.UsageError("give exactly one of --cpc, --cpm or --none", click.get_current_context())
    ch = context.clickhouse()
    _known(ch, [advertiser])
    if no_price:
        store_price(ch, advertiser, "", 0.0)
        click.echo(f"{advertiser}: no price (reports show no cost or ROAS)")
        return 0
    model, amount = ("cpc", cpc) if cpc is not None else ("cpm", cpm)
    store_price(ch, advertiser, model, amount)
    click.echo(f"{advertiser}: {model.upper()} {amount}")
    return 0


@click.command("rebuild-reports")
@with_context
def rebuild_reports(context: CommandContext) -> int:
    """Refill the report tables from the raw events.

    Empties the pre-aggregated report tables and recomputes them from events, a month at a time. Stop the
    writer first: events inserted meanwhile could be counted twice.
    """
    from adserver.console.maintenance import rebuild_reports as rebuild
    from adserver.progress import Progress

    progress = Progress("rebuild reports (months)")
    months = rebuild(context.clickhouse(), progress=progress.update)
    progress.finish(f"{months} month(s) of events")
    return 0


COMMANDS = (create_user, remove_user, set_price, rebuild_reports)
