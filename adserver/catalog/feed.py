"""Reading a feed: CSV, TSV, JSON or Merchant XML rows (gzip or not), validated one by one into products and an
import report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from adserver.catalog.inflate import inflate
from adserver.catalog.merchant_xml import looks_like_xml, read_merchant_xml
from adserver.catalog.product import Product, RowError, validate_row
from tracker.errors import FeedError


@dataclass
class ImportReport:
    accepted: int = 0
    removed: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Ids of every row, good or rejected: a full import must not delete a product only because
    # its row was rejected this time (a typo in a price should not take it off the ads).
    seen: set[str] = field(default_factory=set, repr=False)
    images: dict | None = None  # the image resize run after storing, when there was one (adserver.catalog.images)

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "removed": self.removed, "rejected": len(self.errors),
                "errors": [asdict(e) for e in self.errors],
                **({"images": self.images} if self.images is not None else {})}


def read_feed(data: bytes, fmt: str | None = None) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV, TSV, JSON or XML feed as ``(row_number, fields)``; format guessed when not given.

    Gzip input is inflated first, whatever the format. Bytes that are not UTF-8 are kept as surrogates
    so the row that holds them is rejected alone (XML excepted: its parser refuses the whole document).
    """
    data = inflate(data)
    if (fmt or "").lower() == "xml" or (not fmt and looks_like_xml(data)):
        yield from read_merchant_xml(data)
        return
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
        raise FeedError(f"unknown feed format {fmt!r} (csv, tsv, json or xml)")
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
               progress: Callable[[int], object] | None = None,
               domains: tuple[str, ...] | None = None) -> tuple[list[Product], ImportReport]:
    """Validate a whole feed; duplicate ids keep the first row and report the others.

    ``progress(rows_done)`` is called every 1,000 rows, for the CLI's progress bar. With ``domains``,
    links off the advertiser's landing domains are rejected rows.
    """
    report = ImportReport()
    products: dict[str, Product] = {}
    for number, raw in read_feed(data, fmt):
        if progress is not None and number % 1000 == 0:
            progress(number)
        raw_id = raw.get("id")
        if isinstance(raw_id, str | int) and str(raw_id).strip():
            report.seen.add(str(raw_id).strip())
        product, errors = validate_row(raw, number, default_currency, domains)
        if errors:
            report.errors.extend(errors)
        elif product.sku in products:
            report.errors.append(RowError(number, "id", f"duplicate id {product.sku!r} (first row kept)"))
        else:
            products[product.sku] = product
    if progress is not None:
        progress(len(products) + len(report.errors))
    return list(products.values()), report
