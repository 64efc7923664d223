"""Campaign commands: ``create-campaign`` (create, or store a new version), ``list-campaigns``."""

from __future__ import annotations

from datetime import date

import click

from adserver.cli.context import CommandContext, CommandFailed, with_context
from tracker.errors import AdServerError


class IsoDate(click.ParamType):
    """A calendar day written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"not a date (YYYY-MM-DD): {value!r}", param, ctx)


@click.command("create-campaign")
@click.argument("campaign_id", metavar="ID")
@click.option("--advertiser", help="Required for a new campaign.")
@click.option("--name")
@click.option("--status", type=click.Choice(["active", "paused"]))
@click.option("--pricing", type=click.Choice(["cpc", "cpm"]), help="Pay per click, or per thousand impressions.")
@click.option("--price", type=float, help="Price per click (cpc) or per thousand impressions (cpm).")
@click.option("--daily-budget", type=float, help="0 for no limit; paced through the advertiser's day.")
@click.option("--start", type=IsoDate(), help="First day (advertiser's time zone).")
@click.option("--end", type=IsoDate(), help="Last day.")
@click.option("--audience-days", type=int, help="Visitors stay targetable this long after their last view.")
@click.option("--exclude-buyers-days", type=int, help="Do not show to visitors who bought within N days.")
@click.option("--cap-per-day", type=int, help="Impressions per visitor per day (0: no cap).")
@click.option("--min-gap-seconds", type=int, help="Minimum time between two impressions to a visitor.")
@click.option("--hide-days", type=int, help="Days a reader's \"not interested\" in a product or the store lasts.")
@click.option("--logo-url")
@click.option("--brand-color", help="#rrggbb")
@click.option("--text-color", help="#rrggbb")
@with_context
def create_campaign(context: CommandContext, campaign_id: str, advertiser: str | None, **options) -> int:
    """Create a campaign, or change the options given.

    Every option given replaces the old value in a new version of the campaign; running servers see the new version within 30 s.
    Prices, budgets and floors are in the exchange currency (ADSERVER_CURRENCY).
    """
    from dataclasses import replace

    from adserver.campaigns.campaign import Campaign, load_campaigns, save_campaign

    ch = context.clickhouse()
    old = load_campaigns(ch).get(campaign_id)
    if old is None and not advertiser:
        raise CommandFailed(f"error: campaign {campaign_id!r} does not exist yet: --advertiser is required", 2)
    if old is not None and advertiser and advertiser != old.advertiser:
        raise CommandFailed(f"error: campaign {campaign_id!r} belongs to {old.advertiser!r}", 2)
    if advertiser and not ch.execute("SELECT count() FROM advertisers FINAL WHERE id = %(id)s AND deleted = 0",
                                     {"id": advertiser})[0][0]:
        raise AdServerError(f"unknown advertiser {advertiser!r} (create-advertiser first)", "unknown_advertiser")
    fields = {"start": "start_date", "end": "end_date"}  # the options' names for the campaign's fields
    changes = {fields.get(name, name): value for name, value in options.items() if value is not None}
    campaign = save_campaign(ch, replace(old or Campaign(campaign_id, advertiser), **changes))
    budget = f"{campaign.daily_budget:g}/day" if campaign.daily_budget else "no daily budget"
    click.echo(f"campaign {campaign.id} of {campaign.advertiser}: {campaign.status}, {campaign.pricing.upper()} "
               f"{campaign.price:g} {context.settings.currency}, {budget}, {campaign.start_date} to "
               f"{campaign.end_date}")
    return 0


@click.command("list-campaigns")
@click.option("--advertiser", help="Only this advertiser's campaigns.")
@with_context
def list_campaigns(context: CommandContext, advertiser: str | None) -> int:
    """List campaigns (tab-separated, with a header line)."""
    from adserver.campaigns.campaign import load_campaigns

    click.echo("id\tadvertiser\tstatus\tpricing\tprice\tdaily_budget\tstart\tend\tcap/day\tmin_gap_s")
    for c in load_campaigns(context.clickhouse()).values():
        if advertiser and c.advertiser != advertiser:
            continue
        click.echo(f"{c.id}\t{c.advertiser}\t{c.status}\t{c.pricing}\t{c.price:g}\t{c.daily_budget:g}"
                   f"\t{c.start_date}\t{c.end_date}\t{c.cap_per_day}\t{c.min_gap_seconds}")
    return 0


COMMANDS = (create_campaign, list_campaigns)
