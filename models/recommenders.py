"""The recommenders compared by offline evaluation, behind one protocol: ``fit(train)`` once, then
``recommend(history, n)`` for a visitor whose items so far (oldest first) are ``history``.

- ``AdServerRecommender``: what the ad server does (``models/policy.py``: recently seen items, then blended
  neighbours of the last few, then popular), on a model built by the same functions as the training job.
- ``PopularRecommender`` and ``ItemKNNRecommender``: the two baselines it has to beat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from models.artifact import Artifact
from models.events_csv import EVENT_WEIGHTS, Event
from models.policy import choose
from models.similarity import behaviour_neighbors, blend, content_neighbors, popular_items
from models.topk import top_k_block

CHUNK_ROWS = 2000


class Recommender(Protocol):
    def fit(self, train: Sequence[Event]) -> None: ...

    def recommend(self, history: Sequence[str], n: int) -> list[str]: ...


@dataclass
class EventArrays:
    """Training events as arrays over a dense item index (the shape the models want)."""

    item_ids: list[str]
    index: dict[str, int]
    visitors: np.ndarray
    items: np.ndarray
    ts: np.ndarray
    weights: np.ndarray
    titles: list[str]

    @classmethod
    def from_events(cls, events: Sequence[Event]) -> EventArrays:
        index: dict[str, int] = {}
        visitor_index: dict[str, int] = {}
        titles: list[str] = []
        n = len(events)
        visitors, items = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        ts, weights = np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64)
        for row, e in enumerate(events):
            i = index.setdefault(e.item, len(index))
            if i == len(titles):
                titles.append("")
            if e.title:
                titles[i] = e.title  # the latest title wins: shops fix titles, rarely break them
            visitors[row] = visitor_index.setdefault(e.visitor, len(visitor_index))
            items[row], ts[row], weights[row] = i, e.ts, EVENT_WEIGHTS.get(e.event, 1.0)
        return cls(list(index), index, visitors, items, ts, weights, titles)


def _first_distinct(candidates: Iterable[str], taken: set[str], out: list[str], n: int) -> None:
    """Append candidates not yet taken to ``out`` until it holds ``n``."""
    for item in candidates:
        if len(out) >= n:
            return
        if item not in taken:
            taken.add(item)
            out.append(item)


class PopularRecommender:
    """The same list for everyone: items by recency-decayed weighted count in the training period."""

    def __init__(self, half_life_days: float = 7.0) -> None:
        self.half_life_days = half_life_days
        self.ranked: list[str] = []

    def fit(self, train: Sequence[Event]) -> None:
        data = EventArrays.from_events(train)
        order = popular_items(data.items, data.ts, data.weights, len(data.item_ids), self.half_life_days)
        self.ranked = [data.item_ids[i] for i in order.tolist()]

    def recommend(self, history: Sequence[str], n: int) -> list[str]:
        return self.ranked[:n]


class ItemKNNRecommender:
    """Plain item-kNN (the textbook baseline): cosine between items' columns of the binary visitor × item
    matrix, the ``neighbors`` most similar items kept per item, candidates scored by the sum of their
    similarities to the visitor's distinct history items. No sessions, recency or content. The list is
    filled up with the most bought/viewed items (plain counts) so that every method answers with n items.

    History items may be recommended (``exclude_history=False``): in the replay a visitor's next item is
    often one they had before (45% of the UCI predictions), and a baseline barred from those would lose for
    a reason that has nothing to do with similarity. ``exclude_history=True`` gives the classic top-N
    variant, reported in docs/evaluation.md too."""

    def __init__(self, neighbors: int = 100, exclude_history: bool = False) -> None:
        self.neighbors = neighbors
        self.exclude_history = exclude_history
        self.item_ids: list[str] = []
        self.index: dict[str, int] = {}
        self.nb = np.zeros((0, neighbors), dtype=np.int32)
        self.sc = np.zeros((0, neighbors), dtype=np.float32)
        self.ranked: list[str] = []

    def fit(self, train: Sequence[Event]) -> None:
        data = EventArrays.from_events(train)
        self.item_ids, self.index = data.item_ids, data.index
        n_items = len(self.item_ids)
        n_visitors = int(data.visitors.max()) + 1 if len(data.visitors) else 0
        m = sp.csr_matrix((np.ones(len(data.items), dtype=np.float32), (data.visitors, data.items)),
                          shape=(n_visitors, n_items))
        m.data[:] = 1.0  # duplicates were summed: back to binary
        norms = np.sqrt(np.asarray(m.sum(axis=0)).ravel())
        mt = m.T.tocsr()
        self.nb = np.full((n_items, self.neighbors), -1, dtype=np.int32)
        self.sc = np.zeros((n_items, self.neighbors), dtype=np.float32)
        for start in range(0, n_items, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n_items)
            co = (mt[start:stop] @ m).tocoo()
            co.data = (co.data / (norms[co.row + start] * norms[co.col])).astype(np.float32)
            self.nb[start:stop], self.sc[start:stop] = top_k_block(co, self.neighbors, first_row=start)
        counts = np.bincount(data.items, minlength=n_items)
        self.ranked = [self.item_ids[i] for i in np.argsort(-counts, kind="stable").tolist()]

    def recommend(self, history: Sequence[str], n: int) -> list[str]:
        distinct = set(history)
        known = np.fromiter((self.index[h] for h in distinct if h in self.index), dtype=np.int64)
        taken = distinct if self.exclude_history else set()
        out: list[str] = []
        if len(known):
            cand, score = self.nb[known].ravel(), self.sc[known].ravel()
            ok = cand >= 0
            total = np.bincount(cand[ok], weights=score[ok], minlength=len(self.item_ids))
            best = np.argsort(-total, kind="stable")[: n + len(taken)]
            _first_distinct((self.item_ids[i] for i in best.tolist() if total[i] > 0), taken, out, n)
        _first_distinct(self.ranked, taken, out, n)
        return out


class AdServerRecommender:
    """The ad server's ranking policy (``models/policy.py``, the function that fills served ad units) as a
    recommender of ``n`` items.

    The visitor's recent items are the ``profile_size`` most recent distinct items of their history, newest
    first: 20 by default, as many as an ad reads per advertiser (``tracker.stream.EventStream.interests``).
    The policy gets them, the similarity model and the popular items, with no catalog in the way (every
    item may be shown, none was bought). ``recent_slots`` overrides the policy's "at most half of the unit
    goes to recent items" for experiments.

    The model is built as by the training job and stored the way serving loads it (an ``Artifact``):
    ``behaviour_neighbors`` on the training events, ``content_neighbors`` on the items' titles as seen in
    the events, ``blend``, ``popular_items``, all with their defaults.
    """

    def __init__(self, recent_slots: int | None = None, k: int = 20, profile_size: int = 20) -> None:
        self.recent_slots = recent_slots
        self.k = k
        self.profile_size = profile_size
        self.model: Artifact | None = None
        self.ranked: list[str] = []

    def fit(self, train: Sequence[Event]) -> None:
        data = EventArrays.from_events(train)
        n_items = len(data.item_ids)
        content = content_neighbors(data.titles, self.k)
        b_nb, b_sc, support = behaviour_neighbors(data.visitors, data.items, data.ts, data.weights, n_items, self.k)
        neighbors, scores = blend(content, (b_nb, b_sc), support, self.k)
        order = popular_items(data.items, data.ts, data.weights, n_items)
        self.model = Artifact(version="evaluate", items=np.asarray(data.item_ids, dtype=str),
                              neighbors=neighbors, scores=scores, popular=np.asarray(order, dtype=np.int32))
        self.ranked = [data.item_ids[i] for i in order.tolist()]

    def profile(self, history: Sequence[str]) -> list[str]:
        """The ``profile_size`` most recent distinct items, newest first."""
        recent: list[str] = []
        seen: set[str] = set()
        for item in reversed(history):
            if item not in seen:
                seen.add(item)
                recent.append(item)
                if len(recent) >= self.profile_size:
                    break
        return recent

    def recommend(self, history: Sequence[str], n: int) -> list[str]:
        picks = choose(self.profile(history), self.model, self.ranked, n, recent_cap=self.recent_slots)
        return [p.item for p in picks]


def default_recommenders() -> dict[str, Recommender]:
    """The three methods ``evaluate`` compares, by the names it reports."""
    return {"adserver": AdServerRecommender(), "popular": PopularRecommender(), "item_knn": ItemKNNRecommender()}
