"""Negative feedback in the ranking: products readers recently answered "not this product" to.

The rule: within its list (similar products, popular products), a product at position ``i`` is ranked
as if it were at ``i + HIDE_STEP * h``, where ``h`` is how many times readers answered "not this product"
to it over the last days (every reader, valid traffic only: ``tracker.hides``); a tie goes to the product
with fewer answers, then to the list's order. One answer costs a product a few places, many answers send it to the back, and a product
nobody dismissed keeps its place. Where the catalog's own order fills a unit (a new store without
popularity), dismissed products come after all the others. A reader's own answers are stricter: what they hid is never shown to
them (``adserver.serving.auction``), and a visitor's own recent views are not reordered by others'
answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

HIDE_STEP = 5  # places a product loses per recent "not this product"

T = TypeVar("T")


def demote(items: Iterable[T], hides: Mapping[str, float], key=lambda item: item, step: int = HIDE_STEP) -> list[T]:
    """``items`` reordered by the rule above; ``key(item)`` is the product id of an item."""
    listed = list(items)
    if not hides:
        return listed
    def rank(i: int) -> tuple[float, float, int]:
        h = hides.get(key(listed[i]), 0.0)
        return i + step * h, h, i

    order = sorted(range(len(listed)), key=rank)
    return [listed[i] for i in order]


def demote_pairs(pairs: Sequence[tuple[str, str]], hides: Mapping[str, float],
                 step: int = HIDE_STEP) -> list[tuple[str, str]]:
    """``demote`` for ``(item, source)`` pairs (similar candidates)."""
    return demote(pairs, hides, key=lambda pair: pair[0], step=step)
