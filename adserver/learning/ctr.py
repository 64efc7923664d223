"""The CTR model's training job and serving cache.

Training reads the ad impressions of the last days from ClickHouse, with the context the ad decision
saw (placement, size, advertiser, the visitor's interest age and views, hour, device) and whether the
impression was clicked, trains ``models.ctr`` on them in time order and stores a new version under
``<model_dir>/_ctr/`` (advertiser ids cannot start with ``_``, so this never collides with the
recommender's per-advertiser folders). Serving processes notice the new ``CURRENT`` within seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.ctr import DEFAULT_PRIOR_CTR, CtrContext, CtrModel
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError

log = logging.getLogger(__name__)

CTR_FOLDER = "_ctr"
MIN_IMPRESSIONS = 1000
# Impressions younger than this are left out: their clicks may still come, and counting them as
# "not clicked" would bias the model toward the newest traffic's contexts looking unclickable.
CLICK_WINDOW = timedelta(minutes=10)

# Valid impressions of the period and whether a valid click carries the same impression id. Clicks
# flagged invalid (bots, floods) count as no click: they are not what the auction pays for. The IN
# subquery and toHour(ts, 'UTC') run on ClickHouse 18.16 as on current versions.
TRAINING_SQL = """
SELECT placement, size, advertiser, interest_age, interest_views, toHour(ts, 'UTC') AS hour, device,
       impression_id IN (
           SELECT impression_id FROM events
           WHERE event = 'click' AND invalid = 0 AND impression_id != '' AND ts >= %(since)s
       ) AS clicked
FROM events
WHERE event = 'impression' AND invalid = 0 AND ts >= %(since)s AND ts < %(until)s
ORDER BY ts, impression_id
"""


class NotEnoughData(AdServerError):
    """Too few impressions or no clicks: a model trained on that would be noise, keep the current one."""

    code = "not_enough_data"


def ctr_folder(model_dir: Path) -> Path:
    return Path(model_dir) / CTR_FOLDER


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
    from models.ctr import save_ctr, train_ctr

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


class CtrCache:
    """The current CTR model of a serving process, re-checked at most every ``check_seconds``
    (the same pattern as ``adserver.learning.similar.ModelCache``): a new version is picked up without a
    restart, and a broken one is logged and ignored while the previous model keeps serving."""

    def __init__(self, model_dir: Path, check_seconds: float = 5.0) -> None:
        self.folder = ctr_folder(model_dir)
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._entry: tuple[float, str | None, CtrModel | None] | None = None

    def get(self) -> CtrModel | None:
        """The current model, or None before any training."""
        entry = self._entry
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.check_seconds:
            return entry[2]
        with self._lock:
            try:
                version: str | None = (self.folder / "CURRENT").read_text().strip() or None
            except OSError:
                version = None
            if entry is not None and entry[1] == version:
                self._entry = (now, version, entry[2])
                return entry[2]
            model = None
            if version:
                try:
                    from models.ctr import load_ctr

                    model = load_ctr(self.folder, version)
                    log.info("loaded CTR model %s", version)
                except (OSError, ValueError) as exc:
                    log.error("CTR model %s not loaded (%s); keeping the previous one", version, exc)
                    model = entry[2] if entry else None
            self._entry = (now, version, model)
            return model

    def predict(self, ctx: CtrContext) -> float:
        """Predicted CTR; ``DEFAULT_PRIOR_CTR`` while no model is trained."""
        model = self.get()
        return DEFAULT_PRIOR_CTR if model is None else model.predict(ctx)
