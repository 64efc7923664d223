"""The operator CLI: ``python -m adserver <command>``, with the same settings as the server."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from adserver.cli.context import CommandContext
from tracker.errors import AdServerError, FeedError
from tracker.settings import Settings, SettingsError, load_settings

_context: CommandContext | None = None


def get_settings() -> Settings:
    assert _context is not None, "commands run inside main()"
    return _context.settings


def _clickhouse():
    assert _context is not None, "commands run inside main()"
    return _context.clickhouse()


def cmd_migrate(args: argparse.Namespace) -> int:
    from tracker import schema

    ch = _context.clickhouse(migrate=False)
    ch.create_database()
    applied = schema.migrate(ch)
    for migration in applied:
        print(f"applied {migration.version}: {migration.name}")
    print(f"schema up to date ({len(schema.MIGRATIONS)} migrations, {len(applied)} applied now)")
    return 0


def cmd_import_feed(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path} is not a file", file=sys.stderr)
        return 2
    fmt = args.format or {".json": "json", ".tsv": "tsv", ".csv": "csv"}.get(path.suffix.lower())
    return _import(args.advertiser, path.read_bytes(), fmt, args.full)


def _import(advertiser: str, data: bytes, fmt: str | None, full: bool) -> int:
    from adserver.catalog.upload import import_products
    from adserver.progress import Progress

    _clickhouse()
    progress = Progress(f"import {advertiser}")
    try:
        report = import_products(_context.stores, advertiser, data, fmt, full, progress=progress.update)
    except FeedError as exc:
        if exc.report is not None:
            _print_errors(exc.report)
        raise
    progress.finish()
    _print_errors(report)
    print(f"imported {report.accepted} products, rejected {len(report.errors)} rows/fields, removed {report.removed}")
    return 0 if report.accepted else 1


def _print_errors(report) -> None:
    for error in report.errors[:50]:
        print(f"row {error.row}: {error.field}: {error.reason}")
    if len(report.errors) > 50:
        print(f"... and {len(report.errors) - 50} more rejected fields")


def cmd_fetch_feed(args: argparse.Namespace) -> int:
    from adserver.catalog.upload import fetch_feed

    data, fmt = fetch_feed(args.url)
    return _import(args.advertiser, data, args.format or fmt, args.full)


def cmd_create_token(args: argparse.Namespace) -> int:
    from adserver.catalog.registry import Registry
    from adserver.catalog.tokens import create_token

    ch = _clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    if args.advertiser not in registry.advertisers:
        raise AdServerError(f"unknown advertiser {args.advertiser!r}", "unknown_advertiser")
    token = create_token(ch, args.advertiser, args.label)
    print(f"API token for {args.advertiser} (shown once, store it now):")
    print(token)
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    from adserver.catalog.tokens import revoke_token

    token = sys.stdin.readline().strip()
    if not revoke_token(_clickhouse(), token):
        print("no such token", file=sys.stderr)
        return 1
    print("token revoked")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from adserver.catalog.registry import Registry
    from adserver.learning.training import train_advertiser

    ch = _clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    advertisers = args.advertiser or registry.advertiser_ids()
    unknown = [a for a in advertisers if a not in registry.advertisers]
    if unknown:
        raise AdServerError(f"unknown advertiser(s): {', '.join(unknown)}", "unknown_advertiser")
    status = 0
    for advertiser in advertisers:
        try:
            result = train_advertiser(ch, advertiser, get_settings().model_dir, k=args.k, days=args.days)
        except ValueError as exc:
            print(f"{advertiser}: skipped: {exc}")
            status = 1
            continue
        print(f"{advertiser}: model {result.version}: {result.products:,} products, {result.events:,} events, "
              f"{result.seconds:.1f}s -> {result.path}")
    return status


def cmd_train_ctr(args: argparse.Namespace) -> int:
    from adserver.learning.ctr import train_ctr_job

    if args.days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return 2
    # NotEnoughData, WorseThanBaseline: a message and exit 1, the current model stays
    train_ctr_job(_clickhouse(), get_settings().model_dir, args.days, force=args.force)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from adserver.progress import Progress
    from models.evaluate import evaluate, format_table, read_events_csv

    progress = Progress("read events")
    try:
        events = read_events_csv(args.events)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.finish(f"{len(events):,} events")
    if not events:
        print("error: no events in the file", file=sys.stderr)
        return 2
    progress = Progress("replay")
    result = evaluate(events, split_at=args.split_at, progress=progress.update)
    progress.finish(f"{result['predictions']:,} predictions")
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def cmd_purge_events(args: argparse.Namespace) -> int:
    from tracker.retention import drop_expired

    if args.older_than_days < 1:
        print("error: --older-than-days must be at least 1", file=sys.stderr)
        return 2
    for table, partitions in drop_expired(_clickhouse(), args.older_than_days).items():
        print(f"{table}: dropped {len(partitions)} partition(s) {' '.join(partitions)}".rstrip())
    return 0


def cmd_create_advertiser(args: argparse.Namespace) -> int:
    from adserver.catalog.registry import save_advertiser

    advertiser = save_advertiser(_clickhouse(), args.id, args.name or args.id, args.currency, args.timezone)
    print(f"advertiser {advertiser.id} ({advertiser.name}, {advertiser.currency}, {advertiser.timezone})")
    return 0


def cmd_create_placement(args: argparse.Namespace) -> int:
    from adserver.catalog.registry import save_placement

    placement = save_placement(_clickhouse(), args.id, args.site, args.size or [], args.advertiser or [], args.floor)
    print(f"placement {placement.id} on {placement.site}")
    return 0


def cmd_create_campaign(args: argparse.Namespace) -> int:
    """Create a campaign, or store a new version of it (every option given replaces the old value)."""
    from dataclasses import replace

    from adserver.campaigns.campaign import Campaign, load_campaigns, save_campaign

    ch = _clickhouse()
    old = load_campaigns(ch).get(args.id)
    if old is None and not args.advertiser:
        print(f"error: campaign {args.id!r} does not exist yet: --advertiser is required", file=sys.stderr)
        return 2
    if old is not None and args.advertiser and args.advertiser != old.advertiser:
        print(f"error: campaign {args.id!r} belongs to {old.advertiser!r}", file=sys.stderr)
        return 2
    known = ch.execute("SELECT count() FROM advertisers FINAL WHERE id = %(id)s AND deleted = 0",
                       {"id": base_advertiser}) if (base_advertiser := args.advertiser or "") else [(1,)]
    if not known[0][0]:
        raise AdServerError(f"unknown advertiser {base_advertiser!r} (create-advertiser first)", "unknown_advertiser")
    base = old or Campaign(args.id, args.advertiser)
    changes = {name: value for name, value in (
        ("name", args.name), ("status", args.status), ("pricing", args.pricing), ("price", args.price),
        ("daily_budget", args.daily_budget), ("start_date", args.start), ("end_date", args.end),
        ("audience_days", args.audience_days), ("exclude_buyers_days", args.exclude_buyers_days),
        ("cap_per_day", args.cap_per_day), ("min_gap_seconds", args.min_gap_seconds), ("logo_url", args.logo_url),
        ("brand_color", args.brand_color), ("text_color", args.text_color),
    ) if value is not None}
    campaign = save_campaign(ch, replace(base, **changes))
    budget = f"{campaign.daily_budget:g}/day" if campaign.daily_budget else "no daily budget"
    print(f"campaign {campaign.id} of {campaign.advertiser}: {campaign.status}, {campaign.pricing.upper()} "
          f"{campaign.price:g} {get_settings().currency}, {budget}, {campaign.start_date} to {campaign.end_date}")
    return 0


def cmd_list_campaigns(args: argparse.Namespace) -> int:
    from adserver.campaigns.campaign import load_campaigns

    print("id\tadvertiser\tstatus\tpricing\tprice\tdaily_budget\tstart\tend\tcap/day\tmin_gap_s")
    for c in load_campaigns(_clickhouse()).values():
        if args.advertiser and c.advertiser != args.advertiser:
            continue
        print(f"{c.id}\t{c.advertiser}\t{c.status}\t{c.pricing}\t{c.price:g}\t{c.daily_budget:g}\t{c.start_date}"
              f"\t{c.end_date}\t{c.cap_per_day}\t{c.min_gap_seconds}")
    return 0


def _date(value: str):
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def demo_base_url() -> str:
    settings = get_settings()
    return settings.public_url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"


def cmd_demo(args: argparse.Namespace) -> int:
    from adserver.campaigns.campaign import Campaign, save_campaign
    from adserver.catalog.registry import save_advertiser, save_placement
    from adserver.catalog.upload import import_products
    from adserver.demo import demo_products, outdoor
    from adserver.learning.training import train_advertiser

    ch = _clickhouse()
    save_advertiser(ch, "demo", "Lotus & Co. 莲花良品", "CNY")
    save_placement(ch, "demo-feed", "Demo microblog", [], ["demo"], floor=0.3)  # any size: the feed adapts
    save_placement(ch, "demo-sidebar", "Demo microblog sidebar", ["160x600", "300x250"], ["demo"], floor=2.0)
    save_placement(ch, "demo-banner", "Demo microblog banner", ["728x90", "320x50"], ["demo"], floor=0.5)
    base_url = args.base_url or demo_base_url()
    data = json.dumps(demo_products(base_url), ensure_ascii=False).encode()
    report = import_products(_context.stores, "demo", data, "json", full=True)
    # A CPC campaign (pays per click: also buys non-personalised slots) for the demo store.
    save_campaign(ch, Campaign("demo-retargeting", "demo", "Lotus & Co. retargeting", pricing="cpc", price=0.6,
                               daily_budget=500.0, cap_per_day=30, logo_url=f"{base_url}/static/demo/logo.svg",
                               brand_color="#2e7d6b", text_color="#ffffff"))
    print(f"demo advertiser 'demo': {report.accepted} products ({len(report.errors)} rejected), campaign "
          "demo-retargeting (CPC 0.60); placements demo-feed (floor 0.30), demo-sidebar (2.00), demo-banner (0.50)")
    # A second store, with a CPM campaign (buys its retargeting audience only): the two compete.
    save_advertiser(ch, outdoor.ADVERTISER, outdoor.NAME, outdoor.CURRENCY)
    data = json.dumps(outdoor.outdoor_products(base_url), ensure_ascii=False).encode()
    report = import_products(_context.stores, outdoor.ADVERTISER, data, "json", full=True)
    save_campaign(ch, Campaign("outdoor-retargeting", outdoor.ADVERTISER, "Trailhead retargeting", pricing="cpm",
                               price=3.0, daily_budget=300.0, cap_per_day=20, min_gap_seconds=5,
                               logo_url=f"{base_url}/static/demo/outdoor/logo.svg", brand_color="#e8590c",
                               text_color="#ffffff"))
    print(f"demo advertiser '{outdoor.ADVERTISER}': {report.accepted} products ({len(report.errors)} rejected), "
          "campaign outdoor-retargeting (CPM 3.00)")
    for advertiser in ("demo", outdoor.ADVERTISER):
        result = train_advertiser(ch, advertiser, get_settings().model_dir)
        print(f"{advertiser} similar-products model {result.version} ({result.seconds:.1f}s)")
    if args.reports:
        from adserver.demo.reports import setup_demo

        print(setup_demo(ch))
        from adserver.learning.ctr import train_ctr_job

        try:  # the demo traffic's impressions and clicks: the auction's CTR model
            train_ctr_job(ch, get_settings().model_dir, 30, out=print)
        except AdServerError as exc:  # not enough data, or no better than the average: the prior serves
            print(f"CTR model not published: {exc}")
    return 0


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

    p = sub.add_parser("fetch-feed", help="download a store's feed from its URL and import it",
                       description="Fetch a feed over http(s) (30 s timeout, 50 MB cap) and import it.")
    p.add_argument("advertiser")
    p.add_argument("url")
    p.add_argument("--format", choices=["csv", "tsv", "json"])
    p.add_argument("--full", action="store_true", help="remove products missing from the feed")
    p.set_defaults(func=cmd_fetch_feed)

    p = sub.add_parser("create-token", help="create an API token for an advertiser (printed last)",
                       description="Create an API token; only its hash is stored, so it is shown once.")
    p.add_argument("advertiser")
    p.add_argument("--label", default="")
    p.set_defaults(func=cmd_create_token)

    p = sub.add_parser("revoke-token", help="revoke an API token read from stdin",
                       description="Revoke the API token given on standard input.")
    p.set_defaults(func=cmd_revoke_token)

    p = sub.add_parser("train", help="train the similar-products model of each advertiser",
                       description="Build content + behavioural similarity from the catalog and ClickHouse events; "
                                   "running servers pick up the new version without restart.")
    p.add_argument("--advertiser", action="append", help="only this advertiser (repeatable); default: all")
    p.add_argument("--k", type=int, default=20, help="neighbours kept per product")
    p.add_argument("--days", type=int, default=90, help="events of the last N days")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-ctr", help="train the click-through-rate model of the auction",
                       description="Logistic regression on the impressions of the last N days and their clicks; "
                                   "prints held-out AUC and log-loss against a constant baseline. Running servers "
                                   "pick up the new version without restart.")
    p.add_argument("--days", type=int, default=30, help="impressions of the last N days")
    p.add_argument("--force", action="store_true", help="publish the model even if it loses to the constant baseline")
    p.set_defaults(func=cmd_train_ctr)

    p = sub.add_parser("evaluate", help="replay an event log and score the recommenders",
                       description="Offline evaluation: train on events before the split, replay the rest in time "
                                   "order asking for 20 products each time; HR@10, HR@20, MRR@20, NDCG@10, coverage "
                                   "for the ad server's recommender, a popularity baseline and plain item-kNN.")
    p.add_argument("events", help="CSV with header visitor,item,ts[,event,title] (.gz accepted)")
    p.add_argument("--split-at", type=float, help="unix seconds; default: the last 10%% of the time range is held out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("purge-events", help="drop raw events older than the retention",
                       description="Drop the monthly partitions of events and bad_events wholly older than N days.")
    p.add_argument("--older-than-days", type=int, required=True)
    p.set_defaults(func=cmd_purge_events)

    p = sub.add_parser("create-advertiser", help="register an advertiser (store)", description="Register a store.")
    p.add_argument("id")
    p.add_argument("--name", default="")
    p.add_argument("--currency", default="CNY")
    p.add_argument("--timezone", default="UTC", help="IANA time zone of its reports' days and hours, e.g. Asia/Shanghai")
    p.set_defaults(func=cmd_create_advertiser)

    p = sub.add_parser("create-campaign", help="create or update an advertiser's campaign",
                       description="Create a campaign, or change the options given of an existing one. Prices, "
                                   "budgets and floors are in the exchange currency (ADSERVER_CURRENCY).")
    p.add_argument("id")
    p.add_argument("--advertiser", help="required for a new campaign")
    p.add_argument("--name")
    p.add_argument("--status", choices=("active", "paused"))
    p.add_argument("--pricing", choices=("cpc", "cpm"), help="pay per click, or per thousand impressions")
    p.add_argument("--price", type=float, help="price per click (cpc) or per thousand impressions (cpm)")
    p.add_argument("--daily-budget", type=float, help="0 for no limit; paced through the advertiser's day")
    p.add_argument("--start", type=_date, help="first day, YYYY-MM-DD (advertiser's time zone)")
    p.add_argument("--end", type=_date, help="last day, YYYY-MM-DD")
    p.add_argument("--audience-days", type=int, help="visitors stay targetable this long after their last view")
    p.add_argument("--exclude-buyers-days", type=int, help="do not show to visitors who bought within N days")
    p.add_argument("--cap-per-day", type=int, help="impressions per visitor per day (0: no cap)")
    p.add_argument("--min-gap-seconds", type=int, help="minimum time between two impressions to a visitor")
    p.add_argument("--logo-url")
    p.add_argument("--brand-color", help="#rrggbb")
    p.add_argument("--text-color", help="#rrggbb")
    p.set_defaults(func=cmd_create_campaign)

    p = sub.add_parser("list-campaigns", help="list campaigns", description="List campaigns (tab-separated).")
    p.add_argument("--advertiser")
    p.set_defaults(func=cmd_list_campaigns)

    p = sub.add_parser("create-placement", help="register a publisher placement", description="Register an ad slot.")
    p.add_argument("id")
    p.add_argument("--site", required=True)
    p.add_argument("--size", action="append", help="allowed size (repeatable), e.g. 300x250")
    p.add_argument("--advertiser", action="append", help="house advertiser for non-personalised ads (repeatable)")
    p.add_argument("--floor", type=float, default=0.0, help="lowest eCPM accepted (exchange currency)")
    p.set_defaults(func=cmd_create_placement)

    p = sub.add_parser("demo", help="load the demo advertiser, catalog and placements",
                       description="Load the demo store 'demo' (60 products) and placements into the configured stores.")
    p.add_argument("--base-url", help="where the demo store's pages are served (default: ADSERVER_PUBLIC_URL or 127.0.0.1:PORT)")
    p.add_argument("--reports", action="store_true",
                   help="also the demo marketer demo@example.com (password demo-password), a CPC price and 14 days "
                        "of generated ad traffic for /reports (not for production stores)")
    p.set_defaults(func=cmd_demo)
    from adserver.cli.console import add_commands

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    global _context
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _context = CommandContext(settings or load_settings())
        return args.func(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except AdServerError as exc:
        print(f"error ({exc.code}): {exc}", file=sys.stderr)
        return 1
    finally:
        if _context is not None:
            _context.close()
            _context = None
