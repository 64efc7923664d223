"""The ad decision: which advertiser (chosen by ``auction``), which products, in which order, and why.

A unit is filled by the ranking policy (``models/policy.py``): what the visitor viewed at the advertiser
(newest first, at most half of the unit while similar products are available), then products similar to
their last few views (from the trained model, weighted by how recent the view is), then the advertiser's
popular products. This module adds the catalog: products that no longer exist, are out of stock or were
bought already are skipped, and one product per item group (colour variants) is shown. Everything is in
memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from adserver.catalog.product import Product
from adserver.serving.candidates_cache import CACHE
from models.feedback import demote, demote_pairs
from models.policy import Neighbours, rank, similar_candidates  # noqa: F401 - the policy's name, served from here


@dataclass
class Slot:
    product: Product
    reason: str  # recent | similar | popular
    source_sku: str = ""  # for "similar": the viewed product it came from


@dataclass
class Decision:
    advertiser: str | None
    slots: list[Slot] = field(default_factory=list)
    personalised: bool = False
    path: str = "fallback"  # personalised | fallback | empty
    fallback_reason: str = ""  # why not personalised: no_cookie, opted_out, no_interest, ...
    campaign: object | None = None  # adserver.campaigns.campaign.Campaign that won, None for house ads
    charged: float = 0.0  # what the impression itself cost (CPM); CPC is charged on the click
    pctr: float = 0.0
    interest: object | None = None  # tracker.stream.Interest behind a personalised decision


def fill_unit(products: dict[str, Product], recent: Sequence[str], popular: Sequence[str], bought: set[str],
              count: int, model: Neighbours | None = None, hides: Mapping[str, float] | None = None) -> list[Slot]:
    """The unit for a visitor whose recent views at the advertiser are ``recent`` (newest first; none for a
    non-personalised unit): similar products are seeded by the views still in the catalog. ``bought``
    holds every product not to show (bought, or dismissed by this visitor); ``hides``: readers' recent
    "not this product" answers per sku, which move similar and popular products back (``models.feedback``)."""
    in_catalog = [sku for sku in recent if sku in products]
    similar = CACHE.similar(model, in_catalog)
    if not hides:
        return fill_slots(products, in_catalog, popular, bought, count, similar)
    catalog = chain((s for s in products if not hides.get(s)), (s for s in products if hides.get(s)))
    return fill_slots(products, in_catalog, demote(popular, hides), bought, count, demote_pairs(similar, hides),
                      catalog)


def fill_slots(products: dict[str, Product], recent: Sequence[str], popular: Sequence[str], bought: set[str],
               count: int, similar: Sequence[tuple[str, str]] = (), catalog: Iterable[str] | None = None) -> list[Slot]:
    """The ranking policy (``models.policy.rank``) over the advertiser's catalog: only products that exist,
    are in stock and were not bought, one per item group; the catalog's own order (or ``catalog``'s) after
    ``popular``."""

    def shown_as(sku: str) -> str | None:
        product = products.get(sku)
        if product is None or sku in bought or not product.in_stock:
            return None
        return product.item_group_id or sku

    # Catalog order last: a new store has no popularity yet.
    picks = rank(recent, similar, chain(popular, products if catalog is None else catalog), count, key=shown_as)
    return [Slot(products[p.item], p.reason, p.source) for p in picks]


def popular_for(popular: Callable[[str], Sequence[str]], artifact, advertiser: str) -> Sequence[str]:
    """Live popularity (Redis, last days) first, then the trained model's longer view (shared: read only)."""
    return CACHE.popular(artifact, popular(advertiser))
