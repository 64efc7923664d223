"""A product of an advertiser's catalog, and the checks one feed row must pass to become one.

Feeds use Google Merchant / Criteo field names (id, title, description, link, image_link, price,
sale_price, currency, availability, product_type, brand, item_group_id). Every row is checked on its
own: a bad row is reported (row number, field, reason) and skipped, the good rows are kept. Titles
are reduced to plain text here; escaping for HTML happens at rendering.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from adserver.catalog.landing import host_matches, url_host, url_problem
from tracker.events import CURRENCIES, SKU_RE

MAX_TITLE = 300
MAX_DESCRIPTION = 5000
MAX_FIELD = 10000
MAX_PRICE = Decimal("1000000000")

AVAILABILITY = {
    "in stock": "in stock", "in_stock": "in stock", "instock": "in stock",
    "out of stock": "out of stock", "out_of_stock": "out of stock", "outofstock": "out of stock",
    "preorder": "preorder", "pre-order": "preorder", "backorder": "backorder",
}
SELLABLE = frozenset({"in stock", "preorder", "backorder"})

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
# A decimal comma takes at most 2 digits: "1,299" is a thousands separator, not 1.299 (such prices are refused).
_PRICE = re.compile(r"^\s*(\d{1,10}(?:\.\d{1,4}|,\d{1,2})?)\s*([A-Za-z]{3})?\s*$")


@dataclass
class Product:
    sku: str
    title: str
    link: str
    image_link: str = ""
    price: float = 0.0
    sale_price: float = 0.0
    currency: str = ""
    availability: str = "in stock"
    description: str = ""
    product_type: str = ""
    brand: str = ""
    item_group_id: str = ""

    @property
    def in_stock(self) -> bool:
        return self.availability in SELLABLE

    @property
    def display_price(self) -> float:
        return self.sale_price if 0 < self.sale_price < self.price else self.price


@dataclass
class RowError:
    row: int
    field: str
    reason: str


def plain_text(value: str, limit: int) -> str:
    """Strip tags and entities and collapse whitespace: feed text is shown as text, never markup."""
    text = html.unescape(_TAG.sub(" ", value))
    text = "".join(c for c in text if c.isprintable() or c == " ")
    return _SPACE.sub(" ", text).strip()[:limit]


def _url(value: str) -> tuple[str | None, str]:
    """The URL, or None and why not (see :mod:`adserver.catalog.landing`: no user info, a host a browser
    reads as we do)."""
    value = value.strip()
    problem = url_problem(value)
    return (None, problem) if problem else (value, "")


def _price(value: str) -> tuple[Decimal | None, str]:
    match = _PRICE.match(value or "")
    if not match:
        return None, ""
    try:
        amount = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation:
        return None, ""
    return amount, (match.group(2) or "").upper()


def validate_row(raw: dict, row_number: int, default_currency: str = "",
                 domains: tuple[str, ...] | None = None) -> tuple[Product | None, list[RowError]]:
    """Check one feed row; returns the product or the reasons it was rejected.

    With ``domains`` (the advertiser's landing domains) the link must be on one of them or a
    subdomain; images may be anywhere (stores serve them from CDNs).
    """
    errors: list[RowError] = []

    def get(name: str) -> str:
        value = raw.get(name)
        if value is None:
            return ""
        value = value if isinstance(value, str) else str(value)
        return value

    for name, value in raw.items():
        if isinstance(value, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            errors.append(RowError(row_number, str(name)[:50], "invalid UTF-8"))
        elif isinstance(value, str) and len(value) > MAX_FIELD:
            errors.append(RowError(row_number, str(name)[:50], f"longer than {MAX_FIELD} characters"))
    if errors:
        return None, errors

    sku = get("id").strip()
    if not sku:
        errors.append(RowError(row_number, "id", "missing"))
    elif not SKU_RE.match(sku):
        errors.append(RowError(row_number, "id", "1-100 printable characters without spaces, quotes or commas"))
    title = plain_text(get("title"), MAX_TITLE)
    if not title:
        errors.append(RowError(row_number, "title", "missing"))
    link, problem = _url(get("link"))
    if link is None:
        if problem in ("missing", "not an http(s) URL"):
            problem = "missing or not an http(s) URL"
        errors.append(RowError(row_number, "link", problem))
    elif domains is not None and not host_matches(url_host(link), domains):
        errors.append(RowError(row_number, "link", f"host {url_host(link)} is not one of the advertiser's landing "
                                                   f"domains ({', '.join(domains)})"))
    image = get("image_link")
    image_link, problem = _url(image) if image.strip() else ("", "")
    if image_link is None:
        errors.append(RowError(row_number, "image_link", problem))
    price, price_currency = _price(get("price"))
    if price is None or price <= 0 or price >= MAX_PRICE:
        errors.append(RowError(row_number, "price", "must be a positive number like 129.90 or '129.90 CNY'"))
    sale_price = Decimal(0)
    if get("sale_price").strip():
        sale, _ = _price(get("sale_price"))
        if sale is None or sale < 0 or sale >= MAX_PRICE:
            errors.append(RowError(row_number, "sale_price", "must be a non-negative number"))
        else:
            sale_price = sale
    currency = (get("currency").strip().upper() or price_currency or default_currency)
    if currency not in CURRENCIES:
        errors.append(RowError(row_number, "currency", "missing or not an ISO 4217 code"))
    availability_raw = get("availability").strip().lower() or "in stock"
    availability = AVAILABILITY.get(availability_raw)
    if availability is None:
        errors.append(RowError(row_number, "availability", "must be in stock, out of stock, preorder or backorder"))
    if errors:
        return None, errors
    return Product(
        sku=sku, title=title, link=link, image_link=image_link or "", price=float(price),
        sale_price=float(sale_price), currency=currency, availability=availability,
        description=plain_text(get("description"), MAX_DESCRIPTION),
        product_type=plain_text(get("product_type"), 500), brand=plain_text(get("brand"), 200),
        item_group_id=plain_text(get("item_group_id"), 100),
    ), []
