"""Image commands: resizing the catalogs' product images for ad slots."""

from __future__ import annotations

import click

from adserver.cli.context import CommandContext, with_context
from tracker.errors import AdServerError

MAX_LISTED_FAILURES = 50


def echo_image_report(report: dict) -> None:
    """Print a resize run: the failed products with their codes, then the counts."""
    for failure in report["failures"][:MAX_LISTED_FAILURES]:
        click.echo(f"image of {failure['sku']}: {failure['code']}: {failure['reason']}")
    if len(report["failures"]) > MAX_LISTED_FAILURES:
        click.echo(f"... and {len(report['failures']) - MAX_LISTED_FAILURES} more failed images")
    click.echo(f"images: {report['resized']} resized, {report['unchanged']} unchanged, "
               f"{report['failed']} failed (their products show the feed's image)")


@click.command("resize-images")
@click.argument("advertisers", nargs=-1, metavar="[ADVERTISER]...")
@click.option("--refresh", is_flag=True,
              help="Fetch images already resized again (conditionally: an unchanged picture costs a 304).")
@click.option("--workers", type=click.IntRange(1, 32), default=4, show_default=True, help="Fetches in flight.")
@with_context
def resize_images(context: CommandContext, advertisers: tuple[str, ...], refresh: bool, workers: int) -> int:
    """Resize catalog images for ad slots.

    For the named advertisers, or all of them: fetches each catalog image not resized yet (or that
    failed before) from the advertiser's landing domains, checks it is a real picture, and stores
    WebP and JPEG variants served at /img/. import-feed --images does this right after its import;
    run it after feed uploads through the API (for example from a timer), with --refresh now and then.
    """
    from adserver.catalog.images import resize_images as resize
    from adserver.catalog.registry import Registry

    ch = context.clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    unknown = [a for a in advertisers if a not in registry.advertisers]
    if unknown:
        raise AdServerError(f"unknown advertiser {unknown[0]!r}", "unknown_advertiser")
    for advertiser in advertisers or tuple(registry.advertisers):
        click.echo(f"{advertiser}:")
        report = resize(ch, context.stores.redis("web"), advertiser, registry.advertisers[advertiser].domains,
                        allow_loopback=context.settings.fetch_allow_loopback, refresh=refresh,
                        workers=workers).as_dict()
        echo_image_report(report)
    return 0


COMMANDS = (resize_images,)
