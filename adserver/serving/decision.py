"""The ad decision: which advertiser, which products, in which order, and why.

For a visitor with a usable cookie, the advertiser they showed interest in most recently is chosen.
Slots are filled with what they viewed there (newest first, at most half of the unit while similar
products are available), then products similar to their last few views (from the trained model,
weighted by how recent the view is), then the advertiser's popular products. Everything is in memory
except one Redis round trip for the profile. Products that no longer exist, are out of stock or were
bought already are skipped, and one product per item group (colour variants) is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adserver.catalog.products import Product
from tracker.stream import Profile

SIMILAR_SOURCES = 3  # how many of the latest views seed similar products
PER_SOURCE = 20


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


def similar_candidates(model, recent: Sequence[str], sources: int = SIMILAR_SOURCES) -> list[tuple[str, str]]:
    """Neighbours of the latest views as ``(sku, source_sku)``, best first.

    A candidate's score adds up over the views it neighbours, each weighted 1/(position+1) so the
    latest view counts most; its source is the view that contributed most.
    """
    if model is None:
        return []
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for position, source in enumerate(recent[:sources]):
        weight = 1.0 / (position + 1)
        for sku, score in model.similar(source, PER_SOURCE):
            contribution = float(score) * weight
            scores[sku] = scores.get(sku, 0.0) + contribution
            if contribution > best.get(sku, (0.0, ""))[0]:
                best[sku] = (contribution, source)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(sku, best[sku][1]) for sku, _ in ranked]


def fill_slots(products: dict[str, Product], recent: Sequence[str], popular: Sequence[str], bought: set[str],
               count: int, similar: Sequence[tuple[str, str]] = ()) -> list[Slot]:
    """Recent (up to half while similar products exist), similar, the other recent, then popular."""
    slots: list[Slot] = []
    used_skus: set[str] = set()
    used_groups: set[str] = set()

    def take(sku: str, reason: str, source: str = "") -> bool:
        if len(slots) >= count:
            return False
        product = products.get(sku)
        if product is None or sku in used_skus or sku in bought or not product.in_stock:
            return False
        group = product.item_group_id or sku
        if group in used_groups:
            return False
        used_skus.add(sku)
        used_groups.add(group)
        slots.append(Slot(product, reason, source))
        return True

    viewed = set(recent)
    recent_cap = max(1, count // 2) if similar else count
    taken_recent = 0
    for sku in recent:
        if taken_recent >= recent_cap:
            break
        taken_recent += take(sku, "recent")
    for sku, source in similar:
        if sku not in viewed:
            take(sku, "similar", source)
    for sku in recent:
        take(sku, "recent")
    for sku in popular:
        take(sku, "popular")
    for sku in products:  # catalog order: a new store has no popularity yet
        if len(slots) >= count:
            break
        take(sku, "popular")
    slots.sort(key=lambda s: ("recent", "similar", "popular").index(s.reason))
    return slots


def decide(profile: Profile | None, fallback_advertiser: str | None,
           catalog: Callable[[str], dict[str, Product]], popular: Callable[[str], Sequence[str]], count: int,
           model: Callable[[str], object] = lambda advertiser: None) -> Decision:
    """Pick the advertiser and fill ``count`` slots; ``catalog``/``popular``/``model`` look data up per advertiser."""
    if profile is not None and profile.advertiser:
        advertiser = profile.advertiser
        products = catalog(advertiser)
        artifact = model(advertiser)
        similar = similar_candidates(artifact, [s for s in profile.recent if s in products])
        slots = fill_slots(products, profile.recent, popular_for(popular, artifact, advertiser), profile.bought,
                           count, similar)
        if slots:
            return Decision(advertiser, slots, personalised=True, path="personalised")
    if fallback_advertiser is None:
        return Decision(None, [], path="empty")
    products = catalog(fallback_advertiser)
    slots = fill_slots(products, [], popular_for(popular, model(fallback_advertiser), fallback_advertiser), set(), count)
    return Decision(fallback_advertiser, slots, path="fallback" if slots else "empty")


def popular_for(popular: Callable[[str], Sequence[str]], artifact, advertiser: str) -> list[str]:
    """Live popularity (Redis, last days) first, then the trained model's longer view."""
    live = list(popular(advertiser))
    if artifact is not None:
        seen = set(live)
        live += [sku for sku in artifact.popular_ids(50) if sku not in seen]
    return live
