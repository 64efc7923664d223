"""The pictures of an ad: slot-sized variants for its products, and less of everything under Save-Data.

A reader whose browser sends ``Save-Data: on`` (Chrome's Lite mode, Android's data saver, Opera,
Yandex) asked sites to spend less of their data: such a unit shows about half the products and
only 1x pictures. Choosing pictures reads the serving process's image index (no database call per
ad; see :mod:`adserver.catalog.image_store`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from adserver.catalog.images import image_choices
from adserver.catalog.product import Product
from adserver.serving.formats import Format
from adserver.serving.images import image_services

log = logging.getLogger(__name__)


def wants_save_data(headers: Mapping[str, str]) -> bool:
    """True for ``Save-Data: on`` (the header's only defined value; parameters after ``;`` allowed)."""
    value = headers.get("Save-Data") or ""
    return value.split(";", 1)[0].strip().lower() == "on"


def save_data_format(fmt: Format) -> Format:
    """``fmt`` with about half its products: rows of grids and columns, columns of strips and carousels."""
    if fmt.slots <= 1:
        return fmt
    if fmt.layout in ("grid", "column") and fmt.rows > 1:
        rows = (fmt.rows + 1) // 2
        return dataclasses.replace(fmt, rows=rows, slots=rows * fmt.cols)
    cols = max(1, (fmt.cols + 1) // 2)
    return dataclasses.replace(fmt, cols=cols, slots=min(fmt.slots, cols * fmt.rows))


def add_pictures(items: list[dict], products: list[Product], advertiser: str, fmt: Format, save_data: bool,
                 base: str, html: bool) -> None:
    """Give each item (one per product, same order) its picture for the slot's image size.

    ``html``: ``image`` becomes the 1x variant and ``srcset``/``webp_srcset`` the candidates (units on
    this server's page, ``base`` empty). Otherwise ``image`` stays the feed's own and ``images`` lists
    the variants with absolute URLs. Without variants (or their index) items keep the feed's image.
    """
    if not items or not advertiser:
        return
    side = fmt.image or 0
    try:
        choices = image_choices(image_services().index, advertiser, products, side, side, save_data, base)
    except Exception as exc:  # noqa: BLE001 - an ad shows the feed's images rather than fail
        log.warning("image variants unavailable (%s): units show the feed's images", exc)
        return
    for item, product in zip(items, products):
        choice = choices.get(product.sku)
        if choice is None or not choice.variants:
            continue
        if html:
            item.update(image=choice.src, srcset=choice.srcset, webp_srcset=choice.webp_srcset)
        else:
            item["images"] = [dict(v) for v in choice.variants]  # the choice is shared by later ads
