"""Product feeds: parsing and validation (``parse_feed``) and the ``import-feed`` CLI on real servers.

A bad row is reported (row number, field, reason) and skipped while the good rows are imported; a
feed that cannot be read at all is refused as a whole and the catalog stays as it was.
"""

from __future__ import annotations

import json

import pytest

from adserver.catalog.feed import parse_feed
from adserver.catalog.storage import load_products
from adserver.demo import demo_products
from tests.adserver.conftest import feed_bytes, product
from tracker.errors import FeedError

GOOD = [
    product("A1", "青瓷茶具套装 Celadon Tea Set", "368.00", item_group_id="TEA", brand="Longquan"),
    product("A2", "Glass Teapot 玻璃茶壶 600ml", "89.5", availability="out_of_stock"),
    product("A3", "Running Shoes", "129.90 CNY", sale_price="99.00", currency=""),
]


def errors_of(report) -> list[tuple[int, str]]:
    return [(e.row, e.field) for e in report.errors]


def catalog(ch, advertiser: str = "demo") -> dict:
    return {sku: (p.title, p.price, p.link) for sku, p in load_products(ch, advertiser).items()}


# --- parse_feed ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json"])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "guessed"])
def test_feed_formats_with_chinese_and_english_titles(fmt, declared):
    products, report = parse_feed(feed_bytes(GOOD, fmt), fmt if declared else None)
    assert report.errors == []
    by_sku = {p.sku: p for p in products}
    assert list(by_sku) == ["A1", "A2", "A3"]
    assert by_sku["A1"].title == "青瓷茶具套装 Celadon Tea Set"
    assert by_sku["A1"].price == 368.0
    assert by_sku["A1"].item_group_id == "TEA"
    assert by_sku["A1"].brand == "Longquan"
    assert by_sku["A1"].link == "https://shop.example/p/A1"
    assert by_sku["A2"].title == "Glass Teapot 玻璃茶壶 600ml"
    assert by_sku["A2"].availability == "out of stock"
    assert not by_sku["A2"].in_stock
    assert by_sku["A3"].currency == "CNY"  # from the price text
    assert by_sku["A3"].display_price == 99.0


def test_json_feed_wrapped_in_an_object_with_numbers():
    doc = {"products": [{"id": "N1", "title": "Number price", "link": "https://shop.example/n1", "price": 12.5,
                         "currency": "EUR"}]}
    products, report = parse_feed(json.dumps(doc).encode(), "json")
    assert report.errors == []
    assert [(p.sku, p.price, p.currency) for p in products] == [("N1", 12.5, "EUR")]


def test_csv_with_bom_and_crlf_lines():
    data = "\ufeff" + feed_bytes(GOOD).decode().replace("\n", "\r\n")
    products, report = parse_feed(data.encode("utf-8"))
    assert report.errors == []
    assert [p.sku for p in products] == ["A1", "A2", "A3"]


def test_default_currency_fills_a_missing_one():
    rows = [product("C1", currency="")]
    assert parse_feed(feed_bytes(rows), "csv", default_currency="USD")[0][0].currency == "USD"
    products, report = parse_feed(feed_bytes(rows), "csv")
    assert products == []
    assert errors_of(report) == [(2, "currency")]


@pytest.mark.parametrize("price", ["abc", "-5", "0", "0.00", "1e9999", "NaN", "Infinity", "", "12.5.3",
                                   "1000000000", "1,299", "¥12"])
def test_bad_prices_are_reported(price):
    products, report = parse_feed(feed_bytes([product("OK1"), product("P1", price=price), product("OK2")]), "csv")
    assert [p.sku for p in products] == ["OK1", "OK2"]
    assert errors_of(report) == [(3, "price")]
    assert "positive number" in report.errors[0].reason


@pytest.mark.parametrize("price, expected", [("129.90", 129.9), ("129,90", 129.9), (" 7 ", 7.0), ("15.00 USD", 15.0),
                                             ("0.01", 0.01)])
def test_good_prices(price, expected):
    products, report = parse_feed(feed_bytes([product("P1", price=price, currency="")]), "csv", default_currency="CNY")
    assert report.errors == []
    assert products[0].price == pytest.approx(expected)


def hostile_csv() -> bytes:
    """A CSV feed with good rows among bad ones; row numbers count the header as row 1."""
    rows = [
        product("G1", "Good 好商品", "10.00"),                                            # row 2
        product("", "No id"),                                                             # row 3
        product("P1", price="abc"),                                                       # row 4
        product("P2", price="-5"),                                                        # row 5
        product("P3", price="0"),                                                         # row 6
        product("P4", price="1e9999"),                                                    # row 7
        product("H1", "<b>Bold</b> <i>tea</i> &amp; cups<script>alert(1)</script>"),     # row 8
        product("L1", description="x" * 10_001),                                          # row 9
        product("U1", "BADBYTES here"),                                                   # row 10
        product("G1", "Second G1"),                                                       # row 11
        product("J1", link="javascript:alert(1)"),                                        # row 12
        product("T1", "<img src=x onerror=alert(1)>"),                                    # row 13
        product("G2", "降噪耳机 Headphones", "1299.00"),                                  # row 14
    ]
    return feed_bytes(rows).replace(b"BADBYTES", b"\xff\xfe\xc3(")


EXPECTED_ERRORS = [
    (3, "id", "missing"),
    (4, "price", "positive number"),
    (5, "price", "positive number"),
    (6, "price", "positive number"),
    (7, "price", "positive number"),
    (9, "description", "longer than 10000"),
    (10, "title", "invalid UTF-8"),
    (11, "id", "duplicate"),
    (12, "link", "http(s) URL"),
    (13, "title", "missing"),
]


def test_hostile_rows_are_reported_and_good_rows_kept():
    products, report = parse_feed(hostile_csv(), "csv")
    by_sku = {p.sku: p for p in products}
    assert list(by_sku) == ["G1", "H1", "G2"]
    assert by_sku["G1"].title == "Good 好商品"  # the first of the duplicates is kept
    assert by_sku["H1"].title == "Bold tea & cups alert(1)"
    assert "<" not in by_sku["H1"].title
    assert by_sku["G2"].title == "降噪耳机 Headphones"
    assert [(e.row, e.field) for e in report.errors] == [(r, f) for r, f, _ in EXPECTED_ERRORS]
    for error, (_, _, reason) in zip(report.errors, EXPECTED_ERRORS):
        assert reason in error.reason
    assert "'G1'" in report.errors[7].reason


def test_invalid_utf8_in_a_json_feed_rejects_only_that_row():
    rows = [product("J1"), product("J2", "MARK"), product("J3")]
    data = feed_bytes(rows, "json").replace(b"MARK", b"caf\xe9")  # latin-1, not UTF-8
    products, report = parse_feed(data, "json")
    assert [p.sku for p in products] == ["J1", "J3"]
    assert errors_of(report) == [(2, "title")]


def test_every_field_is_limited():
    long_title = "茶" * 400
    products, report = parse_feed(feed_bytes([product("T1", long_title)]), "csv")
    assert report.errors == []
    assert products[0].title == "茶" * 300
    huge = "y" * 20_000
    for field in ("title", "link", "image_link", "brand", "product_type"):
        products, report = parse_feed(feed_bytes([product("T1", **{field: huge})]), "csv")
        assert products == [], field
        assert errors_of(report) == [(2, field)]


@pytest.mark.parametrize("data, fmt, message", [
    (b'[{"id": "X1", "title": ', "json", "does not parse"),
    (b'{"items": "nope"}', "json", "must be a list"),
    (b"sku,title,link,price\nX1,Tea,https://shop.example/x1,10\n", "csv", "id"),
    (b"", "csv", "id"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "csv", "id"),
    (b"<html><body></body></html>", None, "must be RSS 2.0"),
    (b"id,title", "xml", "does not parse"),
    (b"id,title", "yaml", "unknown feed format"),
])
def test_unreadable_feed_is_a_feed_error(data, fmt, message):
    with pytest.raises(FeedError) as excinfo:
        parse_feed(data, fmt)
    assert message in str(excinfo.value)


# --- the import-feed CLI ----------------------------------------------------------------------------


@pytest.fixture
def shop(create_advertiser):
    create_advertiser("shop")
    return "shop"


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json"])
def test_cli_imports_each_format(shop, import_feed, ch, fmt):
    code, out = import_feed(shop, GOOD, fmt)
    assert code == 0, out
    assert "imported 3 products, rejected 0" in out
    stored = catalog(ch, shop)
    assert stored["A1"] == ("青瓷茶具套装 Celadon Tea Set", 368.0, "https://shop.example/p/A1")
    assert stored["A2"][0] == "Glass Teapot 玻璃茶壶 600ml"
    assert set(stored) == {"A1", "A2", "A3"}


def test_cli_reports_each_bad_row_and_imports_the_good_ones(shop, import_feed, ch):
    code, out = import_feed(shop, hostile_csv())
    assert code == 0, out
    for row, field, reason in EXPECTED_ERRORS:
        line = next((line for line in out.splitlines() if line.startswith(f"row {row}: {field}: ")), None)
        assert line is not None, (row, field, out)
        assert reason in line
    assert "imported 3 products, rejected 10" in out
    assert set(catalog(ch, shop)) == {"G1", "H1", "G2"}
    assert catalog(ch, shop)["G1"][0] == "Good 好商品"


@pytest.mark.parametrize("data, suffix, message", [
    (b'[{"id": "X1", "title": "broken', "json", "JSON feed does not parse"),
    (b"sku,title,link,price\nX1,Tea,https://shop.example/x1,10\n", "csv", "columns id"),
    (b"\x00\x01\x02garbage", "csv", "columns id"),
])
def test_cli_refuses_an_unreadable_feed_and_keeps_the_catalog(demo_loaded, import_feed, ch, data, suffix, message):
    before = catalog(ch)
    assert len(before) == 60
    for full in (False, True):
        code, out = import_feed("demo", data, suffix, full=full)
        assert code != 0
        assert "error (feed_error)" in out
        assert message in out
        assert catalog(ch) == before


def test_cli_import_of_only_bad_rows_fails_and_keeps_the_catalog(demo_loaded, import_feed, ch):
    before = catalog(ch)
    for full in (False, True):  # a full import of nothing would have deleted everything
        code, out = import_feed("demo", [product("X1", price="abc"), product("D1001", "Overwrite?", price="-1")],
                                full=full)
        assert code != 0
        assert "no valid product" in out
        assert "row 2: price:" in out and "row 3: price:" in out  # the operator sees what to fix
        assert catalog(ch) == before


def test_cli_full_keeps_products_whose_row_was_rejected(demo_loaded, import_feed, ch):
    rows = [p for p in demo_products("https://store.example") if p["id"] != "D1002"]
    rows = [dict(p, price="not a price") if p["id"] == "D1001" else p for p in rows]
    code, out = import_feed("demo", rows, "json", full=True)
    assert code == 0, out
    assert "removed 1" in out  # D1002 only: D1001 is in the feed, its row just failed this time
    stored = catalog(ch)
    assert "D1001" in stored and "D1002" not in stored


def test_cli_unknown_advertiser_and_missing_file(runner, import_feed, tmp_path, ch):
    code, out = import_feed("nosuchshop", GOOD)
    assert code != 0
    assert "unknown advertiser" in out
    code, out = runner("import-feed", "nosuchshop", str(tmp_path / "missing.csv"))
    assert code != 0
    assert "is not a file" in out


def test_cli_full_removes_products_missing_from_the_feed(demo_loaded, import_feed, ch):
    rows = [p for p in demo_products("https://store.example") if p["id"] not in ("D1001", "D1002", "D1030")]
    code, out = import_feed("demo", rows, "json")
    assert code == 0, out
    assert "removed 0" in out
    assert len(catalog(ch)) == 60  # without --full, products missing from the feed stay

    code, out = import_feed("demo", rows, "json", full=True)
    assert code == 0, out
    assert "imported 57 products" in out
    assert "removed 3" in out
    stored = catalog(ch)
    assert len(stored) == 57
    assert not {"D1001", "D1002", "D1030"} & set(stored)


def test_reimport_updates_prices_in_the_running_app(app, client, demo_loaded, import_feed, ch):
    app.extensions["adserver"].catalog.check_seconds = 0
    client.get("/px.gif?a=demo&e=view_item&sku=D1004")
    first = client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]
    assert first["sku"] == "D1004"
    old_price = first["price"]

    row = next(p for p in demo_products("https://store.example") if p["id"] == "D1004")
    code, out = import_feed("demo", [dict(row, price="999.50", title="Updated 新标题")])
    assert code == 0, out
    assert catalog(ch)["D1004"][:2] == ("Updated 新标题", 999.5)
    assert len(catalog(ch)) == 60  # a partial import leaves the other products alone

    again = client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]
    assert again["sku"] == "D1004"
    assert again["price"] != old_price
    assert again["price"] == 999.5
    assert again["title"] == "Updated 新标题"
    page = client.get("/ad?p=demo-feed&size=300x250").get_data(as_text=True)
    assert "¥999.50" in page


def test_cached_catalog_is_kept_until_the_version_is_checked(app, client, demo_loaded, import_feed):
    cache = app.extensions["adserver"].catalog
    cache.check_seconds = 3600
    client.get("/px.gif?a=demo&e=view_item&sku=D1004")
    old_price = client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]["price"]
    row = next(p for p in demo_products("https://store.example") if p["id"] == "D1004")
    code, out = import_feed("demo", [dict(row, price="1.23")])
    assert code == 0, out
    assert client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]["price"] == old_price
    cache.check_seconds = 0  # the next request checks the version and reloads
    assert client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]["price"] == 1.23
