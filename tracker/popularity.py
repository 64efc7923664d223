"""Popular products: each hit's weight per advertiser, day and sku, summed across the hits of one call.

A batch of hits (``tracker.linger``) or a spooled batch replayed (``EventStream.send_all``) adds its
weights in one ``POPULAR`` script call per slot instead of one per hit: the weights of repeated skus
are summed first. The counts are kept per UTC day, ``POPULAR_DAYS`` of them read for an ad.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracker.stream_scripts import popular_script_args

if TYPE_CHECKING:
    from tracker.stream import Call

POPULAR_DAYS = 7


def popular_key(advertiser: str, day: str) -> str:
    return "pop:{%s}:%s" % (advertiser, day)


def add_popularity(weights: dict[str, dict[str, float]], call: Call) -> None:
    """Add a prepared event's popularity to ``weights`` (day key -> sku -> weight), summing repeats."""
    if call.popular is not None:
        key, weight, skus = call.popular
        day = weights.setdefault(key, {})
        for sku in skus:
            day[sku] = day.get(sku, 0.0) + weight


def popular_args(weights: dict[str, dict[str, float]]) -> tuple[list, list]:
    """The ``POPULAR`` script's KEYS and ARGV adding ``weights`` (day key -> sku -> weight)."""
    return popular_script_args(weights, (POPULAR_DAYS + 1) * 86400)
