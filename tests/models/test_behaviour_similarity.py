"""Behavioural similarity on hand-made sessions: pairs, best-seller normalisation, session cuts, recency."""

from __future__ import annotations

import numpy as np
import pytest

from models import similarity
from models.similarity import behaviour_neighbors

DAY = 86_400.0


class Log:
    """Builds event arrays session by session: each session gets a fresh visitor unless one is given."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float, float]] = []
        self.next_visitor = 0

    def session(self, items: list[int], start: float = 0.0, visitor: int | None = None, step: float = 60.0,
                weight: float = 1.0) -> None:
        if visitor is None:
            visitor, self.next_visitor = self.next_visitor, self.next_visitor + 1
        for n, item in enumerate(items):
            self.rows.append((visitor, item, start + n * step, weight))

    def arrays(self):
        v, i, t, w = zip(*self.rows, strict=True)
        return np.array(v), np.array(i), np.array(t, dtype=float), np.array(w, dtype=float)


def test_items_always_viewed_together_are_each_others_top_neighbour():
    log = Log()
    for _ in range(5):
        log.session([0, 1])
        log.session([2, 3])
    log.session([1, 2])  # one crossing, weaker than the pairs
    neighbors, scores, support = behaviour_neighbors(*log.arrays(), n_items=5, k=3)
    assert neighbors[0, 0] == 1 and neighbors[1, 0] == 0
    assert neighbors[2, 0] == 3 and neighbors[3, 0] == 2
    assert neighbors[4].tolist() == [-1, -1, -1]  # never seen
    assert support.tolist() == [5, 6, 6, 5, 0]
    assert neighbors.dtype == np.int32 and scores.dtype == np.float32 and support.dtype == np.int32
    assert (np.diff(scores, axis=1) <= 0).all()


def test_best_seller_is_not_everyones_top_neighbour():
    # Item 4 is in every session: it co-occurs with item 0 more often (50 sessions) than item 1 does (30),
    # so raw co-occurrence counts would rank it first for item 0. Cosine divides by item 4's large mass.
    log = Log()
    for _ in range(30):
        log.session([0, 1, 4])
        log.session([2, 3, 4])
    for _ in range(20):
        log.session([0, 4])
        log.session([1, 4])
        log.session([2, 4])
        log.session([3, 4])
    for other in range(5, 105):
        log.session([4, other])
    v, i, t, w = log.arrays()
    # The scenario really is one where counting alone gets it wrong (each session has its own visitor).
    sessions_of = {item: set(v[i == item].tolist()) for item in (0, 1, 4)}
    assert len(sessions_of[0] & sessions_of[4]) == 50 > len(sessions_of[0] & sessions_of[1]) == 30
    neighbors, _, support = behaviour_neighbors(v, i, t, w, n_items=105, k=3)
    assert support[4] == 240 and support[0] == 50
    assert neighbors[0, 0] == 1 and neighbors[1, 0] == 0
    assert neighbors[2, 0] == 3 and neighbors[3, 0] == 2


def test_session_gap_splits_a_visitors_events():
    # One visitor: A at 0 s, B at 1000 s (same session), C at 1000 + 3600 s (a new session).
    v, i, t, w = np.zeros(3, int), np.array([0, 1, 2]), np.array([0.0, 1000.0, 4600.0]), np.ones(3)
    neighbors, _, support = behaviour_neighbors(v, i, t, w, n_items=3, k=2)
    assert neighbors[0].tolist() == [1, -1] and neighbors[2].tolist() == [-1, -1]
    assert support.tolist() == [1, 1, 1]
    neighbors, _, support = behaviour_neighbors(v, i, t, w, n_items=3, k=2, session_gap=5000.0)
    assert neighbors[2, 0] in (0, 1) and support.tolist() == [1, 1, 1]
    assert set(neighbors[2].tolist()) == {0, 1}


def test_sessions_never_span_two_visitors():
    v, i, t, w = np.array([0, 1]), np.array([0, 1]), np.array([0.0, 1.0]), np.ones(2)
    neighbors, _, _ = behaviour_neighbors(v, i, t, w, n_items=2, k=1)
    assert neighbors.tolist() == [[-1], [-1]]


def test_old_cooccurrence_scores_lower_than_a_recent_one():
    # Item 0 met item 1 in a session 90 days ago and item 2 in a session today: same weights, same counts.
    # Without recency they would tie (and the tie would go to the lower index, 1).
    now = 1_700_000_000.0
    log = Log()
    log.session([0, 1], start=now - 90 * DAY)
    log.session([0, 2], start=now - 120)
    neighbors, scores, _ = behaviour_neighbors(*log.arrays(), n_items=3, k=2, now=now)
    assert neighbors[0].tolist() == [2, 1]
    assert scores[0, 0] > 2 * scores[0, 1]
    # With a very long half-life the two co-occurrences are worth the same again.
    neighbors, scores, _ = behaviour_neighbors(*log.arrays(), n_items=3, k=2, now=now, half_life_days=1e9)
    assert scores[0, 0] == pytest.approx(scores[0, 1], rel=1e-4)


def test_stronger_events_count_more():
    log = Log()
    log.session([0, 1])
    log.session([0, 2], weight=5.0)  # a purchase session
    neighbors, _, _ = behaviour_neighbors(*log.arrays(), n_items=3, k=2)
    assert neighbors[0].tolist() == [2, 1]


def test_repeated_views_in_a_session_count_once():
    log = Log()
    log.session([0, 1, 1, 1, 1])
    log.session([0, 2])
    once = Log()
    once.session([0, 1])
    once.session([0, 2])
    repeated = behaviour_neighbors(*log.arrays(), n_items=3, k=2)
    single = behaviour_neighbors(*once.arrays(), n_items=3, k=2)
    np.testing.assert_allclose(repeated[1], single[1], rtol=1e-4)


def test_long_sessions_keep_their_most_recent_items(monkeypatch):
    monkeypatch.setattr(similarity, "MAX_SESSION_ITEMS", 2)
    log = Log()
    log.session([0, 1, 2])  # item 0 is the oldest: dropped from this session
    neighbors, _, support = behaviour_neighbors(*log.arrays(), n_items=3, k=2)
    assert support.tolist() == [0, 1, 1]
    assert neighbors[0].tolist() == [-1, -1] and neighbors[1, 0] == 2


def test_chunked_rows_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    v, i = rng.integers(0, 30, 400), rng.integers(0, 25, 400)
    t, w = np.sort(rng.uniform(0, 30 * DAY, 400)), rng.choice([1.0, 3.0, 5.0], 400)
    whole = behaviour_neighbors(v, i, t, w, n_items=25, k=5)
    monkeypatch.setattr(similarity, "CHUNK_ROWS", 4)
    chunked = behaviour_neighbors(v, i, t, w, n_items=25, k=5)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)


def test_empty_and_invalid_input():
    empty = np.zeros(0)
    neighbors, scores, support = behaviour_neighbors(empty, empty, empty, empty, n_items=4, k=3)
    assert (neighbors == -1).all() and neighbors.shape == (4, 3) and (support == 0).all()
    with pytest.raises(ValueError, match="same length"):
        behaviour_neighbors(np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3), n_items=4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        behaviour_neighbors(np.zeros(1), np.array([4]), np.zeros(1), np.ones(1), n_items=4)
