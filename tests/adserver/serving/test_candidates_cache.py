"""Similar candidates and a model's popular products, remembered per model object: the same answers as
computing them, nothing carried over to a retrained model."""

from __future__ import annotations

import gc

import numpy as np

from adserver.serving.candidates_cache import CandidatesCache
from models.artifact import Artifact
from models.policy import similar_candidates


def artifact(version: str, items: list[str], neighbours: list[list[int]], popular: list[int]) -> Artifact:
    width = max(len(row) for row in neighbours)
    rows = np.full((len(items), width), -1, dtype=np.int32)
    for i, row in enumerate(neighbours):
        rows[i, :len(row)] = row
    scores = np.where(rows >= 0, 1.0 - np.arange(width, dtype=np.float32) / 10, 0.0).astype(np.float32)
    return Artifact(version, np.array(items), rows, scores, np.array(popular, dtype=np.int32))


def test_answers_are_those_of_the_policy_and_computed_once_per_view_set():
    model = artifact("v1", ["A", "B", "C", "D"], [[1, 2], [2, 3], [0], [0, 1]], [3, 2])
    cache = CandidatesCache()
    asked = (["A", "B"], ["B"], ["A", "B"], ["D", "C", "B", "A"], ["D", "C", "B", "C"], ["A", "B"])
    expected = [similar_candidates(model, views) for views in asked]
    calls = []
    similar = model.similar
    model.similar = lambda item, n: calls.append(item) or similar(item, n)
    assert [list(cache.similar(model, views)) for views in asked] == expected
    # Three view sets: only the latest three views seed candidates, so the fourth view makes no new one
    assert calls == ["A", "B", "B", "D", "C", "B"]
    assert cache.similar(None, ["A"]) == () and cache.similar(model, []) == ()


def test_a_retrained_model_is_never_answered_from_the_previous_ones_entries():
    cache = CandidatesCache()
    old = artifact("same-name", ["A", "B", "C"], [[1], [0], [0]], [0])
    new = artifact("same-name", ["A", "B", "C"], [[2], [0], [0]], [2])
    assert [item for item, _ in cache.similar(old, ["A"])] == ["B"]
    assert [item for item, _ in cache.similar(new, ["A"])] == ["C"]
    assert list(cache.popular(old, ["B"])) == ["B", "A"] and list(cache.popular(new, ["B"])) == ["B", "C"]
    del old
    gc.collect()
    assert len(cache._models) == 1  # a model no longer served takes its entries with it


def test_the_lru_keeps_its_bound_and_the_views_asked_recently():
    model = artifact("v1", [f"S{i}" for i in range(10)], [[(i + 1) % 10] for i in range(10)], [0])
    cache = CandidatesCache(views_max=3)
    for i in range(3):
        cache.similar(model, [f"S{i}"])
    cache.similar(model, ["S0"])  # S0 used again: S1 is now the least recent
    cache.similar(model, ["S5"])
    kept = cache._entries(model).similar
    assert len(kept) == 3 and ("S1",) not in kept and ("S0",) in kept


def test_popular_merges_live_popularity_first_and_redoes_it_only_for_a_new_list():
    model = artifact("v1", ["A", "B", "C"], [[1], [2], [0]], [2, 0, 1])
    cache = CandidatesCache()
    live = ["B", "X"]
    merged = cache.popular(model, live)
    assert list(merged) == ["B", "X", "C", "A"]
    assert cache.popular(model, live) is merged
    assert list(cache.popular(model, ["A"])) == ["A", "C", "B"]
    assert cache.popular(None, live) is live
