"""Catalog commands: advertisers, placements, product feeds and API tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from adserver.cli.context import CommandContext, CommandFailed, with_context
from tracker.errors import AdServerError, FeedError
from tracker.events import ADVERTISER_RE

FORMATS = click.Choice(["csv", "tsv", "json", "xml"])
# File names that tell the format (a ".gz" after them is looked through: gzip is detected from content).
SUFFIXES = {".json": "json", ".tsv": "tsv", ".csv": "csv", ".xml": "xml", ".rss": "xml", ".atom": "xml"}
FORCE_HELP = ("With --full: import even if it removes more than ADSERVER_FEED_MAX_DROP of the catalog "
              "(refused otherwise, as a truncated feed would).")
IMAGES_HELP = ("Then resize the catalog's new images for ad slots and list those that failed (otherwise "
               "resize-images does it later; the products show the feed's images until then).")
MAX_LISTED_ERRORS = 50  # an operator reads the first rejected fields; the count says how many more


@click.command("create-advertiser")
@click.argument("advertiser_id", metavar="ID")
@click.option("--name", help="Display name (default: the id).")
@click.option("--currency", help="ISO 4217 currency of its feed and reports (default: CNY).")
@click.option("--timezone", help="IANA time zone of its reports' days and hours, e.g. Asia/Shanghai (default: UTC).")
@click.option("--domain", "domains", multiple=True, metavar="HOST",
              help="Add a landing domain (repeatable): product links must be on it or a subdomain, e.g. shop.example.")
@click.option("--remove-domain", "removed", multiple=True, metavar="HOST", help="Remove a landing domain (repeatable).")
@with_context
def create_advertiser(context: CommandContext, advertiser_id: str, name: str | None, currency: str | None,
                      timezone: str | None, domains: tuple[str, ...], removed: tuple[str, ...]) -> int:
    """Register an advertiser (a store), or update one.

    ID is 1-64 lowercase letters, digits, '_' or '-'. Running it again updates the advertiser: options
    not given keep their values, --domain adds landing domains, --remove-domain removes some. Feed
    links outside its landing domains (and their subdomains) are rejected and their clicks refused;
    an advertiser without any gets no product imported.
    """
    from adserver.catalog.landing import check_domain
    from adserver.catalog.registry import get_advertiser, save_advertiser

    ch = context.clickhouse()
    current = get_advertiser(ch, advertiser_id) if ADVERTISER_RE.match(advertiser_id) else None
    kept = set(current.domains) if current else set()
    gone = {check_domain(d) for d in removed}
    if gone - kept:
        raise AdServerError(f"{advertiser_id} has no landing domain {', '.join(sorted(gone - kept))}", "invalid_domain")
    advertiser = save_advertiser(
        ch, advertiser_id, name or (current.name if current else advertiser_id),
        currency or (current.currency if current else "CNY"), timezone or (current.timezone if current else "UTC"),
        domains=(kept | {check_domain(d) for d in domains}) - gone)
    click.echo(f"advertiser {advertiser.id} ({advertiser.name}, {advertiser.currency}, {advertiser.timezone})")
    click.echo(f"landing domains: {', '.join(advertiser.domains)}" if advertiser.domains else
               "landing domains: none (no product is imported until one is declared: --domain <host>)")
    return 0


@click.command("create-placement")
@click.argument("placement_id", metavar="ID")
@click.option("--site", required=True, help="The publisher's site the slot is on.")
@click.option("--size", multiple=True, help="Allowed size (repeatable), e.g. 300x250; none: any size.")
@click.option("--advertiser", multiple=True, help="House advertiser for non-personalised ads (repeatable).")
@click.option("--floor", type=float, default=0.0, show_default=True, help="Lowest eCPM accepted (exchange currency).")
@with_context
def create_placement(context: CommandContext, placement_id: str, site: str, size: tuple[str, ...],
                     advertiser: tuple[str, ...], floor: float) -> int:
    """Register a publisher placement (an ad slot)."""
    from adserver.catalog.registry import save_placement

    placement = save_placement(context.clickhouse(), placement_id, site, list(size), list(advertiser), floor)
    click.echo(f"placement {placement.id} on {placement.site}")
    return 0


@click.command("import-feed")
@click.argument("advertiser")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=FORMATS, help="Default: from the file name or content.")
@click.option("--full", is_flag=True, help="The feed is the whole catalog: remove products missing from it.")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--images", is_flag=True, help=IMAGES_HELP)
@with_context
def import_feed(context: CommandContext, advertiser: str, file: Path, fmt: str | None, full: bool,
                force: bool, images: bool) -> int:
    """Import a product feed from a file.

    Reads CSV, TSV, JSON or Google Merchant XML (RSS 2.0 or Atom with the g: namespace; --format xml),
    gzip-compressed or not, validates it, stores its good rows and reports the bad ones by row number
    (for XML, the item's position in the feed), field and reason.
    """
    if not file.is_file():
        raise CommandFailed(f"error: {file} is not a file", 2)
    name = Path(file.stem) if file.suffix.lower() == ".gz" else file
    fmt = fmt or SUFFIXES.get(name.suffix.lower())
    return _import(context, advertiser, file.read_bytes(), fmt, full, force, images=images)


@click.command("fetch-feed")
@click.argument("advertiser")
@click.argument("url")
@click.option("--format", "fmt", type=FORMATS, help="Default: from the response's type or content.")
@click.option("--full", is_flag=True, help="Remove products missing from the feed.")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--unconditional", is_flag=True, help="Download and import even if the feed did not change.")
@with_context
def fetch_feed(context: CommandContext, advertiser: str, url: str, fmt: str | None, full: bool, force: bool,
               unconditional: bool) -> int:
    """Download a store's feed and import it if it changed.

    Made to run from a timer (deploy/systemd/adserver-feed@.timer): the ETag and Last-Modified of the
    copy last imported from URL are sent back, and "not modified" imports nothing. Fetches over
    http(s) from public addresses only (5 min, 50 MB), then imports like import-feed.
    """
    from adserver.catalog.feed_sources import fetch_feed as fetch
    from adserver.catalog.feed_sources import save_validators

    fetched = fetch(context.stores, advertiser, url, conditional=not unconditional)
    if fetched.not_modified:
        click.echo(f"not modified since the last import from {url}: nothing imported")
        return 0
    status = _import(context, advertiser, fetched.body, fmt or fetched.fmt, full, force)
    if status == 0:  # a refused feed raised: it is fetched and checked again next time
        save_validators(context.clickhouse(), advertiser, url, fetched.validators)
    return status


def _import(context: CommandContext, advertiser: str, data: bytes, fmt: str | None, full: bool,
            force: bool = False, images: bool = False) -> int:
    from adserver.catalog.upload import import_products
    from adserver.progress import Progress

    context.clickhouse()
    progress = Progress(f"import {advertiser}")
    try:
        report = import_products(context.stores, advertiser, data, fmt, full, progress=progress.update,
                                 force=force, resize_images=images)
    except FeedError as exc:
        if exc.report is not None:
            _echo_errors(exc.report)
        raise
    progress.finish()
    _echo_errors(report)
    click.echo(f"imported {report.accepted} products, rejected {len(report.errors)} rows/fields, "
               f"removed {report.removed}")
    if report.images is not None:
        from adserver.cli.images import echo_image_report

        echo_image_report(report.images)
    return 0 if report.accepted else 1


def _echo_errors(report) -> None:
    for error in report.errors[:MAX_LISTED_ERRORS]:
        click.echo(f"row {error.row}: {error.field}: {error.reason}")
    if len(report.errors) > MAX_LISTED_ERRORS:
        click.echo(f"... and {len(report.errors) - MAX_LISTED_ERRORS} more rejected fields")


@click.command("create-token")
@click.argument("advertiser")
@click.option("--label", default="", help="A note stored with the token, e.g. who uses it.")
@with_context
def create_token(context: CommandContext, advertiser: str, label: str) -> int:
    """Create an advertiser's API token (printed last).

    Only the token's hash is stored, so it is shown once.
    """
    from adserver.catalog.registry import Registry
    from adserver.catalog.tokens import create_token as create

    ch = context.clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    if advertiser not in registry.advertisers:
        raise AdServerError(f"unknown advertiser {advertiser!r}", "unknown_advertiser")
    token = create(ch, advertiser, label)
    click.echo(f"API token for {advertiser} (shown once, store it now):")
    click.echo(token)
    return 0


@click.command("revoke-token")
@with_context
def revoke_token(context: CommandContext) -> int:
    """Revoke an API token read from standard input.

    The token is read from stdin, never from the command line, where ps and shell history would see it.
    """
    from adserver.catalog.tokens import revoke_token as revoke

    token = sys.stdin.readline().strip()
    if not revoke(context.clickhouse(), token):
        click.echo("no such token", err=True)
        return 1
    click.echo("token revoked")
    return 0


COMMANDS = (create_advertiser, create_placement, import_feed, fetch_feed, create_token, revoke_token)
