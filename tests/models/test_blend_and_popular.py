"""Blend (cold start, support-weighted mixing) and the popularity ranking."""

from __future__ import annotations

import numpy as np
import pytest

from models.similarity import blend, popular_items

DAY = 86_400.0


def lists(rows: list[list[tuple[int, float]]], k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    neighbors, scores = np.full((len(rows), k), -1, np.int32), np.zeros((len(rows), k), np.float32)
    for r, row in enumerate(rows):
        for c, (j, s) in enumerate(row):
            neighbors[r, c], scores[r, c] = j, s
    return neighbors, scores


# Five items. Content says 0 ~ 1, 2; behaviour (from sessions) says 0 ~ 3, 4.
CONTENT = lists([[(1, 0.9), (2, 0.5)], [(0, 0.9)], [(0, 0.5)], [], []])
BEHAVIOUR = lists([[(3, 0.02), (4, 0.01)], [], [], [(0, 0.02)], [(0, 0.01)]])


def test_cold_item_gets_its_content_neighbours():
    support = np.array([0, 0, 0, 4, 4])
    neighbors, scores = blend(CONTENT, BEHAVIOUR, support, k=3)
    # Item 0 has no session support: its list is exactly its content list (scores scaled to row max 1).
    assert neighbors[0].tolist() == [1, 2, -1]
    assert scores[0].tolist() == pytest.approx([1.0, 0.5 / 0.9, 0.0])


def test_well_supported_item_leads_with_behaviour():
    support = np.array([100, 0, 0, 4, 4])
    neighbors, scores = blend(CONTENT, BEHAVIOUR, support, k=4)
    # alpha = 100 / 105: behavioural neighbours (scaled 1.0, 0.5) outweigh content ones (1.0, 0.56) x 0.05.
    assert neighbors[0].tolist() == [3, 4, 1, 2]
    assert scores[0, 0] == pytest.approx(100 / 105)
    # Both sources' raw scales differ by 50x; row-max scaling is what lets behaviour win here.
    assert (np.diff(scores, axis=1) <= 0).all()


def test_alpha_moves_with_support():
    low = blend(CONTENT, BEHAVIOUR, np.array([2, 0, 0, 0, 0]), k=4)  # alpha = 2/7: content first
    high = blend(CONTENT, BEHAVIOUR, np.array([20, 0, 0, 0, 0]), k=4)  # alpha = 0.8: behaviour first
    assert low[0][0, 0] == 1 and high[0][0, 0] == 3


def test_neighbour_named_by_both_sources_sums_its_evidence():
    content = lists([[(1, 0.8), (2, 0.7)], [], []])
    behaviour = lists([[(2, 0.3), (1, 0.1)], [], []])
    neighbors, scores = blend(content, behaviour, np.array([5, 0, 0]), k=3)  # alpha = 0.5
    # item 1: 0.5*1 + 0.5*(0.1/0.3) = 0.667; item 2: 0.5*(0.7/0.8) + 0.5*1 = 0.9375
    assert neighbors[0].tolist() == [2, 1, -1]
    assert scores[0, :2].tolist() == pytest.approx([0.9375, 2 / 3], rel=1e-5)


def test_blend_validates_shapes():
    with pytest.raises(ValueError, match="differ"):
        blend(CONTENT, BEHAVIOUR, np.zeros(4), k=3)
    with pytest.raises(ValueError, match="same shape"):
        blend((CONTENT[0], CONTENT[1][:, :2]), BEHAVIOUR, np.zeros(5), k=3)


def test_popular_orders_by_decayed_weighted_count():
    now = 1_700_000_000.0
    items = np.array([0, 0, 0, 1, 2, 2])
    ts = np.array([now - 30 * DAY] * 3 + [now, now, now])  # item 0: three views a month ago
    weights = np.array([1, 1, 1, 1, 1, 1], dtype=float)
    order = popular_items(items, ts, weights, n_items=5, now=now)
    # item 2: 2.0; item 1: 1.0; item 0: 3 x 2^(-30/7) = 0.154; items 3, 4 never seen: left out.
    assert order.tolist() == [2, 1, 0] and order.dtype == np.int32
    weighted = popular_items(items, ts, np.array([1, 1, 1, 5, 1, 1.0]), n_items=5, now=now)
    assert weighted.tolist() == [1, 2, 0]  # one purchase (5) beats two views
    assert popular_items(items, ts, weights, n_items=5, now=now, half_life_days=1e6).tolist() == [0, 2, 1]


def test_popular_default_now_is_the_latest_event_and_empty_input():
    items, ts = np.array([0, 1, 1]), np.array([0.0, 10.0 * DAY, 10.0 * DAY])
    assert popular_items(items, ts, np.ones(3), n_items=2).tolist() == [1, 0]
    assert popular_items(np.zeros(0), np.zeros(0), np.zeros(0), n_items=3).tolist() == []
