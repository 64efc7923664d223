"""The demo store and microblog pages, the demo catalog, its example feed and its pictures.

The demo is what a visitor sees first, so broken pages, a catalog that would not import or product
data rendered unescaped must fail here rather than in front of a person.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape

import adserver.demo
from adserver.demo import demo_products, lotus
from adserver.demo.shop import ShopCatalog

# The demo pages exist in server mode only when asked for (ADSERVER_DEMO=1).
pytestmark = pytest.mark.settings_env(ADSERVER_DEMO="1")
BASE = "http://127.0.0.1:8000"
STATIC = Path(adserver.demo.__file__).resolve().parent.parent / "static"
REQUIRED = ("id", "title", "description", "link", "image_link", "price", "currency", "availability",
            "product_type", "brand")
# <script> elements each page's template has: the tag and the store's cart script (+ the cart
# page's JSON catalog and checkout script). Product data must never add one.
SCRIPTS = {"/demo/store": 2, "/demo/store/p/D1001": 2, "/demo/store/cart": 4, "/demo/feed": 1}  # the feed: the /pub.js slot


def html(response) -> str:
    return response.get_data(as_text=True)


def test_store_lists_all_products_and_carries_the_tag(client):
    response = client.get("/demo/store")
    assert response.status_code == 200
    page = html(response)
    assert page.count('class="card"') == 60
    for product in demo_products("http://localhost"):
        assert f'href="/demo/store/p/{product["id"]}"' in page
    assert '<script async src="/tag.js" data-advertiser="demo"></script>' in page
    assert 'data-adserver-event="view_home"' in page
    assert "/px.gif?a=demo&amp;e=view_home" in page  # the noscript fallback


def test_category_page_fires_view_list_with_its_products(client):
    page = html(client.get("/demo/store?cat=tea-ware"))
    assert page.count('class="card"') == 8
    assert 'data-adserver-event="view_list"' in page
    assert 'data-adserver-sku="D1001,D1002,D1003,D1004,D1005,D1006,D1007,D1008"' in page
    for category in lotus.CATEGORIES:
        assert f'href="/demo/store?cat={category.slug}"' in page


def test_unknown_category_shows_the_home_page(client):
    page = html(client.get("/demo/store?cat=nope"))
    assert page.count('class="card"') == 60
    assert 'data-adserver-event="view_home"' in page


def test_product_page_fires_view_item(client):
    product = next(p for p in demo_products("http://localhost") if p["id"] == "D1029")
    response = client.get("/demo/store/p/D1029")
    assert response.status_code == 200
    page = html(response)
    assert str(escape(product["title"])) in page  # this title holds a double quote
    assert 'data-adserver-event="view_item" data-adserver-sku="D1029"' in page
    assert "/px.gif?a=demo&amp;e=view_item&amp;sku=D1029" in page
    assert 'data-add-to-cart="D1029"' in page
    assert 'src="/tag.js" data-advertiser="demo"' in page
    assert product["image_link"] in page


def test_product_page_of_a_variant_links_its_siblings(client):
    page = html(client.get("/demo/store/p/D1009"))
    assert 'href="/demo/store/p/D1010"' in page and 'href="/demo/store/p/D1011"' in page


def test_out_of_stock_product_cannot_be_added_to_cart(client):
    page = html(client.get("/demo/store/p/D1003"))
    assert re.search(r'data-add-to-cart="D1003" disabled', page)


def test_product_page_shows_the_ad_click_utm_parameters(client):
    page = html(client.get("/demo/store/p/D1001?utm_source=adserver&utm_medium=display&utm_campaign=retargeting"))
    assert "You came from an ad" in page
    assert "utm_source=adserver" in page
    assert page.index("utm_source=adserver") < page.index("utm_medium=display") < page.index("utm_campaign=")
    assert "You came from an ad" not in html(client.get("/demo/store/p/D1001"))


def test_unknown_sku_is_404(client):
    response = client.get("/demo/store/p/NOPE")
    assert response.status_code == 404
    assert "NOPE" in html(response)
    assert "data-adserver-event" not in html(response)


def test_cart_page_reports_view_cart_and_purchase(client):
    response = client.get("/demo/store/cart")
    assert response.status_code == 200
    page = html(response)
    assert "event: 'view_cart'" in page
    assert "event: 'purchase'" in page and "currency: 'CNY'" in page
    assert 'src="/tag.js" data-advertiser="demo"' in page
    data = re.search(r'<script type="application/json" id="catalog-data">(.*?)</script>', page, re.S)
    assert data and len(json.loads(data.group(1))) == 60


def test_feed_page_embeds_the_ad(client):
    response = client.get("/demo/feed")
    assert response.status_code == 200
    page = html(response)
    # The three demo placements: the feed's own, the sidebar and a mobile banner.
    assert '<iframe src="/ad?p=demo-sidebar&amp;size=300x250" width="300" height="250"' in page
    assert '<iframe src="/ad?p=demo-banner&amp;size=320x50" width="320" height="50"' in page
    assert '<iframe src="/ad?p=demo-feed&amp;size=responsive" width="100%" height="260"' in page
    assert page.count('class="post"') >= 8
    assert 'href="/optout"' in page
    assert 'href="/demo/store"' in page
    assert "tag.js" not in page  # the publisher does not carry the store's tag


def test_demo_root_redirects_to_the_feed(client):
    response = client.get("/demo/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/demo/feed")


@pytest.mark.parametrize("path", sorted(SCRIPTS))
def test_pages_have_only_their_own_scripts(client, path):
    assert html(client.get(path)).lower().count("<script") == SCRIPTS[path]


def test_product_data_is_escaped(client, monkeypatch):
    evil = '</script><script>alert(1)</script>"><img src=x onerror=alert(2)>'
    real = ShopCatalog.products

    def poisoned(self: ShopCatalog, base_url: str) -> list[dict]:
        products = real(self, base_url)
        for field in ("title", "description", "brand", "product_type"):
            products[0][field] = evil
        products[0]["image_link"] = 'x" onerror="alert(3)'
        return products

    monkeypatch.setattr(ShopCatalog, "products", poisoned)
    monkeypatch.setattr(ShopCatalog, "category_of", lambda self, p: self.categories[0])
    for path in ("/demo/store", "/demo/store/p/D1001", "/demo/store/cart", "/demo/store?cat=tea-ware"):
        page = html(client.get(path))
        assert page.lower().count("<script") == SCRIPTS.get(path, 2), path
        assert "<img src=x" not in page and 'onerror="alert(3)' not in page, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html(client.get("/demo/store/p/D1001"))


def test_utm_values_are_escaped(client):
    page = html(client.get("/demo/store/p/D1001?utm_source=%3Cscript%3Ealert(1)%3C/script%3E"))
    assert page.lower().count("<script") == 2
    assert "utm_source=&lt;script&gt;" in page


def test_store_links_follow_the_host_the_visitor_used(client):
    page = html(client.get("/demo/store/p/D1001", base_url="http://shop.test:8000"))
    assert 'src="http://shop.test:8000/static/demo/img/D1001.svg"' in page


# The catalog ------------------------------------------------------------------------------------


def test_catalog_fields():
    products = demo_products(BASE + "/")
    assert len(products) == 60
    assert [p["id"] for p in products] == [f"D{n}" for n in range(1001, 1061)]
    for p in products:
        for field in REQUIRED:
            assert isinstance(p[field], str) and p[field].strip(), (p["id"], field)
        assert isinstance(p["item_group_id"], str)
        assert p["link"] == f"{BASE}/demo/store/p/{p['id']}"
        assert p["image_link"] == f"{BASE}/static/demo/img/{p['id']}.svg"
        assert re.fullmatch(r"\d+\.\d{2}", p["price"]) and Decimal(p["price"]) > 0, p["price"]
        assert p["currency"] == "CNY"
        assert p["availability"] in ("in stock", "out of stock")
        assert " > " in p["product_type"]
        assert "<" not in p["title"] + p["description"]


def test_catalog_shape():
    products = demo_products(BASE)
    assert 3 <= sum(p["availability"] == "out of stock" for p in products) <= 4
    assert 6 <= len({p["product_type"] for p in products}) <= 8
    groups = [p["item_group_id"] for p in products if p["item_group_id"]]
    assert groups and all(groups.count(g) >= 2 for g in groups)
    chinese_first = sum(bool(re.match(r"[\u4e00-\u9fff]", p["title"])) for p in products)
    assert 20 <= chinese_first <= 40
    assert all(re.search(r"[\u4e00-\u9fff]", p["title"]) for p in products)
    assert demo_products(BASE) == products  # deterministic


def test_feed_json_is_the_catalog():
    feed = json.loads((Path(lotus.__file__).with_name("feed.json")).read_text(encoding="utf-8"))
    assert feed == demo_products(BASE)
    assert lotus.feed_json() == lotus.FEED_PATH.read_text(encoding="utf-8")


def test_product_images_exist_and_are_small():
    for product in demo_products(BASE):
        path = STATIC / "demo" / "img" / f"{product['id']}.svg"
        assert path.is_file(), path
        data = path.read_bytes()
        assert len(data) < 2048, path
        text = data.decode("ascii")  # no Chinese (or any non-ASCII) text
        assert text.startswith('<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"')
        assert f">{product['id']}</text>" in text
        assert "href" not in text and "url(" not in text and "@import" not in text  # nothing external
    logo = (STATIC / "demo" / "logo.svg").read_text(encoding="ascii")
    assert logo.startswith("<svg") and "Lotus &amp; Co." in logo


def test_committed_files_match_the_generators(tmp_path):
    written = lotus.write_all(tmp_path / "static", tmp_path / "feed.json")
    assert len(written) == 62  # the feed, 60 pictures and the logo
    assert written[0].read_bytes() == lotus.FEED_PATH.read_bytes()
    for path in written[1:]:
        committed = STATIC / path.relative_to(tmp_path / "static")
        assert path.read_bytes() == committed.read_bytes(), path.name
    assert sorted(p.name for p in (tmp_path / "static" / "demo" / "img").iterdir()) == sorted(
        p.name for p in (STATIC / "demo" / "img").iterdir())  # nothing stale


def test_images_are_served(client):
    response = client.get("/static/demo/img/D1001.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    response.close()
