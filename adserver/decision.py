"""The ad decision: which advertiser, which products, in which order, and why.

For a visitor with a usable cookie, the advertiser they showed interest in most recently is chosen
and the slots are filled with what they viewed there (newest first), then the advertiser's popular
products. Everything is in memory except one Redis round trip for the profile. Products that no
longer exist, are out of stock or were bought already are skipped, and one product per item group
(colour variants) is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adserver.catalog import Product
from tracker.stream import Profile


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


def fill_slots(products: dict[str, Product], recent: list[str], popular: list[str], bought: set[str],
               count: int) -> list[Slot]:
    """Recently viewed first, then popular, then the rest of the catalog; de-duplicated by item group."""
    slots: list[Slot] = []
    used_skus: set[str] = set()
    used_groups: set[str] = set()

    def take(sku: str, reason: str) -> None:
        product = products.get(sku)
        if product is None or sku in used_skus or sku in bought or not product.in_stock:
            return
        group = product.item_group_id or sku
        if group in used_groups:
            return
        used_skus.add(sku)
        used_groups.add(group)
        slots.append(Slot(product, reason))

    for sku in recent:
        if len(slots) >= count:
            return slots
        take(sku, "recent")
    for sku in popular:
        if len(slots) >= count:
            return slots
        take(sku, "popular")
    for sku in products:  # catalog order: a new store has no popularity yet
        if len(slots) >= count:
            break
        take(sku, "popular")
    return slots


def decide(profile: Profile | None, fallback_advertiser: str | None, catalog, popular, count: int) -> Decision:
    """Pick the advertiser and fill ``count`` slots. ``catalog``/``popular`` map advertiser -> data."""
    if profile is not None and profile.advertiser:
        products = catalog(profile.advertiser)
        slots = fill_slots(products, profile.recent, popular(profile.advertiser), profile.bought, count)
        if slots:
            return Decision(profile.advertiser, slots, personalised=True, path="personalised")
    if fallback_advertiser is None:
        return Decision(None, [], path="empty")
    products = catalog(fallback_advertiser)
    slots = fill_slots(products, [], popular(fallback_advertiser), set(), count)
    return Decision(fallback_advertiser, slots, path="fallback" if slots else "empty")
