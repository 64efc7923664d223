"""``demo``: two demo stores with their catalogs, campaigns and models, and the demo placements."""

from __future__ import annotations

import json

import click

from adserver.cli.context import CommandContext, CommandFailed, with_context
from tracker.errors import AdServerError
from tracker.settings import Settings


def demo_base_url(settings: Settings) -> str:
    """Where the demo store's pages are served: the public URL, else this machine on the server's port."""
    return settings.public_url or f"http://127.0.0.1:{settings.port}"


def demo_domains(base_url: str) -> list[str]:
    """The demo stores' landing domain: the host their pages (and so their product links) are served on."""
    from adserver.catalog.landing import url_host

    host = url_host(base_url)
    if host is None:
        raise AdServerError(f"--base-url {base_url[:200]!r} is not an http(s) URL with a plain host", "invalid_url")
    return [host]


@click.command("demo")
@click.option("--base-url", help="Where the demo store's pages are served (default: ADSERVER_PUBLIC_URL, else "
                                 "http://127.0.0.1:ADSERVER_PORT).")
@click.option("--reports", is_flag=True,
              help="Also the demo marketer demo@example.com (password demo-password), a CPC price and 14 days of "
                   "generated ad traffic for /reports (not for production stores; in server mode only with "
                   "ADSERVER_DEMO=1).")
@with_context
def demo(context: CommandContext, base_url: str | None, reports: bool) -> int:
    """Load the demo stores, catalogs and placements.

    Stores 'demo' (CPC campaign) and 'outdoor' (CPM campaign), placements demo-feed (floor 0.30),
    demo-sidebar (2.00) and demo-banner (0.50), and the stores' similar-products models, into whatever
    stores are configured.
    """
    from adserver.campaigns.campaign import Campaign, save_campaign
    from adserver.catalog.images import resize_images
    from adserver.catalog.registry import save_advertiser, save_placement
    from adserver.catalog.upload import import_products
    from adserver.demo import demo_products, outdoor
    from adserver.demo.pictures import demo_image
    from adserver.learning.training import train_advertiser

    if reports and not context.settings.demo:
        # Its password is in the README: anyone could sign in to a server that has it.
        raise CommandFailed("error (demo_disabled): --reports creates the marketer demo@example.com with the "
                            "published password demo-password; this server has no demo. Set ADSERVER_DEMO=1 "
                            "only on a server nobody else can reach.")
    ch = context.clickhouse()
    model_dir = context.settings.model_dir
    base_url = base_url or demo_base_url(context.settings)
    domains = demo_domains(base_url)
    save_advertiser(ch, "demo", "Lotus & Co. 莲花良品", "CNY", domains=domains)
    save_placement(ch, "demo-feed", "Demo microblog", [], ["demo"], floor=0.3)  # any size: the feed adapts
    save_placement(ch, "demo-sidebar", "Demo microblog sidebar", ["160x600", "300x250"], ["demo"], floor=2.0)
    save_placement(ch, "demo-banner", "Demo microblog banner", ["728x90", "320x50"], ["demo"], floor=0.5)
    data = json.dumps(demo_products(base_url), ensure_ascii=False).encode()
    report = import_products(context.stores, "demo", data, "json", full=True)
    # A CPC campaign (pays per click: also buys non-personalised slots) for the demo store.
    save_campaign(ch, Campaign("demo-retargeting", "demo", "Lotus & Co. retargeting", pricing="cpc", price=0.6,
                               daily_budget=500.0, cap_per_day=30, logo_url=f"{base_url}/static/demo/logo.svg",
                               brand_color="#2e7d6b", text_color="#ffffff"))
    click.echo(f"demo advertiser 'demo': {report.accepted} products ({len(report.errors)} rejected), campaign "
               "demo-retargeting (CPC 0.60); placements demo-feed (floor 0.30), demo-sidebar (2.00), "
               "demo-banner (0.50)")
    # A second store, with a CPM campaign (buys its retargeting audience only): the two compete.
    save_advertiser(ch, outdoor.ADVERTISER, outdoor.NAME, outdoor.CURRENCY, domains=domains)
    data = json.dumps(outdoor.outdoor_products(base_url), ensure_ascii=False).encode()
    report = import_products(context.stores, outdoor.ADVERTISER, data, "json", full=True)
    save_campaign(ch, Campaign("outdoor-retargeting", outdoor.ADVERTISER, "Trailhead retargeting", pricing="cpm",
                               price=3.0, daily_budget=300.0, cap_per_day=20, min_gap_seconds=5,
                               logo_url=f"{base_url}/static/demo/outdoor/logo.svg", brand_color="#e8590c",
                               text_color="#ffffff"))
    click.echo(f"demo advertiser '{outdoor.ADVERTISER}': {report.accepted} products ({len(report.errors)} "
               "rejected), campaign outdoor-retargeting (CPM 3.00)")
    for advertiser in ("demo", outdoor.ADVERTISER):  # slot-sized pictures, drawn from the stores' own files
        images = resize_images(ch, context.stores.redis("web"), advertiser, domains, process=demo_image)
        click.echo(f"{advertiser} images: {images.resized} resized, {images.unchanged} unchanged, "
                   f"{len(images.failures)} failed")
    for advertiser in ("demo", outdoor.ADVERTISER):
        result = train_advertiser(ch, advertiser, model_dir)
        click.echo(f"{advertiser} similar-products model {result.version} ({result.seconds:.1f}s)")
    if reports:
        from adserver.demo.reports import setup_demo
        from adserver.learning.ctr_training import train_ctr_job

        click.echo(setup_demo(ch))
        try:  # the demo traffic's impressions and clicks: the auction's CTR model
            train_ctr_job(ch, model_dir, 30, out=click.echo)
        except AdServerError as exc:  # not enough data, or no better than the average: the prior serves
            click.echo(f"CTR model not published: {exc}")
    return 0


COMMANDS = (demo,)
