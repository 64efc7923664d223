"""Similar products: from their text (content), from shopping sessions (behaviour), and the blend of both;
plus the popularity ranking used to fill the last slots of an ad.

Every neighbour list here follows the ``topk`` convention: ``(neighbors int32 [n, k], scores float32 [n, k])``,
rows by descending score, padded with -1 / 0.0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from models.recency import decay_factors
from models.topk import empty_top_k, top_k_block, top_k_triplets

# Content similarity ---------------------------------------------------------------------------------------------

NGRAM_RANGE = (1, 4)
# Work budget of the similarity product X @ X.T: an n-gram found in df products costs df² multiply-adds, so
# common n-grams ("the", "ml", 的) dominate the cost while saying little about similarity (their idf is low).
# The most common n-grams are dropped until the sum of df² is at most WORK_PER_ITEM per product: the work,
# and the number of candidates per row, then grow linearly with the catalogue. Small catalogues (a few
# thousand titles) are not pruned at all. Measured on 100,000 synthetic titles (docs/evaluation.md): full
# vocabulary 212 s, this budget under 30 s with the same share of same-category neighbours.
WORK_PER_ITEM = 20_000
CHUNK_ROWS = 1000


def product_text(title: str, brand: str = "", product_type: str = "", description: str = "") -> str:
    """The text a product is compared on: the title twice (it names the product; descriptions are long and
    generic), then brand, the category path and the first 300 characters of the description."""
    parts = [title, title, brand, product_type.replace(">", " "), description[:300]]
    return " ".join(" ".join(parts).split())


def df_cap(df: np.ndarray, budget: float) -> int:
    """The largest document frequency d such that the n-grams with df <= d cost at most ``budget``
    (sum of df²) in the similarity product; every n-gram with a larger df is dropped."""
    values, counts = np.unique(df, return_counts=True)
    cost = np.cumsum(values.astype(np.float64) ** 2 * counts)
    affordable = values[cost <= budget]
    return int(affordable[-1]) if len(affordable) else 0


def _tfidf(texts: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised TF-IDF of character n-grams, without the n-grams that cannot help.

    Dropped: n-grams found in a single product (they cannot make two products similar), blank and single
    ASCII character n-grams (noise, see below), and the commonest n-grams beyond the work budget. Rows are
    normalised before the pruning, so a dot product is the true cosine less what the dropped common n-grams
    would have added.
    """
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True, lowercase=True,
                                 dtype=np.float32, norm="l2")
    try:
        x = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # empty vocabulary: no text at all
        return sp.csr_matrix((len(texts), 0), dtype=np.float32)
    df = np.bincount(x.indices, minlength=x.shape[1])
    # char_wb pads every word with spaces: the n-gram " " is in every product and would make any two
    # products slightly similar, so nothing would ever lack neighbours. Blank n-grams go.
    # A single Latin letter or digit says nothing either (a single Chinese character often is a word: 茶).
    noise = np.fromiter((not f.strip() or (len(f) == 1 and f.isascii()) for f in vectorizer.get_feature_names_out()),
                        dtype=bool, count=x.shape[1])
    candidates = ~noise & (df >= 2)
    useful = np.flatnonzero(candidates & (df <= df_cap(df[candidates], WORK_PER_ITEM * len(texts))))
    return x[:, useful].astype(np.float32).tocsr()


def content_neighbors(texts: Sequence[str], k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of every text (itself excluded) on TF-IDF of character n-grams.

    ``char_wb`` 1-4-grams work for Chinese without a word segmenter (a title is one long "word" whose
    1-4 character n-grams are its words and word parts) and for English (sub-word n-grams also catch plurals
    and typos). Rows are processed in chunks (sparse ``X[chunk] @ X.T``, then top-k), so memory stays
    bounded; the chunks run on all cores (scipy's sparse product releases the GIL). The commonest n-grams
    are pruned to a work budget (WORK_PER_ITEM) so that time grows linearly with the catalogue.
    """
    n = len(texts)
    if n == 0 or k <= 0:
        return empty_top_k(n, max(k, 0))
    x = _tfidf(texts)
    if x.shape[1] == 0:
        return empty_top_k(n, k)
    xt = x.T.tocsr()
    neighbors, scores = empty_top_k(n, k)

    def run(start: int) -> None:
        stop = min(start + CHUNK_ROWS, n)
        nb, sc = top_k_block(x[start:stop] @ xt, k, first_row=start)
        neighbors[start:stop], scores[start:stop] = nb, sc

    workers = min(os.cpu_count() or 1, 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(run, range(0, n, CHUNK_ROWS)))
    return neighbors, scores


# Behavioural similarity -----------------------------------------------------------------------------------------

# A session longer than this (a crawler, a wholesale basket of hundreds of lines) keeps only its most recent
# distinct items: it would otherwise add len² co-occurrences that say little about any single pair.
MAX_SESSION_ITEMS = 200


def _sessions(visitors: np.ndarray, ts: np.ndarray, session_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Order of the events by (visitor, ts) and the session number of each event in that order."""
    order = np.lexsort((ts, visitors))
    v, t = visitors[order], ts[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (v[1:] != v[:-1]) | (np.diff(t) > session_gap)
    return order, np.cumsum(new) - 1


def _session_item_matrix(session: np.ndarray, items: np.ndarray, ts: np.ndarray, values: np.ndarray,
                         n_items: int) -> sp.csr_matrix:
    """Session × item matrix holding, per pair, the strongest decayed interaction (not the sum: ten reloads
    of a page are one view), with sessions cut to their MAX_SESSION_ITEMS most recent distinct items."""
    key = session.astype(np.int64) * n_items + items
    # Per (session, item): the row with the largest value (ties: the latest), found by one sort.
    order = np.lexsort((ts, values, key))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = key[order][1:] != key[order][:-1]
    pick = order[last]
    s, i, val, t = session[pick], items[pick], values[pick], ts[pick]
    # Rank of each distinct item within its session, most recent first; drop ranks beyond the cap.
    by_recency = np.lexsort((-t, s))
    s_sorted = s[by_recency]
    starts = np.searchsorted(s_sorted, s_sorted, side="left")
    keep = by_recency[(np.arange(len(s_sorted)) - starts) < MAX_SESSION_ITEMS]
    n_sessions = int(session.max()) + 1 if len(session) else 0
    return sp.csr_matrix((val[keep].astype(np.float32), (s[keep], i[keep])), shape=(n_sessions, n_items))


def behaviour_neighbors(visitors: np.ndarray, items: np.ndarray, ts: np.ndarray, weights: np.ndarray,
                        n_items: int, k: int = 20, half_life_days: float = 30.0, session_gap: float = 1800.0,
                        shrink: float = 10.0,
                        now: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items that shoppers look at in the same sessions, as ``(neighbors, scores, support)``.

    Each visitor's events are cut into sessions at gaps longer than ``session_gap`` seconds: a session is one
    shopping intent, so items in it are substitutes or complements; a visitor's whole history mixes intents.
    A session × item matrix M holds each event's weight decayed by its age (half-life ``half_life_days``,
    age measured from ``now``, default the latest event); an item counts once per session, with its strongest
    interaction, and a session keeps at most its MAX_SESSION_ITEMS latest items. The similarity of items
    i, j is cosine with shrinkage::

        s_ij = c_ij / (sqrt(n_i · n_j) + shrink),   c_ij = Σ_s M_si M_sj,   n_i = Σ_s M_si²

    Cosine divides by each item's own mass, so a best-seller that co-occurs with everything scores low with
    each of them (plain co-occurrence counts would put it first everywhere); the shrinkage (in units of one
    fresh view × view) pulls pairs seen in only one or two sessions towards zero, where cosine alone would
    give 1.0 to two items that happened to meet once. Because shrinkage does not decay, an old co-occurrence
    also scores lower than the same co-occurrence seen recently. ``support`` is the number of sessions each
    item appears in: the blend trusts behaviour more for items with more of it.
    """
    visitors, items = np.asarray(visitors), np.asarray(items, dtype=np.int64)
    ts, weights = np.asarray(ts, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not (len(visitors) == len(items) == len(ts) == len(weights)):
        raise ValueError("visitors, items, ts and weights must have the same length")
    neighbors, scores = empty_top_k(n_items, k)
    support = np.zeros(n_items, dtype=np.int32)
    if len(items) == 0:
        return neighbors, scores, support
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item indices must be in [0, {n_items})")
    now = float(ts.max()) if now is None else float(now)
    values = weights * decay_factors(ts, now, half_life_days)

    order, session = _sessions(visitors, ts, session_gap)
    m = _session_item_matrix(session, items[order], ts[order], values[order], n_items)
    support = np.diff(m.tocsc().indptr).astype(np.int32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0), dtype=np.float64).ravel())
    mt = m.T.tocsr()
    for start in range(0, n_items, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, n_items)
        co = (mt[start:stop] @ m).tocoo()
        co.data = (co.data / (norms[co.row + start] * norms[co.col] + shrink)).astype(np.float32)
        neighbors[start:stop], scores[start:stop] = top_k_block(co, k, first_row=start)
    return neighbors, scores, support


# Blend and popularity -------------------------------------------------------------------------------------------


def _row_max_scaled(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its maximum (rows without a positive score stay zero): cosine on n-grams and
    shrunk cosine on sessions live on different scales, but "the best neighbour this source has" is 1.0 in
    both."""
    scores = np.asarray(scores, dtype=np.float32)
    top = scores.max(axis=1, keepdims=True) if scores.shape[1] else np.zeros((len(scores), 1), np.float32)
    return np.divide(scores, top, out=np.zeros_like(scores), where=top > 0)


def blend(content: tuple[np.ndarray, np.ndarray], behaviour: tuple[np.ndarray, np.ndarray], support: np.ndarray,
          k: int = 20, prior: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """One neighbour list per item from the content and behaviour lists.

    Per item, ``alpha = support / (support + prior)``: with no session evidence (a new product, a rarely
    seen one) the list is its content neighbours (cold start); the more sessions an item appears in, the
    more its behavioural neighbours count. Scores are row-max scaled first, then
    ``alpha · behaviour + (1 − alpha) · content``, summed when both sources name the same neighbour (two
    independent reasons to show it).
    """
    c_nb, c_sc = (np.asarray(a) for a in content)
    b_nb, b_sc = (np.asarray(a) for a in behaviour)
    support = np.asarray(support, dtype=np.float64)
    n = len(support)
    if c_nb.shape != c_sc.shape or b_nb.shape != b_sc.shape or c_nb.ndim != 2 or b_nb.ndim != 2:
        raise ValueError("neighbors and scores must be 2-D arrays of the same shape")
    if c_nb.shape[0] != n or b_nb.shape[0] != n:
        raise ValueError(f"content ({c_nb.shape[0]} rows), behaviour ({b_nb.shape[0]} rows) and support ({n}) differ")
    if prior < 0:
        raise ValueError("prior must be >= 0")
    alpha = np.divide(support, support + prior, out=(support > 0).astype(np.float64), where=support + prior > 0)
    c_val = (1.0 - alpha)[:, None] * _row_max_scaled(c_sc)
    b_val = alpha[:, None] * _row_max_scaled(b_sc)
    rows = np.concatenate([np.repeat(np.arange(n), c_nb.shape[1]), np.repeat(np.arange(n), b_nb.shape[1])])
    cols = np.concatenate([c_nb.ravel(), b_nb.ravel()]).astype(np.int64)
    vals = np.concatenate([c_val.ravel(), b_val.ravel()])
    ok = (cols >= 0) & (vals > 0)
    return top_k_triplets(rows[ok], cols[ok], vals[ok], n, n, k)


def popular_items(items: np.ndarray, ts: np.ndarray, weights: np.ndarray, n_items: int,
                  half_life_days: float = 7.0, now: float | None = None) -> np.ndarray:
    """Item indices (int32) by recency-decayed weighted event count, most popular first; items without any
    event are left out. A short half-life (a week) follows what sells now, not what sold last season."""
    items = np.asarray(items, dtype=np.int64)
    ts, weights = np.asarray(ts, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if not (len(items) == len(ts) == len(weights)):
        raise ValueError("items, ts and weights must have the same length")
    if len(items) == 0:
        return np.zeros(0, dtype=np.int32)
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item indices must be in [0, {n_items})")
    now = float(ts.max()) if now is None else float(now)
    score = np.bincount(items, weights=weights * decay_factors(ts, now, half_life_days), minlength=n_items)
    seen = np.flatnonzero(np.bincount(items, minlength=n_items) > 0)
    return seen[np.argsort(-score[seen], kind="stable")].astype(np.int32)
