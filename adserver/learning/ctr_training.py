"""The CTR model's training job: impressions and clicks in, a new model version out.

It reads the ad impressions of the last days from ClickHouse, with the context the ad decision saw
(placement, size, advertiser, the visitor's interest age and views, hour, device) and whether the
impression was clicked (and not dismissed as "not interested"), trains ``models.ctr`` on them in time order and stores a new version under
``<model_dir>/_ctr/``, where serving processes notice it within seconds (:mod:`adserver.learning.ctr`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adserver.learning.ctr import ctr_folder
from models.ctr import CtrContext, save_ctr, train_ctr
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError

MIN_IMPRESSIONS = 1000
# Impressions younger than this are left out: their clicks may still come, and counting them as
# "not clicked" would bias the model toward the newest traffic's contexts looking unclickable.
CLICK_WINDOW = timedelta(minutes=10)

# Valid impressions of the period and whether a valid click carries the same impression id. Clicks
# flagged invalid (bots, floods) count as no click: they are not what the auction pays for. An
# impression the reader answered "not interested" to (a valid ``hide``) is a negative example even
# if it was clicked too: the reader said the ad was unwanted. The IN subqueries and
# toHour(ts, 'UTC') run on ClickHouse 18.16 as on current versions.
TRAINING_SQL = """
SELECT placement, size, advertiser, interest_age, interest_views, toHour(ts, 'UTC') AS hour, device,
       impression_id IN (
           SELECT impression_id FROM events
           WHERE event = 'click' AND invalid = 0 AND impression_id != '' AND ts >= %(since)s
       ) AND impression_id NOT IN (
           SELECT impression_id FROM events
           WHERE event = 'hide' AND invalid = 0 AND impression_id != '' AND ts >= %(since)s
       ) AS clicked
FROM events
WHERE event = 'impression' AND invalid = 0 AND ts >= %(since)s AND ts < %(until)s
ORDER BY ts, impression_id
"""


class NotEnoughData(AdServerError):
    """Too few impressions or no clicks: a model trained on that would be noise, keep the current one."""

    code = "not_enough_data"


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def training_rows(ch: ClickHouse, since: datetime,
                  until: datetime | None = None) -> tuple[list[CtrContext], list[int]]:
    """Impressions from ``since`` (UTC) to ``until`` (default: now minus ``CLICK_WINDOW``) in time order,
    as contexts and click labels (1 = clicked)."""
    if until is None:
        until = datetime.now(UTC) - CLICK_WINDOW
    rows = ch.execute(TRAINING_SQL, {"since": _naive_utc(since), "until": _naive_utc(until)})
    contexts = [CtrContext(placement=p, size=s, advertiser=a, interest_age=int(age), interest_views=int(views),
                           hour=int(hour), device=device)
                for p, s, a, age, views, hour, device, _ in rows]
    return contexts, [1 if row[7] else 0 for row in rows]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """The held-out figures as a small table: the model against a constant predictor of the training CTR."""
    lines = [
        f"held out: last {metrics['test_rows']:,} impressions (trained on the {metrics['train_rows']:,} before); "
        f"CTR {metrics['ctr']:.2%} overall, {metrics.get('test_ctr', 0.0):.2%} held out",
        f"{'':<22}{'AUC':>8}{'log-loss':>12}",
        f"{'model':<22}{_fmt(metrics['auc']):>8}{_fmt(metrics['logloss'], 5):>12}",
        f"{'baseline (constant)':<22}{_fmt(metrics['baseline_auc']):>8}{_fmt(metrics['baseline_logloss'], 5):>12}",
    ]
    if metrics["baseline_logloss"] > 0:
        change = metrics["logloss"] / metrics["baseline_logloss"] - 1
        lines.append(f"model log-loss {abs(change):.1%} {'lower' if change <= 0 else 'HIGHER'} than the baseline's")
    return "\n".join(lines)


class WorseThanBaseline(AdServerError):
    """The new model predicts held-out clicks worse than a constant: it is not published."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "worse_than_baseline")


def train_ctr_job(ch: ClickHouse, model_dir: Path, days: int, out: Callable[[str], Any] = print,
                  min_impressions: int = MIN_IMPRESSIONS, force: bool = False) -> tuple[str, dict[str, Any]]:
    """Train on the last ``days`` of impressions, save a new version under ``<model_dir>/_ctr/`` and
    return (version, held-out metrics). Raises NotEnoughData, leaving the current model in place, when
    there are fewer than ``min_impressions`` impressions or no click at all."""
    if days < 1:
        raise ValueError("days must be at least 1")
    started = time.monotonic()
    since = datetime.now(UTC) - timedelta(days=days)
    out(f"reading impressions since {since:%Y-%m-%d %H:%M} UTC")
    contexts, clicked = training_rows(ch, since)
    clicks = sum(clicked)
    out(f"{len(contexts):,} impressions, {clicks:,} clicks")
    if len(contexts) < min_impressions:
        raise NotEnoughData(f"only {len(contexts):,} impressions in the last {days} days; at least "
                            f"{min_impressions:,} are needed to train the CTR model (current model kept)")
    if clicks == 0:
        raise NotEnoughData(f"no clicks among {len(contexts):,} impressions in the last {days} days; "
                            "nothing to learn (current model kept)")
    out("training (last 20% held out for evaluation, then refit on everything)")
    model, metrics = train_ctr(contexts, clicked)
    model.meta.update({"days": days, "since": since.isoformat(), "created_at": datetime.now(UTC).isoformat(),
                       "seconds": round(time.monotonic() - started, 3)})
    out(format_metrics(metrics))
    if metrics["logloss"] > metrics["baseline_logloss"] and not force:
        # Serving a model that predicts worse than the average CTR would rank campaigns on noise.
        raise WorseThanBaseline(f"the new model's held-out log-loss {metrics['logloss']:.5f} is worse than the "
                                f"constant baseline's {metrics['baseline_logloss']:.5f}: not published, the "
                                "current model (or the prior) keeps serving; --force publishes it anyway")
    version = save_ctr(model, ctr_folder(model_dir))
    out(f"CTR model {version}: {len(model.advertiser_support):,} advertisers, "
        f"{len(model.placement_support):,} placements, prior CTR {model.prior_ctr:.3%}, "
        f"{time.monotonic() - started:.1f}s -> {ctr_folder(model_dir) / version}")
    return version, metrics
