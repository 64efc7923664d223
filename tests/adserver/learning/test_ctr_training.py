"""The CTR training job against a real ClickHouse: impressions and clicks in ``events``, ``train-ctr``
through the CLI, the stored artifact, hot reload in serving processes, and refusal on too little data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adserver.learning.ctr import CtrCache, ctr_folder
from adserver.learning.ctr_training import training_rows
from models.ctr import CtrContext, load_ctr
from tests.conftest import truncate
from tests.models.test_ctr import synthetic_impressions
from tracker import schema


def event_row(ts: datetime, event: str, impression_id: str, ctx: CtrContext | None = None, invalid: int = 0) -> tuple:
    values = dict(ts=ts, advertiser="", event=event, uid="u-" + impression_id, sku="A1", skus=["A1"], reasons=["recent"],
                  order_id="", value=0.0, currency="", placement="", impression_id=impression_id, size="",
                  addressable=1, device="", url="", ref="", stream_id=f"{event}-{impression_id}", campaign="c1",
                  cost=0.0, pctr=0.0, interest_age=0, interest_views=0, invalid=invalid,
                  invalid_reason="bot" if invalid else "", consent=0)
    if ctx is not None:
        values.update(placement=ctx.placement, size=ctx.size, advertiser=ctx.advertiser, device=ctx.device,
                      interest_age=ctx.interest_age, interest_views=ctx.interest_views)
    assert set(values) == set(schema.EVENTS_COLUMNS)
    return tuple(values[c] for c in schema.EVENTS_COLUMNS)


def insert_impressions(ch, n: int, seed: int = 11, end: datetime | None = None, clicks: bool = True) -> tuple[int, int]:
    """``n`` synthetic impressions over the 10 days before ``end`` (default: 1 hour ago), each clicked with
    its true probability; the hour of each row is the context's hour. Returns (impressions, clicks)."""
    contexts, clicked, _ = synthetic_impressions(n, seed)
    end = end or datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
    start_day = (end - timedelta(days=10)).replace(hour=0, minute=0, second=0)
    rows = []
    for i, (ctx, c) in enumerate(zip(contexts, clicked, strict=True)):
        day = start_day + timedelta(days=9 * i // n)  # in time order, as the model expects
        ts = day + timedelta(hours=ctx.hour, seconds=i % 3600)
        imp = f"s{seed}-{i}"
        rows.append(event_row(ts, "impression", imp, ctx))
        if c and clicks:
            rows.append(event_row(ts + timedelta(seconds=20), "click", imp, ctx))
    ch.insert("events", schema.EVENTS_COLUMNS, rows)
    return n, sum(clicked) if clicks else 0


def test_training_rows_reads_valid_impressions_and_their_clicks(any_ch):
    """On both ClickHouse backends: the server (18.16 in Debian) and chdb (current ClickHouse)."""
    ch = any_ch
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ctx = CtrContext("feed", "300x250", "shop", 4000, 2, 0, "mobile")
    t = (now - timedelta(days=1)).replace(minute=0, second=0)
    ch.insert("events", schema.EVENTS_COLUMNS, [
        event_row(t, "impression", "clicked", ctx), event_row(t + timedelta(seconds=5), "click", "clicked", ctx),
        event_row(t + timedelta(seconds=1), "impression", "not-clicked", ctx),
        # A click flagged invalid (a bot, a flood) is no click; an invalid impression is no impression.
        event_row(t + timedelta(seconds=2), "impression", "bot-clicked", ctx),
        event_row(t + timedelta(seconds=3), "click", "bot-clicked", ctx, invalid=1),
        event_row(t + timedelta(seconds=4), "impression", "invalid", ctx, invalid=1),
        event_row(t + timedelta(seconds=6), "click", "invalid", ctx, invalid=1),
        # Too old, and too recent to have had its chance of a click.
        event_row(now - timedelta(days=40), "impression", "old", ctx),
        event_row(now - timedelta(minutes=2), "impression", "fresh", ctx),
        event_row(t, "view_item", "", ctx),
    ])
    contexts, clicked = training_rows(ch, now - timedelta(days=30))
    assert clicked == [1, 0, 0]
    assert contexts == [CtrContext("feed", "300x250", "shop", 4000, 2, t.hour, "mobile")] * 3
    # An aware ``since`` is the same instant.
    assert training_rows(ch, (now - timedelta(days=30)).replace(tzinfo=UTC)) == (contexts, clicked)


def _figures(out: str) -> dict[str, tuple[float, float]]:
    found = {}
    for name in ("model", "baseline (constant)"):
        match = re.search(rf"^{re.escape(name)}\s+([0-9.]+)\s+([0-9.]+)$", out, re.M)
        assert match, out
        found[name] = (float(match.group(1)), float(match.group(2)))
    return found


def test_train_ctr_command_prints_metrics_and_saves_the_model(runner, ch, settings):
    impressions, clicks = insert_impressions(ch, 20_000)
    # Older than --days: not read.
    insert_impressions(ch, 2000, seed=12, end=datetime.now(UTC).replace(tzinfo=None) - timedelta(days=60))
    code, out = runner("train-ctr", "--days", "30")
    print("\n" + out)
    assert code == 0, out
    assert f"{impressions:,} impressions, {clicks:,} clicks" in out
    assert "last 4,000 impressions (trained on the 16,000 before)" in out
    figures = _figures(out)
    auc, logloss = figures["model"]
    baseline_auc, baseline_logloss = figures["baseline (constant)"]
    assert baseline_auc == 0.5
    assert auc > 0.7
    assert logloss < baseline_logloss * 0.95

    folder = ctr_folder(settings.model_dir)
    version = (folder / "CURRENT").read_text().strip()
    assert f"CTR model {version}: 4 advertisers, 3 placements" in out
    model = load_ctr(folder, version)
    assert model.meta["rows"] == impressions and model.meta["clicks"] == clicks and model.meta["days"] == 30
    assert model.prior_ctr == pytest.approx(clicks / impressions)
    assert sum(model.advertiser_support.values()) == impressions
    fresh = CtrContext("feed", "300x250", "shop-a", 600, 3, 10, "mobile")
    cold = CtrContext("footer", "300x250", "shop-a", 0, 0, 10, "mobile")
    assert model.predict(fresh) > 5 * model.predict(cold)
    unknown = CtrContext("feed", "300x250", "unknown-shop", 600, 3, 10, "mobile")
    assert model.predict(unknown) == model.generic(unknown) > model.prior_ctr  # fresh interest: above average


def test_ctr_cache_hot_reloads_after_a_retrain(runner, ch, settings, tmp_path: Path):
    cache = CtrCache(settings.model_dir, check_seconds=0.0)
    slow = CtrCache(settings.model_dir, check_seconds=3600.0)
    assert cache.get() is None and slow.get() is None  # no model yet: the auction assumes the prior

    insert_impressions(ch, 5000)
    code, out = runner("train-ctr")
    assert code == 0, out
    first = cache.get()
    assert first is not None and cache.get() is first  # loaded once, then reused
    assert slow.get() is None  # checks CURRENT at most every hour

    insert_impressions(ch, 5000, seed=12)
    code, out = runner("train-ctr", "--days", "20")
    assert code == 0, out
    second = cache.get()
    assert second is not None and second.version != first.version
    assert second.meta["rows"] == 10_000 and second.meta["days"] == 20

    # A broken new version is logged and ignored: the previous model keeps serving.
    folder = ctr_folder(settings.model_dir)
    (folder / "broken").mkdir()
    (folder / "broken" / "meta.json").write_text("{}")
    (folder / "CURRENT").write_text("broken\n")
    assert cache.get() is second


def test_train_ctr_refuses_too_little_data(runner, ch, settings):
    insert_impressions(ch, 500)
    code, out = runner("train-ctr")
    assert code == 1
    assert "error (not_enough_data): only 500 impressions in the last 30 days" in out
    assert not (ctr_folder(settings.model_dir) / "CURRENT").exists()

    truncate(ch)
    insert_impressions(ch, 1500, seed=12, clicks=False)
    code, out = runner("train-ctr")
    assert code == 1, out
    assert "error (not_enough_data): no clicks among 1,500 impressions" in out
    assert not (ctr_folder(settings.model_dir) / "CURRENT").exists()

    code, out = runner("train-ctr", "--days", "0")
    assert code == 2 and "--days must be at least 1" in out


def test_a_model_worse_than_the_constant_baseline_is_not_published(runner, ch, settings):
    """The world changed between the training days and the held-out days (the placement that got the
    clicks stops getting them, the other one starts): the model learnt the old world and predicts the
    held-out clicks worse than the average CTR, so the job refuses to publish it (the prior keeps
    serving) unless forced."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
    rows = []
    n = 3000
    for i in range(n):
        placement = "top" if i % 2 else "bottom"
        held_out = i >= n * 0.8
        clicking = (placement == "top") != held_out
        ctx = CtrContext(placement, "300x250", "shop", 3600, 1, 12, "mobile")
        ts = now - timedelta(days=10) + timedelta(seconds=i * 250)
        rows.append(event_row(ts, "impression", f"n{i}", ctx))
        if clicking and i % 10 < 2:  # 20 % on the clicking placement, none on the other
            rows.append(event_row(ts + timedelta(seconds=5), "click", f"n{i}", ctx))
    ch.insert("events", schema.EVENTS_COLUMNS, rows)
    code, out = runner("train-ctr")
    assert code == 1 and "worse than the constant baseline" in out and "not published" in out, out
    assert not (ctr_folder(settings.model_dir) / "CURRENT").exists()
    code, out = runner("train-ctr", "--force")
    assert code == 0, out
    assert (ctr_folder(settings.model_dir) / "CURRENT").exists()
