"""Synthetic catalogues and event logs for timing the models at production scale.

Nothing here is used to judge quality (that is ``evaluate`` on real logs); the data only has to be shaped like
a store's: titles mixing Chinese and English with Zipf-distributed words grouped by category, and sessions
of a few views that stay mostly inside one category and favour popular items.
"""

from __future__ import annotations

import numpy as np

# Common CJK unified ideographs start at U+4E00; the first few thousand code points cover everyday characters
# well enough for timing purposes.
_CJK_FIRST, _CJK_COUNT = 0x4E00, 3000
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]


def _words(rng: np.random.Generator, n: int, alphabet: list[str], weights: np.ndarray) -> list[str]:
    """``n`` distinct words of 2-3 symbols, in random order (so Zipf ranks are not alphabetical)."""
    words: set[str] = set()
    while len(words) < n:
        size = n - len(words)
        picks = rng.choice(len(alphabet), size=(size, 3), p=weights / weights.sum())
        lengths = rng.integers(2, 4, size=size)
        words.update("".join(alphabet[s] for s in row[:m]) for row, m in zip(picks, lengths, strict=True))
    return list(rng.permutation(sorted(words)))


def _english_words(rng: np.random.Generator, n: int) -> list[str]:
    return _words(rng, n, _SYLLABLES, np.ones(len(_SYLLABLES)))


def _chinese_words(rng: np.random.Generator, n: int) -> list[str]:
    """Characters drawn with a flat Zipf (exponent 0.7): the most common one is about 2% of all characters."""
    chars = [chr(_CJK_FIRST + i) for i in rng.permutation(_CJK_COUNT)]
    return _words(rng, n, chars, 1.0 / np.arange(1, _CJK_COUNT + 1) ** 0.7)


def _zipf_choice(rng: np.random.Generator, n: int, size: int, a: float = 1.1) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** a
    return rng.choice(n, size=size, p=p / p.sum())


def synthetic_titles(n: int, seed: int = 0, categories: int = 2000) -> list[str]:
    """``n`` product titles (see ``synthetic_catalogue``)."""
    return synthetic_catalogue(n, seed, categories)[0]


def synthetic_catalogue(n: int, seed: int = 0, categories: int = 2000) -> tuple[list[str], np.ndarray]:
    """``(titles, category per title)`` for ``n`` products: about 40% English, 30% Chinese, 30% mixed, with a size or model number in some.

    Each title draws half its words from its category's own small vocabulary and half from the global
    Zipf vocabulary, so that items have real neighbours and common words are common.
    """
    rng = np.random.default_rng(seed)
    en, zh = _english_words(rng, 20_000), _chinese_words(rng, 20_000)
    cat_en = rng.integers(0, len(en), size=(categories, 12))
    cat_zh = rng.integers(0, len(zh), size=(categories, 12))
    cats = _zipf_choice(rng, categories, n, a=0.8)
    kinds = rng.random(n)
    max_words = 9
    n_words = rng.integers(4, max_words + 1, size=n)
    local = rng.random((n, max_words)) < 0.5
    local_pick = rng.integers(0, 12, size=(n, max_words))
    global_pick = _zipf_choice(rng, len(en), n * max_words).reshape(n, max_words)
    suffix = rng.random(n) < 0.3
    sizes = rng.integers(1, 1000, size=n)
    units = rng.choice(["g", "ml", "cm", "GB", "件"], size=n)
    glue = rng.random(n) < 0.5
    titles = []
    for i in range(n):
        c, kind = cats[i], kinds[i]
        words = []
        for j in range(n_words[i]):
            chinese = kind < 0.3 or (kind >= 0.7 and j % 2 == 1)
            if local[i, j]:
                words.append(zh[cat_zh[c, local_pick[i, j]]] if chinese else en[cat_en[c, local_pick[i, j]]])
            else:
                words.append((zh if chinese else en)[global_pick[i, j]])
        if suffix[i]:
            words.append(f"{sizes[i]}{units[i]}")
        titles.append(("" if kind < 0.3 and glue[i] else " ").join(words))
    return titles, cats


def synthetic_events(n_events: int, n_items: int, seed: int = 0, days: float = 90.0,
                     categories: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(visitors, items, ts, weights)``: sessions of ~5 events, 80% of steps in the session's category.

    Visitors come back for a few sessions each (about 2.5 sessions per visitor); weights are 1 (view),
    3 (cart, 8%) or 5 (purchase, 2%).
    """
    rng = np.random.default_rng(seed)
    item_cat = rng.integers(0, categories, size=n_items)
    by_cat = np.argsort(item_cat, kind="stable")
    cat_start = np.searchsorted(item_cat[by_cat], np.arange(categories + 1))
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = rng.permutation(popularity / popularity.sum())

    lengths = np.maximum(rng.geometric(0.2, size=n_events // 4), 1)
    lengths = lengths[np.cumsum(lengths) <= n_events]
    n_sessions = len(lengths)
    session = np.repeat(np.arange(n_sessions), lengths)
    total = len(session)
    visitor_of_session = rng.integers(0, max(n_sessions * 2 // 5, 1), size=n_sessions)
    session_start = rng.uniform(0, days * 86_400.0, size=n_sessions)

    items = rng.choice(n_items, size=total, p=popularity)
    home_item = items[np.searchsorted(session, np.arange(n_sessions))]
    home_cat = item_cat[home_item][session]
    local = rng.random(total) < 0.8
    lo, hi = cat_start[home_cat[local]], cat_start[home_cat[local] + 1]
    items[local] = by_cat[lo + (rng.random(local.sum()) * (hi - lo)).astype(np.int64)]

    gaps = rng.uniform(10, 300, size=total)
    gaps[np.searchsorted(session, np.arange(n_sessions))] = 0.0
    elapsed = np.cumsum(gaps)
    elapsed -= elapsed[np.searchsorted(session, np.arange(n_sessions))][session]
    ts = 1.7e9 + session_start[session] + elapsed
    weights = rng.choice(np.array([1.0, 3.0, 5.0]), size=total, p=[0.9, 0.08, 0.02])
    return visitor_of_session[session].astype(np.int64), items.astype(np.int64), ts, weights
