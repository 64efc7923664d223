"""Google Merchant feeds (RSS 2.0 and Atom with the g: namespace) and gzip-compressed feeds.

They go through the same row checks and import report as CSV: the sample feed in docs/examples and
its CSV twin import to the same catalog with the same report.
"""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adserver.catalog.feed import parse_feed
from adserver.catalog.merchant_xml import read_merchant_xml
from adserver.catalog.storage import load_products
from tests.adserver.conftest import feed_bytes, product
from tracker.errors import FeedError

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
DOMAINS = ("shop.example",)


def rss(*items: str, namespace: bool = True) -> bytes:
    xmlns = ' xmlns:g="http://base.google.com/ns/1.0"' if namespace else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"{xmlns}><channel><title>Shop</title>'
            f'<link>https://shop.example/</link>{"".join(items)}</channel></rss>').encode()


def item(sku: str, price: str = "10.00 CNY", **fields: str) -> str:
    values = {"id": sku, "title": f"Product {sku}", "link": f"https://shop.example/p/{sku}", "price": price, **fields}
    return "<item>" + "".join(f"<g:{k}>{v}</g:{k}>" for k, v in values.items()) + "</item>"


def atom(*entries: str) -> bytes:
    return ('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">'
            f'<title>Shop</title><link href="https://shop.example/"/>{"".join(entries)}</feed>').encode()


def skus(ch, advertiser: str) -> list[str]:
    return sorted(load_products(ch, advertiser))


# --- parsing ---------------------------------------------------------------------------------------


def test_rss_fields_map_onto_the_catalog():
    feed = rss(item("A1", "12.99 USD", sale_price="9.99 USD", availability="in_stock", brand="Acme",
                    image_link="https://cdn.example/a1.jpg", item_group_id="G1", product_type="Home &gt; Tea",
                    description="<![CDATA[<p>Fine <b>tea</b></p>]]>"),
               item("A2", "5 USD", availability="out of stock", google_product_category="Apparel",
                    additional_image_link="https://cdn.example/a2-1.jpg"))
    products, report = parse_feed(feed, domains=DOMAINS)
    assert report.errors == []
    first, second = products
    assert (first.sku, first.title, first.link, first.image_link) == (
        "A1", "Product A1", "https://shop.example/p/A1", "https://cdn.example/a1.jpg")
    assert (first.price, first.sale_price, first.currency, first.availability) == (12.99, 9.99, "USD", "in stock")
    assert (first.brand, first.item_group_id, first.product_type, first.description) == (
        "Acme", "G1", "Home > Tea", "Fine tea")
    # Fallbacks: the first additional image without an image_link, the Google category without a product type.
    assert (second.image_link, second.product_type, second.availability) == (
        "https://cdn.example/a2-1.jpg", "Apparel", "out of stock")


def test_plain_rss_elements_and_only_the_items_own_fields():
    """RSS title/link/description stand in for missing g: ones; g:shipping's g:price is not the price."""
    feed = rss("<item><g:id>B1</g:id><title>Plain title</title><link>https://shop.example/p/B1</link>"
               "<description>Plain &amp; simple</description>"
               "<g:shipping><g:country>US</g:country><g:price>4.95 USD</g:price></g:shipping>"
               "<g:price>20.00 USD</g:price></item>",
               "<item><g:id>B2</g:id><title>Ignored</title><g:title>Merchant title</g:title>"
               "<g:link>https://shop.example/p/B2</g:link><g:shipping><g:price>1.00 USD</g:price></g:shipping></item>")
    products, report = parse_feed(feed, default_currency="CNY", domains=DOMAINS)
    assert [(p.sku, p.title, p.link, p.price, p.description) for p in products] == [
        ("B1", "Plain title", "https://shop.example/p/B1", 20.0, "Plain & simple")]
    assert [(e.row, e.field) for e in report.errors] == [(2, "price")]  # B2's only price is its shipping's


def test_atom_entries_with_link_href():
    feed = atom('<entry><g:id>C1</g:id><title>Atom product</title><link rel="alternate" '
                'href="https://shop.example/p/C1"/><summary>From the summary</summary><g:price>3.50 EUR</g:price>'
                '<g:availability>backorder</g:availability></entry>',
                '<entry><g:id>C2</g:id><title>No link</title><link rel="self" href="https://shop.example/x"/>'
                '<g:price>3 EUR</g:price></entry>')
    products, report = parse_feed(feed, domains=DOMAINS)
    assert [(p.sku, p.title, p.link, p.price, p.currency, p.availability, p.description) for p in products] == [
        ("C1", "Atom product", "https://shop.example/p/C1", 3.5, "EUR", "backorder", "From the summary")]
    assert [(e.row, e.field) for e in report.errors] == [(2, "link")]


def test_rows_are_numbered_by_item_and_checked_like_csv():
    feed = rss(item("D1"), item("D2", "abc"), item("D1"), item("bad id", link="https://shop.example/p/x"),
               item("D5", link="javascript:alert(1)"))
    products, report = parse_feed(feed, domains=DOMAINS)
    assert [p.sku for p in products] == ["D1"]
    assert [(e.row, e.field) for e in report.errors] == [
        (2, "price"), (2, "currency"), (3, "id"), (4, "id"), (5, "link")]
    assert report.seen == {"D1", "D2", "bad id", "D5"}


@pytest.mark.parametrize(("data", "message"), [
    (rss(item("E1"), namespace=False), "does not parse at line"),  # g: prefix never declared
    (rss(item("E1"))[:-30], "does not parse"),  # truncated download
    (b"<html><body>Not found</body></html>", "must be RSS 2.0 (<rss>) or Atom (<feed>)"),
    (b"<?xml version='1.0'?>", "does not parse"),
    (b"<rss><channel/></rss><rss/>", "does not parse"),  # two documents
    (b'<?xml version="1.0" encoding="x-bogus"?><rss/>', "encoding we do not know"),
    (b'<?xml version="1.0" encoding="utf-16"?><rss/>', "does not parse"),  # declared, but it is not
])
def test_broken_xml_is_refused_as_a_whole(data, message):
    with pytest.raises(FeedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_feed(data)


def test_other_encodings_the_document_declares():
    def encoded(title: str, encoding: str) -> bytes:
        text = rss(item("L1", title=title)).decode()
        return text.replace('encoding="UTF-8"', f'encoding="{encoding}"').encode(encoding)

    for title, encoding in (("Café crème", "ISO-8859-1"), ("青瓷茶杯", "UTF-16"), ("Tea", "US-ASCII")):
        products, report = parse_feed(encoded(title, encoding), default_currency="CNY")
        assert [(p.sku, p.title) for p in products] == [("L1", title)], encoding


def test_format_is_detected_from_content_or_forced():
    feed = rss(item("F1"))
    assert [p.sku for p in parse_feed(b"\n  " + feed, None)[0]] == ["F1"]
    assert [p.sku for p in parse_feed(feed, "xml")[0]] == ["F1"]
    with pytest.raises(FeedError, match="does not parse"):
        parse_feed(feed_bytes([product("F2")]), "xml")  # a CSV declared as XML
    with pytest.raises(FeedError, match="header must name"):
        parse_feed(feed, "csv")  # an XML feed declared as CSV


def test_items_leave_memory_as_they_are_read():
    """A feed of 20,000 items is read one item at a time: memory stays far below the document's size."""
    feed = rss(*(item(f"M{i}", description="x" * 400) for i in range(20_000)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_merchant_xml(feed))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert len(feed) > 10_000_000 and peak < len(feed) / 10


_PIECES = st.sampled_from(["<rss>", "</rss>", "<channel>", "</channel>", "<item>", "</item>", "<g:id>", "</g:id>",
                           '<rss xmlns:g="http://base.google.com/ns/1.0">', "<feed>", "<entry>", "&amp;", "&x;",
                           "<![CDATA[", "]]>", "<!DOCTYPE r>", "<?xml version='1.0'?>", "A1", "<link href='x'/>"])


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=30), packed=st.booleans())
def test_any_xml_like_input_is_read_or_refused_with_a_feed_error(pieces, packed):
    data = "".join(pieces).encode("utf-8", "surrogatepass")
    data = gzip.compress(b"<" + data) if packed else b"<" + data
    try:
        products, report = parse_feed(data, default_currency="CNY")
    except FeedError as exc:
        assert str(exc)
    else:  # whatever was read went through the row checks
        assert all(p.sku and p.title and p.link.startswith("http") for p in products)
        assert all(error.row >= 1 and error.reason for error in report.errors)


# --- gzip ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "xml"])
def test_gzip_compressed_feeds_of_any_format(fmt):
    data = rss(item("G1"), item("G2")) if fmt == "xml" else feed_bytes([product("G1"), product("G2")], fmt)
    products, report = parse_feed(gzip.compress(data), None, domains=DOMAINS)
    assert [p.sku for p in products] == ["G1", "G2"] and report.errors == []
    two_members = gzip.compress(data[:40]) + gzip.compress(data[40:])
    assert [p.sku for p in parse_feed(two_members, None, domains=DOMAINS)[0]] == ["G1", "G2"]


def test_truncated_or_corrupt_gzip_is_refused():
    packed = gzip.compress(feed_bytes([product(f"H{i}") for i in range(200)]))
    with pytest.raises(FeedError, match="truncated"):
        parse_feed(packed[: len(packed) // 2])
    corrupt = packed[:20] + bytes(b ^ 0xFF for b in packed[20:40]) + packed[40:]
    with pytest.raises(FeedError, match="corrupt"):
        parse_feed(corrupt)


# --- the sample feed and its CSV twin, through the CLI on real servers ---------------------------


def test_sample_merchant_feed_and_its_csv_twin_import_alike(runner, create_advertiser, ch):
    create_advertiser("shop-xml")
    create_advertiser("shop-csv")
    code_xml, out_xml = runner("import-feed", "shop-xml", str(EXAMPLES / "merchant-feed.xml"))
    code_csv, out_csv = runner("import-feed", "shop-csv", str(EXAMPLES / "merchant-feed.csv"))
    assert code_xml == code_csv == 0, out_xml + out_csv
    assert "imported 4 products, rejected 2 rows/fields, removed 0" in out_xml
    # The same report: CSV rows count the header line, XML rows count items.
    csv_lines = [line for line in out_csv.splitlines() if line.startswith("row ")]
    xml_lines = [line for line in out_xml.splitlines() if line.startswith("row ")]
    renumbered = [f"row {int(line.split()[1].rstrip(':')) - 1}: {line.split(': ', 1)[1]}" for line in csv_lines]
    assert xml_lines == renumbered == ["row 5: price: must be a positive number like 129.90 or '129.90 CNY'",
                                       "row 6: id: missing"]
    assert out_xml.splitlines()[-1] == out_csv.splitlines()[-1]
    from_xml, from_csv = load_products(ch, "shop-xml"), load_products(ch, "shop-csv")
    assert sorted(from_xml) == ["RUN-100", "RUN-101", "TEA-001", "TEA-002"]
    assert from_xml == from_csv
    assert from_xml["TEA-002"].display_price == 39.0 and not from_xml["RUN-101"].in_stock


def test_import_feed_reads_compressed_and_forced_xml_files(runner, create_advertiser, ch, tmp_path):
    create_advertiser("shop-gz")
    packed = tmp_path / "catalog.xml.gz"
    packed.write_bytes(gzip.compress((EXAMPLES / "merchant-feed.xml").read_bytes()))
    code, out = runner("import-feed", "shop-gz", str(packed))
    assert code == 0 and "imported 4 products" in out, out
    odd_name = tmp_path / "export.txt"
    odd_name.write_bytes(rss(item("X9")))
    code, out = runner("import-feed", "shop-gz", str(odd_name), "--format", "xml")
    assert code == 0 and "imported 1 products" in out, out
    assert "X9" in skus(ch, "shop-gz")


def test_upload_over_http_takes_xml(client, runner, create_advertiser, ch):
    create_advertiser("shop-up")
    code, out = runner("create-token", "shop-up")
    token = out.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    resp = client.put("/api/v1/feeds/shop-up", data=gzip.compress(rss(item("U1"), item("U2", "x"))),
                      headers=headers)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["accepted"] == 1 and resp.get_json()["errors"][0]["row"] == 2
    resp = client.put("/api/v1/feeds/shop-up?format=xml", data=atom(), headers=headers)
    assert resp.status_code == 400 and "no valid product" in resp.get_json()["message"]
    assert skus(ch, "shop-up") == ["U1"]
