"""Similar-product candidates and a model's popular products, remembered per model in the process.

Every personalised ad asks the advertiser's trained model for the neighbours of the visitor's last
views (``models.policy.similar_candidates``: a slice of arrays per view, then a weighted merge) and
every ad for the model's popular products. Both depend on nothing but the model and those views, so
they are kept here: per model object (a new version is a new object, so a retrained model is never
answered from the previous one's entries, and a model that is no longer served takes its entries
with it), in a bounded LRU per model. Entries are tuples: requests share them and must not change them.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence

from models.policy import SIMILAR_SOURCES, Neighbours, similar_candidates

VIEWS_MAX = 4096  # (last views) entries per model: a few hundred kB
POPULAR_MODEL = 50  # the model's popular products an ad may fall back on

Pairs = tuple[tuple[str, str], ...]


class _ModelEntries:
    """What one model answered: similar candidates by last views, and its popular products."""

    __slots__ = ("similar", "popular", "popular_live", "lock")

    def __init__(self) -> None:
        self.similar: OrderedDict[tuple[str, ...], Pairs] = OrderedDict()
        self.popular: tuple[str, ...] | None = None
        self.popular_live: tuple[Sequence[str] | None, tuple[str, ...]] = (None, ())
        self.lock = threading.Lock()


class CandidatesCache:
    """Per model: ``similar(model, views)`` and ``popular(model, live)``, computed once per distinct input."""

    def __init__(self, views_max: int = VIEWS_MAX) -> None:
        self.views_max = views_max
        self._models: weakref.WeakKeyDictionary[object, _ModelEntries] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _entries(self, model: object) -> _ModelEntries:
        try:
            entries = self._models.get(model)
            if entries is None:
                with self._lock:
                    entries = self._models.setdefault(model, _ModelEntries())
        except TypeError:  # a model that cannot be weakly referenced: answered, not remembered
            return _ModelEntries()
        return entries

    def similar(self, model: Neighbours | None, views: Sequence[str]) -> Pairs:
        """``similar_candidates(model, views)`` (only the views that seed it form the key)."""
        if model is None or not views:
            return ()
        key = tuple(views[:SIMILAR_SOURCES])
        entries = self._entries(model)
        found = entries.similar.get(key)
        if found is not None:
            try:
                entries.similar.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile: still a valid answer
                pass
            return found
        found = tuple(similar_candidates(model, key))
        with entries.lock:
            entries.similar[key] = found
            if len(entries.similar) > self.views_max:
                entries.similar.popitem(last=False)  # the view set asked least recently
        return found

    def popular(self, model, live: Sequence[str]) -> Sequence[str]:
        """``live`` popularity first, then the model's longer view (``decision.popular_for``).

        ``live`` is the per-process copy of Redis' popularity (``PopularCache``), replaced as a whole
        when it is read again, so the merge is redone only for a new list object."""
        if model is None:
            return live
        entries = self._entries(model)
        cached_live, merged = entries.popular_live
        if cached_live is live:
            return merged
        if entries.popular is None:
            entries.popular = tuple(model.popular_ids(POPULAR_MODEL))
        seen = set(live)
        merged = (*live, *(sku for sku in entries.popular if sku not in seen))
        entries.popular_live = (live, merged)
        return merged


CACHE = CandidatesCache()  # per model object, so one per process serves every app in it
