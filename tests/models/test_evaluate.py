"""Offline evaluation: metrics computed by hand on a tiny log, the replay rules, and the recommenders."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from models.evaluate import (
    AdServerRecommender,
    Event,
    ItemKNNRecommender,
    PopularRecommender,
    evaluate,
    format_table,
    rank_metrics,
)

ITEMS = [f"I{r:02d}" for r in range(1, 13)]  # I01 … I12


class ReversedHistory:
    """Recommends the visitor's own distinct items, newest first: shows exactly what history it was given."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def fit(self, train: Sequence[Event]) -> None:
        pass

    def recommend(self, history: Sequence[str], n: int) -> list[str]:
        self.asked.append(list(history))
        return list(dict.fromkeys(reversed(history)))[:n]


def tiny_log() -> list[Event]:
    """Training (ts < 1000): item I<r> is viewed 13 - r times in all, so the popular list is I01, I02, …, I12
    and the rank of I<r> in it is r. u1 viewed I07 and u2 viewed I08 during training; u3 has no history."""
    train = [Event("u1", "I07", 1.0), Event("u2", "I08", 2.0)]
    for r, item in enumerate(ITEMS, 1):
        own = 1 if item in ("I07", "I08") else 0
        train += [Event("filler", item, 10.0 + r)] * (13 - r - own)
    test = [
        Event("u1", "I01", 1000.0),  # popular: rank 1            reversed history [I07]: miss
        Event("u2", "I12", 1001.0),  # popular: rank 12           [I08]: miss
        Event("u3", "I03", 1002.0),  # no history yet: not scored, becomes u3's history
        Event("u3", "I05", 1003.0),  # popular: rank 5            [I03]: miss
        Event("u1", "NEW", 1004.0),  # never seen in training: a miss for both
        Event("u1", "I07", 1005.0),  # popular: rank 7            [NEW, I01, I07]: rank 3
    ]
    return train + test


def test_metrics_computed_by_hand():
    fake = ReversedHistory()
    result = evaluate(tiny_log(), split_at=1000.0, recommenders={"popular": PopularRecommender(), "recent": fake})
    # Five predictions (u3's first event has no history). Popular ranks: 1, 12, 5, miss, 7.
    #   HR@10   = (1 + 0 + 1 + 0 + 1) / 5                              = 0.6
    #   HR@20   = (1 + 1 + 1 + 0 + 1) / 5                              = 0.8
    #   MRR@20  = (1/1 + 1/12 + 1/5 + 0 + 1/7) / 5 = 1.42619 / 5        = 0.2852
    #   NDCG@10 = (1/log2(2) + 0 + 1/log2(6) + 0 + 1/log2(8)) / 5
    #           = (1 + 0.386853 + 0.333333) / 5 = 1.720186 / 5         = 0.3440
    #   coverage: it always shows the 12 training items; the log has 13 items (with NEW): 12/13 = 0.9231
    assert result["methods"]["popular"] == {"HR@10": 0.6, "HR@20": 0.8, "MRR@20": 0.2852, "NDCG@10": 0.3440,
                                            "coverage": 0.9231}
    # Reversed history hits once, at rank 3 (u1's last event): HR = 1/5, MRR = (1/3)/5 = 0.0667,
    # NDCG@10 = (1/log2(4))/5 = 0.5/5 = 0.1; it showed I07, I08, I03, I01, NEW: coverage 5/13 = 0.3846.
    assert result["methods"]["recent"] == {"HR@10": 0.2, "HR@20": 0.2, "MRR@20": 0.0667, "NDCG@10": 0.1,
                                           "coverage": 0.3846}
    assert result["predictions"] == 5
    assert result["train_events"] == 2 + sum(13 - r for r in range(1, 13)) - 2 and result["test_events"] == 6
    assert result["split_at"] == 1000.0
    # Held-out events became history as they were replayed (the model itself was not refitted).
    assert fake.asked == [["I07"], ["I08"], ["I03"], ["I07", "I01"], ["I07", "I01", "NEW"]]


def test_rank_metrics():
    assert rank_metrics(1) == {"HR@10": 1.0, "HR@20": 1.0, "MRR@20": 1.0, "NDCG@10": 1.0}
    assert rank_metrics(3)["NDCG@10"] == pytest.approx(0.5)
    assert rank_metrics(11) == {"HR@10": 0.0, "HR@20": 1.0, "MRR@20": pytest.approx(1 / 11), "NDCG@10": 0.0}
    assert rank_metrics(21) == rank_metrics(None) == dict.fromkeys(("HR@10", "HR@20", "MRR@20", "NDCG@10"), 0.0)


def test_events_at_the_same_instant_are_simultaneous():
    # u4's order of two lines at t=2000 is predicted from what u4 did before 2000: nothing, so neither line
    # is scored; the t=2001 event sees both lines as history.
    events = [Event("u0", "a", 0.0), Event("u4", "x", 2000.0), Event("u4", "y", 2000.0), Event("u4", "z", 2001.0)]
    fake = ReversedHistory()
    result = evaluate(events, split_at=1000.0, recommenders={"r": fake})
    assert result["predictions"] == 1 and fake.asked == [["x", "y"]]


def test_default_split_holds_out_the_last_tenth_of_the_time_range():
    events = [Event(f"v{n % 3}", f"i{n % 5}", float(t)) for n, t in enumerate(range(0, 101, 5))]
    calls: list[tuple[int, int]] = []
    result = evaluate(events, recommenders={"r": ReversedHistory()}, progress=lambda d, t: calls.append((d, t)))
    assert result["split_at"] == 90.0
    assert result["train_events"] == 18 and result["test_events"] == 3  # ts 90, 95, 100 are held out
    assert calls[-1] == (3, 3)


def test_result_shape_with_the_default_recommenders():
    result = evaluate(tiny_log(), split_at=1000.0)
    assert list(result) == ["methods", "predictions", "split_at", "train_events", "test_events"]
    assert list(result["methods"]) == ["adserver", "popular", "item_knn"]
    for row in result["methods"].values():
        assert list(row) == ["HR@10", "HR@20", "MRR@20", "NDCG@10", "coverage"]
        assert all(0.0 <= v <= 1.0 for v in row.values())


def test_evaluate_refuses_logs_it_cannot_split():
    with pytest.raises(ValueError, match="no events"):
        evaluate([])
    with pytest.raises(ValueError, match="before the split"):
        evaluate([Event("u", "a", 5.0)], split_at=1.0)


def test_format_table():
    table = format_table({"methods": {"adserver": {"HR@10": 0.25, "HR@20": 0.3, "MRR@20": 0.1, "NDCG@10": 0.125,
                                                   "coverage": 0.9}, "popular": dict.fromkeys(
        ("HR@10", "HR@20", "MRR@20", "NDCG@10", "coverage"), 0.0)}})
    lines = table.splitlines()
    assert lines[0].split() == ["method", "HR@10", "HR@20", "MRR@20", "NDCG@10", "coverage"]
    assert lines[1].split() == ["adserver", "0.2500", "0.3000", "0.1000", "0.1250", "0.9000"]
    assert lines[2].split()[0] == "popular" and len(lines) == 3


def session_log() -> list[Event]:
    """Ten visitors look at tea a then b; five look at c then d; everyone also looks at the best-seller p."""
    events = []
    for v in range(10):
        events += [Event(f"t{v}", "a", v * 10_000.0, title="Longjing green tea 龙井绿茶"),
                   Event(f"t{v}", "b", v * 10_000.0 + 60, title="Biluochun green tea 碧螺春绿茶"),
                   Event(f"t{v}", "p", v * 10_000.0 + 120, "purchase", title="Gift card")]
    for v in range(5):
        events += [Event(f"c{v}", "c", v * 10_000.0 + 5, title="Running shoes"),
                   Event(f"c{v}", "d", v * 10_000.0 + 65, title="Running socks"),
                   Event(f"c{v}", "p", v * 10_000.0 + 125, "purchase", title="Gift card")]
    events.append(Event("x", "e", 1.0, title="Jasmine green tea 茉莉绿茶"))  # seen once: nearly cold
    return events


def test_adserver_recommender_order_recent_then_similar_then_popular():
    rec = AdServerRecommender(recent_slots=2)
    rec.fit(session_log())
    assert rec.ranked == ["p", "b", "a", "d", "c", "e"]  # popularity: purchases of p weigh 5
    # Recent distinct items, newest first: p, a, c; two of them lead. Then the neighbours of p, a, c
    # (weights 1, 1/2, 1/3) the visitor has not seen: b is both p's and a's close neighbour.
    assert rec.recommend(["c", "a", "a", "p"], 5) == ["p", "a", "b", "d", "e"]
    # With a slot left after the similar items, the third recent item takes it, listed with the recent ones.
    assert rec.recommend(["c", "a", "a", "p"], 6) == ["p", "a", "c", "b", "d", "e"]
    # By default at most half of the unit goes to recent items, as in a served ad.
    default = AdServerRecommender()
    default.fit(session_log())
    assert default.recommend(["c", "a", "a", "p"], 4) == ["p", "a", "b", "d"]
    # With one recent slot, c's session partner d comes before the more popular p, b and a.
    assert rec.recommend(["c"], 3)[:2] == ["c", "d"]
    no_recent = AdServerRecommender(recent_slots=0)
    no_recent.fit(session_log())
    assert no_recent.recommend(["c"], 1) == ["d"]  # without recent slots, similar items lead


def test_adserver_recommender_uses_content_for_cold_items():
    rec = AdServerRecommender(recent_slots=1)
    rec.fit(session_log())
    # e (jasmine tea) was seen in a single-item session: its neighbours come from its title (the green teas).
    out = rec.recommend(["e"], 3)
    assert out[0] == "e" and set(out[1:3]) == {"a", "b"}


def test_adserver_recommender_with_unknown_history_falls_back_to_popular():
    rec = AdServerRecommender(recent_slots=1)
    rec.fit(session_log())
    assert rec.recommend(["unknown"], 3) == ["unknown", "p", "b"]


def test_item_knn_sums_similarities_over_the_history():
    knn = ItemKNNRecommender(exclude_history=True)
    knn.fit(session_log())
    assert knn.recommend(["a"], 2) == ["b", "p"]  # b: cosine 1 with a; p: 10/sqrt(10·15) = 0.82
    assert knn.recommend(["c", "a"], 3)[:2] == ["p", "b"]  # p sums 0.82 (a) + 0.58 (c) = 1.39 > b's 1.0
    assert knn.recommend(["zzz"], 2) == ["p", "a"]  # nothing known: most viewed items
    keep = ItemKNNRecommender(exclude_history=False)
    keep.fit(session_log())
    # Without the exclusion, history items compete too: a and b name each other (1.0 each, a tie that goes
    # to a, first seen), behind p (0.82 from each of a and b).
    assert keep.recommend(["a", "b"], 3) == ["p", "a", "b"]


def test_item_knn_is_binary_repeats_do_not_count():
    knn = ItemKNNRecommender()
    # t0 (who saw a) looks at c twenty times: one shared visitor, however many views.
    knn.fit(session_log() + [Event("t0", "c", 50.0 + n) for n in range(20)])
    a, c = knn.index["a"], knn.index["c"]
    similarity = dict(zip(knn.nb[c].tolist(), knn.sc[c].tolist(), strict=True))[a]
    # Binary: 1 shared visitor / sqrt(10 visitors of a · 6 visitors of c) = 0.129. With view counts it would
    # be 20 / sqrt(10 · (20² + 5)) = 0.314.
    assert similarity == pytest.approx(1 / (10 * 6) ** 0.5)
    assert knn.recommend(["a"], 3) == ["b", "p", "c"]
