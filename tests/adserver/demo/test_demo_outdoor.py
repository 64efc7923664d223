"""The second demo advertiser, Trailhead Outdoor: its store pages, its catalog and its pictures.

Two stores give the ad auction two advertisers for the same slots, so the outdoor pages must report
their events for advertiser ``outdoor`` (never ``demo``), and its catalog must import cleanly.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape

import adserver.demo
from adserver.demo import demo_products, outdoor
from adserver.demo.outdoor import outdoor_products
from adserver.demo.shop import FEED_FIELDS, ShopCatalog

# The demo pages exist in server mode only when asked for (ADSERVER_DEMO=1).
pytestmark = pytest.mark.settings_env(ADSERVER_DEMO="1")
BASE = "http://127.0.0.1:8000"
STATIC = Path(adserver.demo.__file__).resolve().parent.parent / "static"
FOLDER = STATIC / "demo" / "outdoor"
TAG = '<script async src="/tag.js" data-advertiser="outdoor"></script>'
# <script> elements of each page: the tag and the store's cart script (+ the cart page's JSON
# catalog and checkout script). Product data must never add one.
SCRIPTS = {"/demo/outdoor": 2, "/demo/outdoor?cat=tents": 2, "/demo/outdoor/p/T2001": 2, "/demo/outdoor/cart": 4}


def html(response) -> str:
    return response.get_data(as_text=True)


# The store pages --------------------------------------------------------------------------------


def test_store_lists_all_products_and_carries_the_tag(client):
    response = client.get("/demo/outdoor")
    assert response.status_code == 200
    page = html(response)
    assert page.count('class="card"') == 24
    for product in outdoor_products("http://localhost"):
        assert f'href="/demo/outdoor/p/{product["id"]}"' in page
        assert f'src="{product["image_link"]}"' in page
    assert TAG in page
    assert 'data-adserver-event="view_home"' in page
    assert "/px.gif?a=outdoor&amp;e=view_home" in page  # the noscript fallback
    assert 'data-advertiser="demo"' not in page and "a=demo&amp;" not in page
    assert "Trailhead Outdoor" in page and "山径户外" in page
    assert 'src="/static/demo/outdoor/logo.svg"' in page
    assert "Lotus &amp; Co. is a demo store" not in page


def test_category_page_fires_view_list_with_its_products(client):
    page = html(client.get("/demo/outdoor?cat=tents"))
    assert page.count('class="card"') == 4
    assert 'data-adserver-event="view_list" data-adserver-sku="T2001,T2002,T2003,T2004"' in page
    assert "/px.gif?a=outdoor&amp;e=view_list&amp;sku=T2001%2CT2002%2CT2003%2CT2004" in page
    for category in outdoor.CATEGORIES:
        assert f'href="/demo/outdoor?cat={category.slug}"' in page
    assert 'href="/demo/store?cat=' not in page  # the Lotus departments are not this store's


def test_unknown_category_shows_the_home_page(client):
    page = html(client.get("/demo/outdoor?cat=tea-ware"))
    assert page.count('class="card"') == 24
    assert 'data-adserver-event="view_home"' in page


def test_product_page_fires_view_item(client):
    product = next(p for p in outdoor_products("http://localhost") if p["id"] == "T2008")
    response = client.get("/demo/outdoor/p/T2008")
    assert response.status_code == 200
    page = html(response)
    assert str(escape(product["title"])) in page  # this title holds an apostrophe
    assert 'data-adserver-event="view_item" data-adserver-sku="T2008"' in page
    assert "/px.gif?a=outdoor&amp;e=view_item&amp;sku=T2008" in page
    assert TAG in page
    assert 'data-add-to-cart="T2008">' in page
    assert "event: 'add_to_cart'" in page  # the store's cart script reports additions
    assert product["image_link"] in page
    assert 'href="/demo/outdoor/cart"' in page and 'href="/demo/outdoor?cat=hiking-boots"' in page


def test_product_page_of_a_variant_links_its_siblings(client):
    page = html(client.get("/demo/outdoor/p/T2002"))
    assert 'href="/demo/outdoor/p/T2001"' in page and 'href="/demo/outdoor/p/T2003"' in page


@pytest.mark.parametrize("sku", sorted(outdoor.CATALOG.out_of_stock))
def test_out_of_stock_product_cannot_be_added_to_cart(client, sku):
    page = html(client.get(f"/demo/outdoor/p/{sku}"))
    assert f'data-add-to-cart="{sku}" disabled' in page
    assert "Out of stock" in page
    assert "售罄 Sold out" in html(client.get("/demo/outdoor"))


@pytest.mark.parametrize("sku", ["NOPE", "D1001", "t2001", "T2025"])
def test_unknown_sku_is_404(client, sku):
    response = client.get(f"/demo/outdoor/p/{sku}")
    assert response.status_code == 404
    page = html(response)
    assert sku in page
    assert "data-adserver-event" not in page  # nothing is reported for a page that does not exist
    assert TAG in page and 'href="/demo/outdoor"' in page


def test_unknown_sku_is_escaped(client):
    response = client.get("/demo/outdoor/p/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.status_code == 404
    page = html(response)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_cart_page_reports_view_cart_and_purchase(client):
    response = client.get("/demo/outdoor/cart")
    assert response.status_code == 200
    page = html(response)
    assert TAG in page
    assert "event: 'view_cart'" in page
    assert "event: 'purchase'" in page and "currency: 'CNY'" in page
    assert "const KEY = 'trailhead-cart';" in page  # its own cart, not the Lotus shop's
    assert "lotus-cart" not in page and "lotusCart" not in page
    data = re.search(r'<script type="application/json" id="catalog-data">(.*?)</script>', page, re.S)
    assert data
    rows = json.loads(data.group(1))
    assert [r["id"] for r in rows] == [p["id"] for p in outdoor_products("http://localhost")]
    assert all(r["link"].startswith("http://localhost/demo/outdoor/p/") for r in rows)


@pytest.mark.parametrize("path", sorted(SCRIPTS))
def test_pages_have_only_their_own_scripts(client, path):
    assert html(client.get(path)).lower().count("<script") == SCRIPTS[path]


def test_stores_look_different_and_link_each_other(client):
    outdoor_page = html(client.get("/demo/outdoor/p/T2001"))
    lotus_page = html(client.get("/demo/store/p/D1001"))
    assert "--brand: #e8590c;" in outdoor_page and "--brand: #e8590c;" not in lotus_page
    assert "--brand: #d81b60;" in lotus_page
    assert 'href="/demo/store" id="neighbour"' in outdoor_page
    assert 'href="/demo/outdoor" id="neighbour"' in lotus_page
    assert 'data-advertiser="demo"' in lotus_page and 'data-advertiser="outdoor"' not in lotus_page


def test_microblog_links_both_stores(client):
    page = html(client.get("/demo/feed"))
    assert 'href="/demo/store"' in page and 'href="/demo/outdoor"' in page
    assert "tag.js" not in page


def test_product_data_is_escaped(client, monkeypatch):
    evil = '</script><script>alert(1)</script>"><img src=x onerror=alert(2)>'
    real = ShopCatalog.products

    def poisoned(self: ShopCatalog, base_url: str) -> list[dict]:
        products = real(self, base_url)
        for field in ("title", "description", "brand", "product_type"):
            products[0][field] = evil
        products[0]["image_link"] = 'x" onerror="alert(3)'
        products[0]["link"] = "javascript:alert(4)'"
        return products

    monkeypatch.setattr(ShopCatalog, "products", poisoned)
    monkeypatch.setattr(ShopCatalog, "category_of", lambda self, p: self.categories[0])
    for path in ("/demo/outdoor", "/demo/outdoor?cat=tents", "/demo/outdoor/p/T2001", "/demo/outdoor/cart"):
        response = client.get(path)
        assert response.status_code == 200, path
        page = html(response)
        assert page.lower().count("<script") == SCRIPTS.get(path, 2), path
        assert "<img src=x" not in page and 'onerror="alert(3)' not in page, path
    product_page = html(client.get("/demo/outdoor/p/T2001"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in product_page
    cart_page = html(client.get("/demo/outdoor/cart"))
    data = re.search(r'<script type="application/json" id="catalog-data">(.*?)</script>', cart_page, re.S)
    assert data and json.loads(data.group(1))[0]["title"] == evil  # JSON-escaped, still the same text


def test_utm_values_are_escaped(client):
    page = html(client.get("/demo/outdoor/p/T2001?utm_medium=display&utm_source=%3Cscript%3Ealert(1)%3C/script%3E"))
    assert "You came from an ad" in page
    assert page.lower().count("<script") == 2
    assert "utm_source=&lt;script&gt;" in page
    assert page.index("utm_source=") < page.index("utm_medium=display")


def test_store_links_follow_the_host_the_visitor_used(client):
    page = html(client.get("/demo/outdoor/p/T2001", base_url="http://shop.test:8000"))
    assert 'src="http://shop.test:8000/static/demo/outdoor/T2001.svg"' in page


def test_images_are_served(client):
    for name in ("T2001.svg", "logo.svg"):
        response = client.get(f"/static/demo/outdoor/{name}")
        assert response.status_code == 200, name
        assert response.mimetype == "image/svg+xml"
        response.close()


# The catalog ------------------------------------------------------------------------------------


def test_catalog_fields():
    products = outdoor_products(BASE + "/")
    assert len(products) == 24
    assert [p["id"] for p in products] == [f"T{n}" for n in range(2001, 2025)]
    for p in products:
        assert tuple(p) == FEED_FIELDS  # the same feed format as the Lotus catalog
        for field in FEED_FIELDS[:-1]:
            assert isinstance(p[field], str) and p[field].strip(), (p["id"], field)
        assert isinstance(p["item_group_id"], str)
        assert p["link"] == f"{BASE}/demo/outdoor/p/{p['id']}"
        assert p["image_link"] == f"{BASE}/static/demo/outdoor/{p['id']}.svg"
        assert re.fullmatch(r"\d+\.\d{2}", p["price"]) and Decimal(p["price"]) > 0, p["price"]
        assert p["currency"] == "CNY"
        assert p["availability"] in ("in stock", "out of stock")
        assert " > " in p["product_type"]
        assert "<" not in p["title"] + p["description"]
    assert not {p["id"] for p in products} & {p["id"] for p in demo_products(BASE)}


def test_catalog_shape():
    products = outdoor_products(BASE)
    assert {p["id"] for p in products if p["availability"] == "out of stock"} == {"T2007", "T2022"}
    types = {p["product_type"] for p in products}
    assert types == {c.product_type for c in outdoor.CATEGORIES} and len(types) == 6
    groups = [p["item_group_id"] for p in products if p["item_group_id"]]
    assert set(groups) == {"RIDGE2"} and len(groups) == 3
    assert len({p["title"] for p in products}) == 24
    chinese_first = sum(bool(re.match(r"[\u4e00-\u9fff]", p["title"])) for p in products)
    assert 8 <= chinese_first <= 16
    assert all(re.search(r"[\u4e00-\u9fff]", p["title"]) and re.search(r"[A-Za-z]{3}", p["title"]) for p in products)
    assert outdoor_products(BASE) == products  # deterministic


def test_catalog_imports_through_the_feed_import(runner, settings):
    from adserver.catalog.upload import import_products
    from tracker.stores import Stores

    code, out = runner("create-advertiser", "outdoor", "--name", outdoor.NAME, "--currency", outdoor.CURRENCY,
                       "--domain", "store.example")
    assert code == 0, out
    data = json.dumps(outdoor_products("https://store.example"), ensure_ascii=False).encode()
    stores = Stores(settings)
    report = import_products(stores, "outdoor", data, "json", full=True)
    stores.close()
    assert report.as_dict()["rejected"] == 0, report.errors
    assert report.accepted == 24 and report.removed == 0


# The pictures -----------------------------------------------------------------------------------


def test_product_images_exist_and_are_small():
    for product in outdoor_products(BASE):
        path = FOLDER / f"{product['id']}.svg"
        assert path.is_file(), path
        data = path.read_bytes()
        assert len(data) < 2048, path
        text = data.decode("ascii")  # no Chinese (or any non-ASCII) text
        assert text.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"')
        assert f">{product['id']}</text>" in text
        assert "href" not in text and "url(" not in text and "@import" not in text  # nothing external
    logo = (FOLDER / "logo.svg").read_text(encoding="ascii")
    assert logo.startswith("<svg") and 'aria-label="Trailhead Outdoor"' in logo and "href" not in logo


def test_pictures_share_the_demo_style():
    lotus = (STATIC / "demo" / "img" / "D1001.svg").read_text(encoding="ascii")
    tent = (FOLDER / "T2001.svg").read_text(encoding="ascii")
    head = '<rect width="400" height="400" fill="'
    assert lotus.split(head)[0] == tent.split(head)[0].replace("Tents T2001", "Tea Ware D1001")
    assert 'fill="#ff7043"' in tent  # the orange variant is drawn orange


def test_write_all_reproduces_the_committed_files(tmp_path):
    written = outdoor.write_all(tmp_path)
    assert {p.parent for p in written} == {tmp_path / "demo" / "outdoor"}
    assert sorted(p.name for p in written) == sorted(p.name for p in FOLDER.iterdir())  # nothing stale
    assert len(written) == 25
    for path in written:
        assert path.read_bytes() == (FOLDER / path.name).read_bytes(), path.name
    again = outdoor.write_all(tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]
