"""Which products an ad unit shows, in which order, and why: the one ranking policy.

The ad server fills its units with it (``adserver/serving/decision.py``) and offline evaluation scores it
(``models/recommenders.AdServerRecommender``), so the figures measure what is served. Everything here is
pure: the caller supplies the visitor's recent items, the similarity model, the popular items and, through
the ``key`` hook, what may be shown at all (a store adds stock, purchases and item groups there).

The rules, for a unit of ``count`` items:

1. the visitor's recent items, newest first, at most half of the unit while similar items exist (the ad
   should not only repeat what was seen);
2. items similar to the latest ``SIMILAR_SOURCES`` recent items, each view weighted 1/(position + 1) so the
   latest counts most, skipping recent items;
3. the other recent items;
4. popular items.

No item (and no key) appears twice. Recent items come first, then similar, then popular items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

SIMILAR_SOURCES = 3  # how many of the latest recent items seed similar ones
PER_SOURCE = 20  # neighbours read per seed
REASONS = ("recent", "similar", "popular")  # also the order of the unit


class Neighbours(Protocol):
    """A similarity model (``models.artifact.Artifact``): an item's neighbours, best first."""

    def similar(self, item_id: str, n: int) -> Sequence[tuple[str, float]]: ...


class Pick(NamedTuple):
    item: str
    reason: str  # recent | similar | popular
    source: str = ""  # for "similar": the recent item it neighbours most


def similar_candidates(model: Neighbours | None, recent: Sequence[str],
                       sources: int = SIMILAR_SOURCES) -> list[tuple[str, str]]:
    """Neighbours of the latest ``sources`` recent items as ``(item, source)``, best first.

    A candidate's score adds up over the items it neighbours, each weighted 1/(position + 1); its source
    is the recent item that contributed most. Equal scores go by item id, so the order is reproducible.
    """
    if model is None:
        return []
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for position, source in enumerate(recent[:sources]):
        weight = 1.0 / (position + 1)
        for item, score in model.similar(source, PER_SOURCE):
            contribution = float(score) * weight
            scores[item] = scores.get(item, 0.0) + contribution
            if item not in best or contribution > best[item][0]:
                best[item] = (contribution, source)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(item, best[item][1]) for item, _ in ranked]


def rank(recent: Sequence[str], similar: Sequence[tuple[str, str]], popular: Iterable[str], count: int,
         key: Callable[[str], str | None] | None = None, recent_cap: int | None = None) -> list[Pick]:
    """The unit of ``count`` picks from ``recent`` (newest first), ``similar`` (``similar_candidates``)
    and ``popular`` (read only as far as needed, so it may end with a whole catalog).

    ``key(item)`` says what an item is deduplicated as (e.g. its item group: one colour of a product per
    unit), or None when it may not be shown; it is asked only while the unit has room, about items not in
    it yet. Without it, every item may be shown and is its own key. ``recent_cap`` replaces "half of the
    unit" for experiments.
    """
    picks: list[Pick] = []
    taken_items: set[str] = set()
    taken_keys: set[str] = set()

    def take(item: str, reason: str, source: str = "") -> bool:
        if len(picks) >= count or item in taken_items:
            return False
        k = item if key is None else key(item)
        if k is None or k in taken_keys:
            return False
        taken_items.add(item)
        taken_keys.add(k)
        picks.append(Pick(item, reason, source))
        return True

    cap = count
    if similar:
        cap = max(1, count // 2) if recent_cap is None else recent_cap
    taken_recent = 0
    for item in recent:
        if taken_recent >= cap or len(picks) >= count:
            break
        taken_recent += take(item, "recent")
    viewed = set(recent)
    for item, source in similar:
        if len(picks) >= count:
            break
        if item not in viewed:
            take(item, "similar", source)
    for item in recent:
        if len(picks) >= count:
            break
        take(item, "recent")
    if len(picks) < count:
        for item in popular:
            if take(item, "popular") and len(picks) >= count:
                break
    picks.sort(key=lambda p: REASONS.index(p.reason))
    return picks


def choose(recent: Sequence[str], model: Neighbours | None, popular: Iterable[str], count: int,
           key: Callable[[str], str | None] | None = None, recent_cap: int | None = None) -> list[Pick]:
    """``rank`` with the similar items of ``model`` for ``recent``: the whole policy in one call."""
    return rank(recent, similar_candidates(model, recent), popular, count, key, recent_cap)
