"""Google Merchant Center feeds as stores publish them: RSS 2.0 or Atom with the ``g:`` namespace.

Each ``<item>`` (RSS) or ``<entry>`` (Atom) becomes a row with the CSV feed's column names, so it is
checked by the same :func:`adserver.catalog.product.validate_row` and reported the same way; a row's
number is the item's position in the feed (1 for the first). Merchant fields map onto the catalog's:
``g:title``/``title``, ``g:link``/``link`` (Atom: ``<link href>``), ``g:description``/``description``
(Atom: ``summary``), ``g:image_link`` (else the first ``g:additional_image_link``), ``g:product_type``
(else ``g:google_product_category``), ``g:price`` and ``g:sale_price`` ("12.99 USD"), ``g:availability``,
``g:brand``, ``g:item_group_id``. Other elements are ignored; only an item's direct children count
(``g:shipping`` holds a ``g:price`` of its own).

Feeds come from outside, so the parser is defusedxml's and any ``<!DOCTYPE>`` is refused: a product
feed needs no DTD, and refusing them all rules out external entities (file or URL reads), DTD
retrieval and entity expansion bombs before any entity is declared. The document is parsed as a
stream, each item dropped once read, so a large feed never becomes one big tree in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from tracker.errors import FeedError

GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"

# Merchant element -> feed column; the first element present wins for a column (fallbacks after).
_G_FIELDS = {
    "id": "id", "title": "title", "link": "link", "description": "description",
    "image_link": "image_link", "additional_image_link": "additional_image_link",
    "price": "price", "sale_price": "sale_price", "availability": "availability", "brand": "brand",
    "product_type": "product_type", "google_product_category": "google_product_category",
    "item_group_id": "item_group_id",
}
# Plain RSS / Atom elements used when the item has no g: element for the column.
_PLAIN_FIELDS = {"title": "title", "link": "link", "description": "description", "summary": "description"}
_FALLBACKS = (("image_link", "additional_image_link"), ("product_type", "google_product_category"))


def looks_like_xml(data: bytes) -> bool:
    """True when the feed's first character (after a byte order mark and spaces) opens a tag."""
    for bom, encoding in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return data[2:64].decode(encoding, "ignore").lstrip()[:1] == "<"
    return data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"<"


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _text(element: Element) -> str:
    return "".join(element.itertext())


def _row(item: Element) -> dict[str, str]:
    """The item's fields under the CSV feed's column names."""
    merchant: dict[str, str] = {}
    plain: dict[str, str] = {}
    for child in item:
        if not isinstance(child.tag, str):
            continue
        namespace, local = _split(child.tag)
        if namespace == GOOGLE_NS and local in _G_FIELDS:
            merchant.setdefault(_G_FIELDS[local], _text(child))
        elif namespace in ("", ATOM_NS) and local in _PLAIN_FIELDS:
            column = _PLAIN_FIELDS[local]
            if namespace == ATOM_NS and local == "link":
                if child.get("rel", "alternate") == "alternate" and child.get("href"):
                    plain.setdefault(column, child.get("href", ""))
            else:
                plain.setdefault(column, _text(child))
    row = {**plain, **{k: v for k, v in merchant.items() if v.strip()}}
    for column, fallback in _FALLBACKS:
        if not row.get(column, "").strip() and row.get(fallback, "").strip():
            row[column] = row[fallback]
        row.pop(fallback, None)
    return row


def read_merchant_xml(data: bytes) -> Iterator[tuple[int, dict]]:
    """Rows of an RSS 2.0 or Atom Merchant feed as ``(item_number, fields)``.

    Raises :class:`FeedError` for a document that is not well-formed, holds a DTD, or whose root is
    neither ``<rss>`` nor ``<feed>``; the message never quotes the document.
    """
    # Generated feeds often start with a stray newline, which XML forbids before the declaration.
    data = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    stack: list[Element] = []
    item_depth = 0
    number = 0
    try:
        for event, element in iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True,
                                        forbid_entities=True, forbid_external=True):
            if event == "start":
                if not stack:
                    item_depth = _item_depth(element)
                stack.append(element)
                continue
            stack.pop()
            if len(stack) + 1 != item_depth:
                continue  # an item's field (read with its item) or the root's channel
            if _split(element.tag)[1] == ("item" if item_depth == 3 else "entry"):
                if item_depth == 2 or _split(stack[-1].tag)[1] == "channel":
                    number += 1
                    yield number, _row(element)
            # Whatever ends at the items' depth leaves the tree: memory holds one item at a time.
            element.clear()
            stack[-1].remove(element)
    except DefusedXmlException as exc:
        raise FeedError(f"XML feed refused: it declares a DTD or entities ({type(exc).__name__}), which a product "
                        "feed never needs and which can read files or expand without bound; nothing imported",
                        "unsafe_xml") from None
    except LookupError:
        raise FeedError("XML feed declares an encoding we do not know (UTF-8 is what Merchant feeds use); "
                        "nothing imported") from None
    except ParseError as exc:
        line, column = exc.position
        raise FeedError(f"XML feed does not parse at line {line}, column {column + 1} ({_reason(exc)}); "
                        "nothing imported") from None


def _item_depth(root: Element) -> int:
    """Depth of the product elements under this root: rss/channel/item or feed/entry."""
    namespace, local = _split(root.tag)
    if local == "rss" and namespace == "":
        return 3
    if local == "feed" and namespace in ("", ATOM_NS):
        return 2
    shown = local if local.isidentifier() else "?"
    raise FeedError(f"an XML feed must be RSS 2.0 (<rss>) or Atom (<feed>), not <{shown[:40]}>; nothing imported")


def _reason(exc: ParseError) -> str:
    """expat's reason without the position it appends (given separately)."""
    return str(exc).split(":", 1)[0][:100]
