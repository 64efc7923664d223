"""Offline evaluation by replay: fit on the past, then walk through the held-out future in time order and ask
every recommender, before each event, for the list it would show that visitor; score where the item the
visitor actually interacted with appears in it.

This measures the ad's real job (will the next product the shopper touches be in the ad?) on the real
order of events, with no peeking: the models see only events before the split, and a visitor's history
grows with the held-out events as they are replayed (the models are not refitted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from models.events_csv import EVENT_WEIGHTS, Event, parse_ts, read_events_csv
from models.recommenders import (
    AdServerRecommender,
    ItemKNNRecommender,
    PopularRecommender,
    Recommender,
    default_recommenders,
)

__all__ = [
    "EVENT_WEIGHTS", "AdServerRecommender", "Event", "ItemKNNRecommender", "PopularRecommender", "Recommender",
    "default_recommenders", "evaluate", "format_table", "parse_ts", "rank_metrics", "read_events_csv",
]

METRICS = ("HR@10", "HR@20", "MRR@20", "NDCG@10")
COLUMNS = (*METRICS, "coverage")
HOLDOUT_SHARE = 0.1


def rank_metrics(rank: int | None) -> dict[str, float]:
    """Metrics of one prediction from the 1-based rank of the true item in the list (None: not in it)."""
    if rank is None:
        return dict.fromkeys(METRICS, 0.0)
    return {
        "HR@10": 1.0 if rank <= 10 else 0.0,
        "HR@20": 1.0 if rank <= 20 else 0.0,
        "MRR@20": 1.0 / rank if rank <= 20 else 0.0,
        "NDCG@10": 1.0 / math.log2(rank + 1) if rank <= 10 else 0.0,
    }


def evaluate(events: Sequence[Event], split_at: float | None = None, k: int = 20,
             recommenders: dict[str, Recommender] | None = None,
             progress: Callable[[int, int], object] | None = None) -> dict:
    """Replay ``events`` and score each recommender (default: adserver, popular, item_knn).

    Events are sorted by time (stable: equal times keep their order, as the lines of one order do). Those
    before ``split_at`` (default: the start of the last 10% of the time range) train every recommender;
    each later event whose visitor already has a history is a prediction: the recommender is asked for
    ``k`` items (20: the metric names assume it) and scored on where the event's item is (HR@10, HR@20,
    MRR@20, NDCG@10); the event then joins the visitor's history whether or not it was scored. Coverage:
    distinct items ever recommended / distinct items in the whole log. ``progress(done, total)`` is called as
    held-out events are replayed.

    Events with the same timestamp are simultaneous: each is predicted from the history strictly before
    that instant, and they all join the history together. Without this rule the lines of one order (which
    share the order's timestamp) would be predicted from each other in file order, turning the replay into
    basket completion, which is not what an ad shown between two visits does.
    """
    if not events:
        raise ValueError("no events to evaluate")
    ordered = sorted(events, key=lambda e: e.ts)
    first, last = ordered[0].ts, ordered[-1].ts
    split = first + (1.0 - HOLDOUT_SHARE) * (last - first) if split_at is None else float(split_at)
    cut = next((n for n, e in enumerate(ordered) if e.ts >= split), len(ordered))
    train, test = ordered[:cut], ordered[cut:]
    if not train:
        raise ValueError(f"no events before the split ({split})")
    recommenders = default_recommenders() if recommenders is None else recommenders
    for recommender in recommenders.values():
        recommender.fit(train)

    histories: dict[str, list[str]] = {}
    for e in train:
        histories.setdefault(e.visitor, []).append(e.item)
    sums = {name: dict.fromkeys(METRICS, 0.0) for name in recommenders}
    shown: dict[str, set[str]] = {name: set() for name in recommenders}
    predictions = 0
    pending: list[Event] = []  # events at the current instant, not yet history
    for done, e in enumerate(test, 1):
        if pending and e.ts > pending[0].ts:
            for p in pending:
                histories.setdefault(p.visitor, []).append(p.item)
            pending.clear()
        history = histories.get(e.visitor)
        if history:
            predictions += 1
            for name, recommender in recommenders.items():
                items = recommender.recommend(history, k)[:k]
                shown[name].update(items)
                rank = items.index(e.item) + 1 if e.item in items else None
                for metric, value in rank_metrics(rank).items():
                    sums[name][metric] += value
        pending.append(e)
        if progress is not None and (done % 500 == 0 or done == len(test)):
            progress(done, len(test))

    catalogue = len({e.item for e in ordered})
    methods = {}
    for name in recommenders:
        row = {metric: round(sums[name][metric] / predictions, 4) if predictions else 0.0 for metric in METRICS}
        row["coverage"] = round(len(shown[name]) / catalogue, 4)
        methods[name] = row
    return {"methods": methods, "predictions": predictions, "split_at": round(split, 4),
            "train_events": len(train), "test_events": len(test)}


def format_table(result: dict) -> str:
    """The methods of an ``evaluate`` result as a plain-text table, one row per method."""
    methods = result["methods"]
    width = max([len("method"), *(len(name) for name in methods)])
    lines = [f"{'method':<{width}}" + "".join(f"{c:>10}" for c in COLUMNS)]
    for name, row in methods.items():
        lines.append(f"{name:<{width}}" + "".join(f"{row[c]:>10.4f}" for c in COLUMNS))
    return "\n".join(lines)
