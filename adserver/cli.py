"""The operator CLI: ``python -m adserver <command>``, with the same settings as the server."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from tracker.errors import AdServerError
from tracker.settings import SettingsError, get_settings


def _clickhouse():
    from tracker import schema
    from tracker.stores import get_clickhouse

    ch = get_clickhouse()
    ch.create_database()
    schema.migrate(ch)
    return ch


def cmd_migrate(args: argparse.Namespace) -> int:
    from tracker import schema
    from tracker.stores import get_clickhouse

    ch = get_clickhouse()
    ch.create_database()
    applied = schema.migrate(ch)
    for migration in applied:
        print(f"applied {migration.version}: {migration.name}")
    print(f"schema up to date ({len(schema.MIGRATIONS)} migrations, {len(applied)} applied now)")
    return 0


def import_products(advertiser: str, data: bytes, fmt: str | None, full: bool, out=sys.stdout):
    """Validate and store a feed for a registered advertiser; returns the import report."""
    from adserver.catalog import bump_version, parse_feed, store_products
    from adserver.registry import Registry
    from tracker.stores import get_redis

    ch = _clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    if advertiser not in registry.advertisers:
        raise AdServerError(f"unknown advertiser {advertiser!r}: create it with create-advertiser", "unknown_advertiser")
    currency = registry.advertisers[advertiser].currency
    products, report = parse_feed(data, fmt, default_currency=currency)
    if not products and full:
        raise AdServerError("the feed has no valid product; a full import would delete the whole catalog", "empty_feed")
    report.accepted, report.removed = store_products(ch, advertiser, products, full=full)
    bump_version(get_redis("web"), advertiser)
    return report


def cmd_import_feed(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    fmt = args.format or {".json": "json", ".tsv": "tsv", ".csv": "csv"}.get(path.suffix.lower())
    report = import_products(args.advertiser, path.read_bytes(), fmt, args.full)
    for error in report.errors[:50]:
        print(f"row {error.row}: {error.field}: {error.reason}")
    if len(report.errors) > 50:
        print(f"... and {len(report.errors) - 50} more rejected fields")
    print(f"imported {report.accepted} products, rejected {len(report.errors)} rows/fields, removed {report.removed}")
    return 0 if report.accepted else 1


def cmd_create_advertiser(args: argparse.Namespace) -> int:
    from adserver.registry import save_advertiser

    advertiser = save_advertiser(_clickhouse(), args.id, args.name or args.id, args.currency)
    print(f"advertiser {advertiser.id} ({advertiser.name}, {advertiser.currency})")
    return 0


def cmd_create_placement(args: argparse.Namespace) -> int:
    from adserver.registry import save_placement

    placement = save_placement(_clickhouse(), args.id, args.site, args.size or [], args.advertiser or [])
    print(f"placement {placement.id} on {placement.site}")
    return 0


def demo_base_url() -> str:
    settings = get_settings()
    return settings.public_url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


def cmd_demo(args: argparse.Namespace) -> int:
    from adserver.demo import demo_products
    from adserver.registry import save_advertiser, save_placement

    ch = _clickhouse()
    save_advertiser(ch, "demo", "Lotus & Co. 莲花良品", "CNY")
    save_placement(ch, "demo-feed", "Demo microblog", ["300x250", "responsive"], ["demo"])
    save_placement(ch, "demo-sidebar", "Demo microblog sidebar", ["160x600", "300x250"], ["demo"])
    data = json.dumps(demo_products(args.base_url or demo_base_url()), ensure_ascii=False).encode()
    report = import_products("demo", data, "json", full=True)
    print(f"demo advertiser 'demo': {report.accepted} products ({len(report.errors)} rejected); "
          "placements demo-feed, demo-sidebar")
    return 0 if report.accepted else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m adserver", description="Operate the retargeting ad server.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("migrate", help="create or update the ClickHouse schema", description="Apply pending migrations.")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("import-feed", help="import a product feed (CSV, TSV or JSON)",
                       description="Validate a Google-Merchant-style feed and store its good rows.")
    p.add_argument("advertiser")
    p.add_argument("file")
    p.add_argument("--format", choices=["csv", "tsv", "json"], help="default: from the file name or content")
    p.add_argument("--full", action="store_true", help="the feed is the whole catalog: remove products missing from it")
    p.set_defaults(func=cmd_import_feed)

    p = sub.add_parser("create-advertiser", help="register an advertiser (store)", description="Register a store.")
    p.add_argument("id")
    p.add_argument("--name", default="")
    p.add_argument("--currency", default="CNY")
    p.set_defaults(func=cmd_create_advertiser)

    p = sub.add_parser("create-placement", help="register a publisher placement", description="Register an ad slot.")
    p.add_argument("id")
    p.add_argument("--site", required=True)
    p.add_argument("--size", action="append", help="allowed size (repeatable), e.g. 300x250")
    p.add_argument("--advertiser", action="append", help="house advertiser for non-personalised ads (repeatable)")
    p.set_defaults(func=cmd_create_placement)

    p = sub.add_parser("demo", help="load the demo advertiser, catalog and placements",
                       description="Load the demo store 'demo' (60 products) and placements into the configured stores.")
    p.add_argument("--base-url", help="where the demo store's pages are served (default: ADSERVER_PUBLIC_URL or 127.0.0.1:PORT)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        get_settings()
        return args.func(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except AdServerError as exc:
        print(f"error ({exc.code}): {exc}", file=sys.stderr)
        return 1
