"""Operator commands for reports, added to ``python -m adserver`` by :func:`add_commands`.

``create-user <email> --advertiser <id> [--advertiser <id> ...]`` reads the password from standard
input (never from the command line, where ``ps`` and shell history would see it); ``set-price``
sets what an advertiser pays; ``rebuild-reports`` refills the report tables from ``events``.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from tracker.errors import AdServerError


def _ch():
    from adserver.cli.commands import _clickhouse

    return _clickhouse()


def _known(ch, advertisers: list[str]) -> None:
    from adserver.catalog.registry import Registry

    registry = Registry(lambda: ch)
    registry.reload()
    unknown = [a for a in advertisers if a not in registry.advertisers]
    if unknown:
        raise AdServerError(f"unknown advertiser(s): {', '.join(unknown)}", "unknown_advertiser")


def read_password(stream=None) -> str:
    """The first line of standard input (asked twice, without echo, on a terminal)."""
    stream = stream or sys.stdin
    if stream.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise AdServerError("the two passwords differ", "password_mismatch")
        return first
    return stream.readline().rstrip("\r\n")


def cmd_create_user(args: argparse.Namespace) -> int:
    from adserver.console.accounts import save_user

    ch = _ch()
    _known(ch, args.advertiser)
    user = save_user(ch, args.email, read_password(), args.advertiser)
    print(f"user {user.email} can see: {', '.join(args.advertiser)}")
    return 0


def cmd_remove_user(args: argparse.Namespace) -> int:
    from adserver.console.accounts import disable_user, normalize_email, set_memberships

    ch = _ch()
    email = normalize_email(args.email)
    if args.advertiser:
        set_memberships(ch, email, args.advertiser, remove=True)
        print(f"user {email} can no longer see: {', '.join(args.advertiser)}")
        return 0
    if not disable_user(ch, email):
        print(f"no such user {email}", file=sys.stderr)
        return 1
    print(f"user {email} disabled")
    return 0


def cmd_set_price(args: argparse.Namespace) -> int:
    from adserver.console.prices import set_price

    ch = _ch()
    _known(ch, [args.advertiser])
    if args.none:
        set_price(ch, args.advertiser, "", 0.0)
        print(f"{args.advertiser}: no price (reports show no cost or ROAS)")
        return 0
    model, amount = ("cpc", args.cpc) if args.cpc is not None else ("cpm", args.cpm)
    set_price(ch, args.advertiser, model, amount)
    print(f"{args.advertiser}: {model.upper()} {amount}")
    return 0


def cmd_rebuild_reports(args: argparse.Namespace) -> int:
    from adserver.console.maintenance import rebuild_reports
    from adserver.progress import Progress

    progress = Progress("rebuild reports (months)")
    months = rebuild_reports(_ch(), progress=progress.update)
    progress.finish(f"{months} month(s) of events")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("create-user", help="create a marketer account (password from stdin)",
                       description="Create a marketer user, or set a new password, and give access to advertisers. "
                                   "The password is read from standard input (at least 10 characters).")
    p.add_argument("email")
    p.add_argument("--advertiser", action="append", required=True, help="advertiser the user may see (repeatable)")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("remove-user", help="disable a marketer account, or remove some of its advertisers",
                       description="Without --advertiser the account is disabled; with it, only those memberships go.")
    p.add_argument("email")
    p.add_argument("--advertiser", action="append", help="only remove access to this advertiser (repeatable)")
    p.set_defaults(func=cmd_remove_user)

    p = sub.add_parser("set-price", help="set what an advertiser pays (CPC or CPM), for cost and ROAS",
                       description="One price per advertiser, in its currency; applies to every report.")
    p.add_argument("advertiser")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--cpc", type=float, help="price per click")
    group.add_argument("--cpm", type=float, help="price per 1000 impressions")
    group.add_argument("--none", action="store_true", help="remove the price")
    p.set_defaults(func=cmd_set_price)

    p = sub.add_parser("rebuild-reports", help="refill the report tables from the raw events",
                       description="Empty the pre-aggregated report tables and recompute them from events. "
                                   "Stop the writer first: events inserted meanwhile could be counted twice.")
    p.set_defaults(func=cmd_rebuild_reports)
