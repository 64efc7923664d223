"""Advertisers' product catalogs: feed parsing and validation, import, and the serving cache.

Feeds use Google Merchant / Criteo field names (id, title, description, link, image_link, price,
sale_price, currency, availability, product_type, brand, item_group_id) in CSV, TSV or JSON. Every
row is checked on its own: a bad row is reported (row number, field, reason) and skipped, the good
rows are kept. Titles are reduced to plain text here; escaping for HTML happens at rendering.

ClickHouse holds the catalog (one row per product version, newest wins). Serving reads it from an
in-process cache; an import bumps a version number in Redis, and every process reloads the
advertiser's catalog the next time it checks that number, so no restart is needed.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from tracker.clickhouse import ClickHouse
from tracker.errors import FeedError
from tracker.events import CURRENCIES, SKU_RE
from tracker.schema import PRODUCTS_COLUMNS

MAX_TITLE = 300
MAX_DESCRIPTION = 5000
MAX_URL = 2048
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


@dataclass
class ImportReport:
    accepted: int = 0
    removed: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Ids of every row, good or rejected: a full import must not delete a product only because
    # its row was rejected this time (a typo in a price should not take it off the ads).
    seen: set[str] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "removed": self.removed, "rejected": len(self.errors),
                "errors": [asdict(e) for e in self.errors]}


def plain_text(value: str, limit: int) -> str:
    """Strip tags and entities and collapse whitespace: feed text is shown as text, never markup."""
    text = html.unescape(_TAG.sub(" ", value))
    text = "".join(c for c in text if c.isprintable() or c == " ")
    return _SPACE.sub(" ", text).strip()[:limit]


def _url(value: str) -> str | None:
    value = value.strip()
    if not value or len(value) > MAX_URL or not re.match(r"^https?://[^\s/?#]+", value, re.IGNORECASE):
        return None
    if re.search(r"[\x00-\x20\x7f<>\"'\\]", value):
        return None
    return value


def _price(value: str) -> tuple[Decimal | None, str]:
    match = _PRICE.match(value or "")
    if not match:
        return None, ""
    try:
        amount = Decimal(match.group(1).replace(",", "."))
    except InvalidOperation:
        return None, ""
    return amount, (match.group(2) or "").upper()


def validate_row(raw: dict, row_number: int, default_currency: str = "") -> tuple[Product | None, list[RowError]]:
    """Check one feed row; returns the product or the reasons it was rejected."""
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
    link = _url(get("link"))
    if link is None:
        errors.append(RowError(row_number, "link", "missing or not an http(s) URL"))
    image = get("image_link")
    image_link = _url(image) if image.strip() else ""
    if image_link is None:
        errors.append(RowError(row_number, "image_link", "not an http(s) URL"))
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


def read_feed(data: bytes, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV, TSV or JSON feed as ``(row_number, fields)``; format guessed when not given.

    Bytes that are not UTF-8 are kept as surrogates so the row that holds them is rejected alone.
    """
    text = data.decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    fmt = (fmt or "").lower() or _guess_format(text)
    if fmt == "json":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise FeedError(f"JSON feed does not parse: {exc}") from exc
        items = doc.get("products", doc.get("items")) if isinstance(doc, dict) else doc
        if not isinstance(items, list):
            raise FeedError("JSON feed must be a list of products or an object with a 'products' list")
        for number, item in enumerate(items, start=1):
            yield number, item if isinstance(item, dict) else {}
        return
    if fmt not in ("csv", "tsv"):
        raise FeedError(f"unknown feed format {fmt!r} (csv, tsv or json)")
    csv.field_size_limit(1_000_000)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    if not reader.fieldnames or "id" not in [f.strip().lower() for f in reader.fieldnames]:
        raise FeedError("feed header must name at least the columns id, title, link, price")
    try:
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            yield number, {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    except csv.Error as exc:
        raise FeedError(f"CSV feed does not parse at line {reader.line_num}: {exc}") from exc


def _guess_format(text: str) -> str:
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        return "json"
    first = text.split("\n", 1)[0]
    return "tsv" if first.count("\t") > first.count(",") else "csv"


def parse_feed(data: bytes, fmt: str | None = None, default_currency: str = "",
               progress=None) -> tuple[list[Product], ImportReport]:
    """Validate a whole feed; duplicate ids keep the first row and report the others.

    ``progress(rows_done)`` is called every 1,000 rows, for the CLI's progress bar.
    """
    report = ImportReport()
    products: dict[str, Product] = {}
    for number, raw in read_feed(data, fmt):
        if progress is not None and number % 1000 == 0:
            progress(number)
        raw_id = raw.get("id")
        if isinstance(raw_id, str | int) and str(raw_id).strip():
            report.seen.add(str(raw_id).strip())
        product, errors = validate_row(raw, number, default_currency)
        if errors:
            report.errors.extend(errors)
        elif product.sku in products:
            report.errors.append(RowError(number, "id", f"duplicate id {product.sku!r} (first row kept)"))
        else:
            products[product.sku] = product
    if progress is not None:
        progress(len(products) + len(report.errors))
    return list(products.values()), report


def store_products(ch: ClickHouse, advertiser: str, products: Iterable[Product], full: bool = False,
                   keep: set[str] | frozenset[str] = frozenset()) -> tuple[int, int]:
    """Write a catalog version; with ``full``, products missing from it (and not in ``keep``) are marked deleted."""
    now = datetime.now(UTC).replace(tzinfo=None)
    version = time.time_ns()
    products = list(products)
    rows = [
        (advertiser, p.sku, p.title, p.description, p.link, p.image_link, p.price, p.sale_price, p.currency,
         p.availability, p.product_type, p.brand, p.item_group_id, 0, version, now)
        for p in products
    ]
    removed = 0
    if full:
        present = {p.sku for p in products} | set(keep)
        current = ch.execute(
            "SELECT sku FROM products FINAL WHERE advertiser = %(a)s AND deleted = 0", {"a": advertiser}
        )
        gone = [r[0] for r in current if r[0] not in present]
        rows += [(advertiser, sku, "", "", "", "", 0.0, 0.0, "", "", "", "", "", 1, version, now) for sku in gone]
        removed = len(gone)
    ch.insert("products", PRODUCTS_COLUMNS, rows)
    return len(products), removed


def load_products(ch: ClickHouse, advertiser: str) -> dict[str, Product]:
    rows = ch.execute(
        "SELECT sku, title, link, image_link, price, sale_price, currency, availability, description, "
        "product_type, brand, item_group_id FROM products FINAL "
        "WHERE advertiser = %(a)s AND deleted = 0 ORDER BY sku",
        {"a": advertiser},
    )
    return {r[0]: Product(*r) for r in rows}


def catalog_version_key(advertiser: str) -> str:
    return "catalog:ver:{%s}" % advertiser


class CatalogCache:
    """Each process's in-memory copy of the catalogs, refreshed when an import bumps the version.

    The version is checked at most every ``check_seconds`` per advertiser, so serving an ad costs no
    database call in the common case; a failed reload keeps serving the copy it has.
    """

    def __init__(self, ch_factory, redis_factory, check_seconds: float = 5.0) -> None:
        self._ch = ch_factory
        self._redis = redis_factory
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float, dict[str, Product]]] = {}

    def get(self, advertiser: str) -> dict[str, Product]:
        entry = self._entries.get(advertiser)
        now = time.monotonic()
        if entry is not None and now - entry[1] < self.check_seconds:
            return entry[2]
        with self._lock:
            entry = self._entries.get(advertiser)
            if entry is not None and now - entry[1] < self.check_seconds:
                return entry[2]
            try:
                version = (self._redis().get(catalog_version_key(advertiser)) or b"0").decode()
            except Exception:  # noqa: BLE001 - Redis trouble must not break serving
                version = entry[0] if entry else "?"
            if entry is not None and entry[0] == version:
                self._entries[advertiser] = (version, now, entry[2])
                return entry[2]
            try:
                products = load_products(self._ch(), advertiser)
            except Exception:  # noqa: BLE001 - keep the old copy when the database is away
                if entry is None:
                    raise
                self._entries[advertiser] = (entry[0], now, entry[2])
                return entry[2]
            self._entries[advertiser] = (version, now, products)
            return products

    def invalidate(self, advertiser: str | None = None) -> None:
        with self._lock:
            if advertiser is None:
                self._entries.clear()
            else:
                self._entries.pop(advertiser, None)


def bump_version(redis_client, advertiser: str) -> None:
    """Tell every serving process that this advertiser's catalog changed."""
    redis_client.incr(catalog_version_key(advertiser))
