"""The ranking policy of an ad unit, and the offline recommender that evaluates exactly that policy."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.artifact import load_current, save_artifact
from models.events_csv import Event
from models.policy import PER_SOURCE, SIMILAR_SOURCES, Pick, choose, rank, similar_candidates
from models.recommenders import AdServerRecommender


class Table:
    """A similarity model given as a table: item -> [(neighbour, score)], best first."""

    def __init__(self, table: dict[str, list[tuple[str, float]]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    def similar(self, item_id: str, n: int) -> list[tuple[str, float]]:
        self.asked.append((item_id, n))
        return self.table.get(item_id, [])[:n]


def items(picks: list[Pick]) -> list[tuple[str, str]]:
    return [(p.item, p.reason) for p in picks]


def test_similar_candidates_weight_the_latest_views_most():
    model = Table({"V1": [("X", 1.0), ("Y", 0.5)], "V2": [("Y", 0.9), ("Z", 0.8)], "V4": [("W", 9.0)]})
    # Y: 0.5 (from V1, weight 1) + 0.45 (V2, weight 1/2) = 0.95 < X's 1.0; its source is V1 (0.5 > 0.45).
    # Z: 0.4. V4 is the fourth view: only the latest three seed similar items.
    assert similar_candidates(model, ["V1", "V2", "V3", "V4"]) == [("X", "V1"), ("Y", "V1"), ("Z", "V2")]
    assert model.asked == [("V1", PER_SOURCE), ("V2", PER_SOURCE), ("V3", PER_SOURCE)] and SIMILAR_SOURCES == 3
    assert similar_candidates(None, ["V1"]) == [] and similar_candidates(model, []) == []


def test_similar_candidates_break_ties_by_item_id_and_survive_zero_scores():
    model = Table({"V": [("B", 0.5), ("A", 0.5), ("C", 0.0)]})
    assert similar_candidates(model, ["V"]) == [("A", "V"), ("B", "V"), ("C", "V")]


def test_recent_take_at_most_half_of_the_unit_while_similar_items_exist():
    similar = [("S1", "R1"), ("S2", "R2")]
    assert items(rank(["R1", "R2", "R3"], similar, ["P1"], 4)) == [
        ("R1", "recent"), ("R2", "recent"), ("S1", "similar"), ("S2", "similar")]
    # Odd units round down, but one recent item always leads.
    assert items(rank(["R1", "R2"], similar, [], 3)) == [("R1", "recent"), ("S1", "similar"), ("S2", "similar")]
    assert items(rank(["R1", "R2"], similar, [], 1)) == [("R1", "recent")]
    # Without similar items the recent ones may fill the unit.
    assert items(rank(["R1", "R2", "R3"], [], ["P1"], 4)) == [
        ("R1", "recent"), ("R2", "recent"), ("R3", "recent"), ("P1", "popular")]


def test_recent_past_the_cap_fill_up_in_front_of_the_similar_ones():
    picks = rank(["R1", "R2", "R3"], [("S1", "R1")], ["P1", "P2"], 5)
    # R1 (cap: 2), R2, S1, then R3 before any popular item; the unit lists recent, similar, popular.
    assert items(picks) == [("R1", "recent"), ("R2", "recent"), ("R3", "recent"), ("S1", "similar"),
                            ("P1", "popular")]
    assert picks[3] == Pick("S1", "similar", "R1")


def test_no_item_twice_and_viewed_items_are_never_similar():
    picks = rank(["R1", "R2"], [("R2", "R1"), ("S1", "R1"), ("S1", "R2")], ["S1", "R1", "P1", "P1", "P2"], 6)
    assert items(picks) == [("R1", "recent"), ("R2", "recent"), ("S1", "similar"), ("P1", "popular"),
                            ("P2", "popular")]


def test_the_key_hook_filters_and_deduplicates():
    groups = {"R1": "g", "R2": "g", "S1": "s", "S2": None, "P1": "s", "P2": "p"}  # None: may not be shown
    picks = rank(["R1", "R2"], [("S1", "R1"), ("S2", "R1")], ["P1", "P2", "P3"], 4, key=groups.get)
    # R2 shares R1's group, S2 may not be shown, P1 shares S1's key, P3 has none.
    assert items(picks) == [("R1", "recent"), ("S1", "similar"), ("P2", "popular")]


def test_popular_items_are_read_only_as_far_as_needed():
    read: list[str] = []

    def endless() -> Iterator[str]:
        for n in itertools.count():
            read.append(f"P{n}")
            yield f"P{n}"

    assert [p.item for p in rank(["R1"], [], endless(), 3)] == ["R1", "P0", "P1"]
    assert read == ["P0", "P1"]


def test_recent_cap_overrides_half_of_the_unit():
    similar = [("S1", "R1"), ("S2", "R1"), ("S3", "R1")]
    assert [p.item for p in rank(["R1", "R2"], similar, [], 3, recent_cap=0)] == ["S1", "S2", "S3"]
    assert [p.item for p in rank(["R1", "R2", "R3"], similar, [], 4, recent_cap=3)] == ["R1", "R2", "R3", "S1"]


def shop_log() -> list[Event]:
    """Sessions over twelve products in three families (tea, shoes, cups) with some cross-visits, titles
    for content similarity, purchases weighing on popularity, and one visitor with a long history."""
    families = {"tea": ["T1", "T2", "T3", "T4"], "shoe": ["S1", "S2", "S3", "S4"], "cup": ["C1", "C2", "C3", "C4"]}
    titles = {sku: f"{family} {sku} {'green' if sku.endswith(('1', '2')) else 'plain'}"
              for family, skus in families.items() for sku in skus}
    events: list[Event] = []
    t = 0.0
    for v in range(30):
        family = list(families.values())[v % 3]
        for step in range(2 + v % 3):
            sku = family[(v + step * (1 + v % 2)) % 4]
            t += 60
            events.append(Event(f"v{v}", sku, t, "purchase" if step == 2 and v % 4 == 0 else "view_item",
                                title=titles[sku]))
        if v % 5 == 0:  # a cross-visit links the families
            t += 60
            events.append(Event(f"v{v}", f"C{1 + v % 4}", t, title=titles[f"C{1 + v % 4}"]))
        t += 10_000
    return events


HISTORIES = [
    ["T1"],
    ["S2", "S1", "T3"],
    ["C4", "C4", "T2", "S3", "C1"],
    ["T1", "T2", "T3", "T4", "S1", "S2", "S3", "S4", "C1", "C2", "C3", "C4"],  # more recent items than half a unit
    ["unknown", "T1"],
    [],
]


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize("n", [1, 4, 6, 12])
def test_evaluation_ranks_with_the_policy_on_the_served_model(tmp_path: Path, history: list[str], n: int):
    """``evaluate``'s adserver method is the policy on the model as serving loads it (saved and read back)."""
    rec = AdServerRecommender()
    rec.fit(shop_log())
    save_artifact(tmp_path, rec.model)
    served = load_current(tmp_path)
    recent = list(dict.fromkeys(reversed(history)))
    expected = [p.item for p in choose(recent, served, served.popular_ids(len(served.items)), n)]
    assert rec.recommend(history, n) == expected
    assert len(expected) == min(n, len(set(history) | set(rec.ranked)))


def test_adserver_recommender_reads_as_many_recent_items_as_an_ad():
    rec = AdServerRecommender()
    rec.fit(shop_log())
    history = [f"X{n}" for n in range(30)]
    assert rec.profile(history) == [f"X{n}" for n in range(29, 9, -1)]
    assert rec.recommend(history, 20) == rec.profile(history)  # nothing known to the model: all recent
