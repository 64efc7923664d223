"""The CTR model learns from "not interested": a dismissed impression is a negative example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adserver.learning.ctr_training import training_rows
from models.ctr import CtrContext
from tests.adserver.learning.test_ctr_training import event_row
from tracker import schema


def test_dismissed_impressions_are_negative_examples_even_when_clicked(any_ch):
    """On both ClickHouse backends: the server (18.16 in Debian) and chdb (current ClickHouse)."""
    ch = any_ch
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ctx = CtrContext("feed", "300x250", "shop", 4000, 2, 0, "mobile")
    t = (now - timedelta(days=1)).replace(minute=0, second=0)
    ch.insert("events", schema.EVENTS_COLUMNS, [
        event_row(t, "impression", "clicked", ctx), event_row(t + timedelta(seconds=5), "click", "clicked", ctx),
        event_row(t + timedelta(seconds=1), "impression", "clicked-then-hidden", ctx),
        event_row(t + timedelta(seconds=6), "click", "clicked-then-hidden", ctx),
        event_row(t + timedelta(seconds=7), "hide", "clicked-then-hidden", ctx),
        event_row(t + timedelta(seconds=2), "impression", "hidden", ctx),
        event_row(t + timedelta(seconds=8), "hide", "hidden", ctx),
        # A bot's answer says nothing about the reader: the click still counts.
        event_row(t + timedelta(seconds=3), "impression", "bot-hidden", ctx),
        event_row(t + timedelta(seconds=9), "click", "bot-hidden", ctx),
        event_row(t + timedelta(seconds=10), "hide", "bot-hidden", ctx, invalid=1),
    ])
    contexts, clicked = training_rows(ch, now - timedelta(days=30))
    assert len(contexts) == 4
    assert clicked == [1, 0, 0, 1]
