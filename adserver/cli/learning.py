"""Model commands: ``train`` (similar products), ``train-ctr`` (the auction's CTR model), ``evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adserver.cli.context import CommandContext, CommandFailed, positive, with_context
from tracker.errors import AdServerError


@click.command("train")
@click.option("--advertiser", multiple=True, help="Only this advertiser (repeatable); default: all.")
@click.option("--k", type=int, default=20, show_default=True, help="Neighbours kept per product.")
@click.option("--days", type=int, default=90, show_default=True, help="Events of the last N days.")
@with_context
def train(context: CommandContext, advertiser: tuple[str, ...], k: int, days: int) -> int:
    """Build the similar-products model of each advertiser.

    Content and behavioural similarity from the catalog and the ClickHouse events; running servers pick
    the new version up within seconds, without a restart.
    """
    from adserver.catalog.registry import Registry
    from adserver.learning.training import train_advertiser

    ch = context.clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    advertisers = list(advertiser) or registry.advertiser_ids()
    unknown = [a for a in advertisers if a not in registry.advertisers]
    if unknown:
        raise AdServerError(f"unknown advertiser(s): {', '.join(unknown)}", "unknown_advertiser")
    status = 0
    for name in advertisers:
        try:
            result = train_advertiser(ch, name, context.settings.model_dir, k=k, days=days)
        except ValueError as exc:
            click.echo(f"{name}: skipped: {exc}")
            status = 1
            continue
        click.echo(f"{name}: model {result.version}: {result.products:,} products, {result.events:,} events, "
                   f"{result.seconds:.1f}s -> {result.path}")
    return status


@click.command("train-ctr")
@click.option("--days", type=int, default=30, show_default=True, callback=positive,
              help="Impressions of the last N days.")
@click.option("--force", is_flag=True, help="Publish the model even if it loses to the constant baseline.")
@with_context
def train_ctr(context: CommandContext, days: int, force: bool) -> int:
    """Train the click-through-rate model of the auction.

    Logistic regression on the impressions of the last N days and their clicks; prints held-out AUC and
    log-loss against a constant baseline. Running servers pick up the new version without a restart.
    """
    from adserver.learning.ctr_training import train_ctr_job

    # Too little data, or no better than the baseline: an error line and exit 1, the current model stays.
    train_ctr_job(context.clickhouse(), context.settings.model_dir, days, force=force)
    return 0


@click.command("evaluate")
@click.argument("events", type=click.Path(path_type=Path))
@click.option("--split-at", type=float, metavar="UNIX_SECONDS",
              help="Train before this time, replay after it; default: the last 10% of the time range is held out.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@with_context
def evaluate(context: CommandContext, events: Path, split_at: float | None, as_json: bool) -> int:
    """Offline evaluation by replay of an event log.

    EVENTS is a CSV with the header visitor,item,ts[,event,title] (.gz accepted). Models are trained on
    the events before the split; the rest are replayed in time order, asking for 20 products each time.
    Prints HR@10, HR@20, MRR@20, NDCG@10 and coverage for the ad server's recommender, a popularity
    baseline and plain item-kNN.
    """
    from adserver.progress import Progress
    from models.evaluate import evaluate as replay
    from models.evaluate import format_table, read_events_csv

    progress = Progress("read events")
    try:
        rows = read_events_csv(events)
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"error: {exc}", 2) from exc
    progress.finish(f"{len(rows):,} events")
    if not rows:
        raise CommandFailed("error: no events in the file", 2)
    progress = Progress("replay")
    result = replay(rows, split_at=split_at, progress=progress.update)
    progress.finish(f"{result['predictions']:,} predictions")
    click.echo(json.dumps(result) if as_json else format_table(result))
    return 0


COMMANDS = (train, train_ctr, evaluate)
