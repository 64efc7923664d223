"""The publisher side on real servers: what the ad unit shows, for whom, in which sizes, and safely.

The demo catalog (placement ``demo-feed``, house advertiser ``demo``) has D1003, D1020, D1036 and
D1055 out of stock, and D1009/D1010/D1011 are colour variants of one product (item group QC20).
"""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest
from werkzeug.test import Client

from adserver.demo import demo_products
from tests.adserver.conftest import product, visitor_uid
from tests.conftest import drain

OUT_OF_STOCK = {"D1003", "D1020", "D1036", "D1055"}
QC20 = {"D1009", "D1010", "D1011"}
DEMO_SKUS = {p["id"] for p in demo_products("https://store.example")}
BIG = "600x400"  # a 4 x 3 grid: 12 products
SERVER = "http://localhost"  # the test client's host: click links are built on it


def _next_millisecond() -> None:
    """Profiles order views by millisecond: make sure the next hit gets a later one."""
    start = int(time.time() * 1000)
    deadline = time.monotonic() + 1
    while int(time.time() * 1000) == start and time.monotonic() < deadline:
        pass


def hit(client, query: str) -> None:
    response = client.get("/px.gif?" + query)
    assert response.status_code == 200
    _next_millisecond()


def view(client, *skus: str, advertiser: str = "demo") -> None:
    for sku in skus:
        hit(client, f"a={advertiser}&e=view_item&sku={sku}")


def ad(client, size: str = "300x250", placement: str = "demo-feed", **kwargs) -> dict:
    response = client.get(f"/ad.json?p={placement}&size={size}", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def skus(decision: dict) -> list[str]:
    return [p["sku"] for p in decision["products"]]


class AdPage(HTMLParser):
    """Collects what matters for safety in an ad unit: tags, attributes, links and text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attrs_of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


# --- what is shown, in which order ----------------------------------------------------------------


@pytest.fixture
def untrained(app, tmp_path):
    """The demo advertiser as a new store with no trained model yet: no similar products."""
    from adserver.learning.similar import ModelCache

    app.extensions["adserver"].models = ModelCache(tmp_path / "no-models")


def test_recently_viewed_newest_first_then_popular(app, demo_loaded, untrained):
    others = app.test_client()
    hit(others, "a=demo&e=add_to_cart&sku=D1030")  # weight 3: the most popular product
    view(others, "D1040")

    visitor = app.test_client()
    view(visitor, "D1021", "D1004", "D1012")
    decision = ad(visitor)
    assert decision["advertiser"] == "demo"
    assert decision["path"] == "personalised"
    assert decision["addressable"] is True
    assert skus(decision) == ["D1012", "D1004", "D1021", "D1030"]
    assert [p["reason"] for p in decision["products"]] == ["recent", "recent", "recent", "popular"]

    view(visitor, "D1021")  # viewed again: it moves to the front
    decision = ad(visitor, BIG)
    assert skus(decision)[:5] == ["D1021", "D1012", "D1004", "D1030", "D1040"]
    assert [p["reason"] for p in decision["products"]] == ["recent"] * 3 + ["popular"] * 9
    assert len(set(skus(decision))) == 12


def test_products_carry_catalog_data_and_a_click_link(client, demo_loaded):
    view(client, "D1002")
    first = ad(client)["products"][0]
    row = next(p for p in demo_products("https://store.example") if p["id"] == "D1002")
    assert first["sku"] == "D1002"
    assert first["title"] == row["title"]
    assert first["price"] == pytest.approx(float(row["price"]))
    assert first["currency"] == "CNY"
    assert first["image"] == row["image_link"]
    assert first["click_url"].startswith(f"{SERVER}/c/")


def test_out_of_stock_products_are_never_shown(app, demo_loaded):
    others = app.test_client()
    for _ in range(3):
        hit(others, "a=demo&e=add_to_cart&sku=D1003,D1020,D1036,D1055")  # popular, but sold out

    visitor = app.test_client()
    view(visitor, "D1004", "D1003", "D1020", "D1036", "D1055")
    decision = ad(visitor, BIG)
    assert decision["path"] == "personalised"
    assert skus(decision)[0] == "D1004"
    assert not OUT_OF_STOCK & set(skus(decision))
    assert len(skus(decision)) == 12

    fallback = ad(app.test_client(), BIG)
    assert fallback["path"] == "fallback"
    assert not OUT_OF_STOCK & set(skus(fallback))
    assert len(skus(fallback)) == 12


def test_bought_products_are_not_shown_again(app, demo_loaded, untrained):
    visitor = app.test_client()
    view(visitor, "D1004", "D1005", "D1006")
    assert skus(ad(visitor))[:3] == ["D1006", "D1005", "D1004"]

    hit(visitor, "a=demo&e=purchase&sku=D1006,D1004&order=O-1&value=100&currency=CNY")
    decision = ad(visitor, BIG)
    assert skus(decision)[0] == "D1005"
    assert decision["products"][0]["reason"] == "recent"
    assert not {"D1004", "D1006"} & set(skus(decision))  # although the purchase made them popular

    other = app.test_client()  # another visitor still gets them
    view(other, "D1006")
    assert skus(ad(other))[0] == "D1006"


def test_one_product_per_item_group(app, demo_loaded):
    visitor = app.test_client()
    view(visitor, "D1009", "D1004", "D1010", "D1011")
    decision = ad(visitor, BIG)
    shown = skus(decision)
    assert shown[:2] == ["D1011", "D1004"]  # the newest variant stands for the group
    assert [s for s in shown if s in QC20] == ["D1011"]

    fallback = skus(ad(app.test_client(), BIG))
    assert len([s for s in fallback if s in QC20]) == 1


def test_new_store_fallback_walks_the_catalog_skipping_sold_out_and_variants(client, demo_loaded):
    decision = ad(client, BIG)  # nobody viewed anything yet: no popularity
    assert decision["path"] == "fallback"
    assert skus(decision) == ["D1001", "D1002", "D1004", "D1005", "D1006", "D1007", "D1008", "D1009", "D1012",
                              "D1013", "D1014", "D1015"]


# --- which advertiser -----------------------------------------------------------------------------

SHOP_B = [
    product("B1", "Shop B Kettle"),
    product("B2", "Shop B Mug"),
    product("B3", "Shop B Spoon"),
    product("D1004", "Shop B's own D1004", link="https://shop-b.example/p/D1004"),  # same sku as a demo product
]


@pytest.fixture
def shop_b(create_advertiser, import_feed, runner, tmp_path):
    """A second store with a CPC campaign at the demo's price: interest decides between them."""
    create_advertiser("shop-b", "shop.example", "shop-b.example")
    code, out = import_feed("shop-b", SHOP_B)
    assert code == 0, out
    code, out = runner("create-campaign", "shop-b-retargeting", "--advertiser", "shop-b", "--pricing", "cpc",
                       "--price", "0.6")
    assert code == 0, out
    return {p["id"] for p in SHOP_B}


def test_advertisers_are_isolated(app, demo_loaded, shop_b):
    demo_visitor = app.test_client()
    view(demo_visitor, "D1004", "D1012")
    decision = ad(demo_visitor, BIG)
    assert decision["advertiser"] == "demo"
    assert set(skus(decision)) <= DEMO_SKUS
    assert not {"B1", "B2", "B3"} & set(skus(decision))
    demo_d1004 = next(p for p in decision["products"] if p["sku"] == "D1004")
    assert demo_d1004["title"] != "Shop B's own D1004"
    assert demo_d1004["image"].startswith("https://store.example/")

    b_visitor = app.test_client()
    view(b_visitor, "B2", advertiser="shop-b")
    decision = ad(b_visitor, BIG)
    assert decision["advertiser"] == "shop-b"
    assert decision["path"] == "personalised"
    assert skus(decision)[0] == "B2"
    assert set(skus(decision)) <= shop_b  # only its 4 products, never padded with another store's
    assert len(skus(decision)) == 4
    assert all(p["sku"] != "D1004" or p["title"] == "Shop B's own D1004" for p in decision["products"])


def test_the_most_recently_engaged_advertiser_wins(app, demo_loaded, shop_b):
    visitor = app.test_client()
    view(visitor, "B1", advertiser="shop-b")
    view(visitor, "D1012")
    decision = ad(visitor)
    assert decision["advertiser"] == "demo"
    assert skus(decision)[0] == "D1012"
    assert set(skus(decision)) <= DEMO_SKUS

    view(visitor, "B3", advertiser="shop-b")
    decision = ad(visitor)
    assert decision["advertiser"] == "shop-b"
    assert skus(decision)[:2] == ["B3", "B1"]
    assert set(skus(decision)) <= shop_b


def test_fallback_uses_the_placements_house_advertiser(app, demo_loaded, shop_b, runner):
    # A floor no campaign reaches: the slot falls back to its house advertiser, unpaid.
    code, out = runner("create-placement", "shop-b-slot", "--site", "news.example", "--advertiser", "shop-b",
                       "--floor", "50")
    assert code == 0, out
    app.extensions["adserver"].registry.reload()
    decision = ad(app.test_client(), placement="shop-b-slot")
    assert decision["path"] == "fallback"
    assert decision["advertiser"] == "shop-b"
    assert set(skus(decision)) <= shop_b
    assert ad(app.test_client(), placement="demo-feed")["advertiser"] == "demo"


# --- visitors we may not or cannot personalise for --------------------------------------------------


@pytest.mark.parametrize("kind", ["no-cookie", "invalid-cookie", "optout", "gpc"])
def test_non_personalised_fallback(app, demo_loaded, kind):
    visitor = app.test_client()
    view(visitor, "D1030", "D1031")  # a real profile exists for this browser
    cookie = visitor.get_cookie("uid").value
    headers = {}
    if kind == "no-cookie":
        visitor = app.test_client()
    elif kind == "invalid-cookie":
        visitor = Client(app, use_cookies=False)  # the test client would drop a Cookie header while its jar is empty
        headers["Cookie"] = "uid=" + cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    elif kind == "optout":
        visitor.set_cookie("optout", "1")
    else:
        headers["Sec-GPC"] = "1"

    decision = ad(visitor, headers=headers)
    assert decision["path"] == "fallback"
    assert decision["addressable"] is False
    assert decision["advertiser"] == "demo"
    assert len(decision["products"]) == 4
    assert skus(decision)[:2] != ["D1031", "D1030"]
    assert all(p["reason"] == "popular" for p in decision["products"])

    response = visitor.get("/ad?p=demo-feed&size=300x250", headers=headers)
    assert response.status_code == 200
    links = [a["href"] for a in AdPage(response.get_data(as_text=True)).attrs_of("a")
             if a["href"].startswith(f"{SERVER}/c/")]
    assert len(links) == 4


# --- safety of the rendered unit ---------------------------------------------------------------------

HOSTILE = [
    product("E1", "<script>alert(1)</script>Tea"),
    product("E2", '"><img src=x onerror=alert(1)>Cup'),
    product("E3", "' onmouseover='x"),
    product("E4", "&lt;script&gt;alert(4)&lt;/script&gt;"),  # entities: shown as text, must be escaped
    product("E5", "Kettle", image_link='https://shop.example/e5.png" onerror="alert(5)'),
    product("J1", "Clicky", link="javascript:alert(1)"),
    product("D1", "Pic", image_link="data:image/svg+xml,<svg onload=alert(1)>"),
    product("E6", "Plain tea"),
]


def test_html_unit_escapes_catalog_text(app, create_advertiser, import_feed, demo_loaded, runner):
    create_advertiser("evil")
    code, out = import_feed("evil", HOSTILE)
    assert code == 0, out
    assert runner("create-campaign", "evil-c", "--advertiser", "evil", "--pricing", "cpm", "--price", "50")[0] == 0
    assert "row 7: link:" in out  # J1 (row 1 is the header)
    assert "row 8: image_link:" in out  # D1
    assert "row 6: image_link:" in out  # E5, a quote in a URL
    assert "imported 5 products" in out

    visitor = app.test_client()
    view(visitor, "E1", "E2", "E3", "E4", "E5", "J1", "D1", "E6", advertiser="evil")
    decision = ad(visitor, BIG)
    assert decision["advertiser"] == "evil"
    assert set(skus(decision)) == {"E1", "E2", "E3", "E4", "E6"}
    titles = {p["sku"]: p["title"] for p in decision["products"]}

    response = visitor.get(f"/ad?p=demo-feed&size={BIG}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    for payload in ("<script", "<img src=x", "onerror=alert", "' onmouseover='", '"><img', "javascript:", "data:image"):
        assert payload not in page, payload

    parsed = AdPage(page)
    assert not [t for t, _ in parsed.tags if t in ("script", "iframe", "object", "embed", "form", "base")]
    for tag, attrs in parsed.tags:
        assert not [name for name in attrs if name.lower().startswith("on")], (tag, attrs)
    hrefs = [a.get("href") or "" for a in parsed.attrs_of("a")]
    product_links = [h for h in hrefs if h.startswith(f"{SERVER}/c/")]
    assert len(product_links) == 5
    others = set(hrefs) - set(product_links)  # the AdChoices link and the "not interested" page, nothing else
    assert {h.split("?")[0] for h in others} == {f"{SERVER}/optout", f"{SERVER}/ad/hide"}
    assert all(img["src"].startswith("https://shop.example/") for img in parsed.attrs_of("img"))
    # The text is shown as text, escaped, not dropped.
    text = "".join(parsed.text)
    assert titles["E4"] == "<script>alert(4)</script>"
    assert titles["E4"] in text
    assert titles["E3"] in text
    assert {a["title"] for a in parsed.attrs_of("a") if a.get("title")} == set(titles.values())

    csp = response.headers["Content-Security-Policy"]
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives
    assert "script-src-elem" not in directives
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- sizes and bad requests -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["300x250", "728x90", "160x600", "320x50", "320x100", "responsive"])
def test_every_standard_size_renders_products(client, demo_loaded, size):
    view(client, "D1004")
    response = client.get(f"/ad?p=demo-feed&size={size}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    parsed = AdPage(response.get_data(as_text=True))
    links = [a["href"] for a in parsed.attrs_of("a") if a["href"].startswith(f"{SERVER}/c/")]
    assert len(links) >= 1
    assert len(parsed.attrs_of("img")) == len(links)

    decision = ad(client, size)
    assert decision["size"] == size
    assert decision["products"][0]["sku"] == "D1004"
    assert len(decision["products"]) == len(links)


def test_default_size_is_responsive(client, demo_loaded):
    response = client.get("/ad.json?p=demo-feed")
    assert response.status_code == 200
    assert response.get_json()["size"] == "responsive"
    assert response.get_json()["products"]


@pytest.mark.parametrize("size", ["0x0", "99999x1", "abc", "300x250x1", "10x10", "2001x250", "-300x250",
                                  "300x250%0a", "300%20x%20250", "%D9%A3%D9%A0%D9%A0x250"])
def test_bad_size_is_a_400_with_a_message(client, demo_loaded, size):
    for path, mimetype in (("/ad", "text/plain"), ("/ad.json", "application/json")):
        response = client.get(f"{path}?p=demo-feed&size={size}")
        assert response.status_code == 400, (path, size)
        assert response.mimetype == mimetype
        body = response.get_data(as_text=True)
        assert "WxH" in body or "width and height must be between" in body
    assert client.get(f"/ad.json?p=demo-feed&size={size}").get_json()["error"] == "bad_request"


@pytest.mark.parametrize("placement", ["", "%3Cx%3E", "p" * 65, "Demo-Feed", "demo-feed%0a", "demo%20feed",
                                       "../demo-feed"])
def test_bad_placement_is_a_400_with_a_message(client, demo_loaded, placement):
    for path in ("/ad", "/ad.json"):
        response = client.get(f"{path}?p={placement}&size=300x250")
        assert response.status_code == 400, (path, placement)
        body = response.get_data(as_text=True)
        assert "placement" in body
        assert "<x>" not in body
    assert client.get("/ad?size=300x250").status_code == 400  # no p at all


def test_bad_requests_log_no_impression(client, demo_loaded, writer, ch):
    client.get("/ad?p=%3Cx%3E&size=300x250")
    client.get("/ad.json?p=demo-feed&size=abc")
    drain(writer)
    assert ch.execute("SELECT count() FROM events WHERE event = 'impression'") == [(0,)]


# --- impressions -----------------------------------------------------------------------------------------


def test_each_decision_logs_one_impression(app, demo_loaded, writer, ch):
    visitor = app.test_client()
    view(visitor, "D1004", "D1012")
    uid = visitor_uid(visitor)
    personal = ad(visitor, "300x250")
    anonymous = ad(app.test_client(), "160x600", placement="demo-sidebar")
    html = visitor.get("/ad?p=demo-feed&size=728x90")
    assert html.status_code == 200
    html_links = [a["href"] for a in AdPage(html.get_data(as_text=True)).attrs_of("a")
                  if a["href"].startswith(f"{SERVER}/c/")]

    drain(writer)
    rows = ch.execute("SELECT impression_id, uid, placement, size, skus, reasons, addressable, sku "
                      "FROM events WHERE event = 'impression' ORDER BY ts, size")
    assert len(rows) == 3
    by_size = {r[3]: r for r in rows}
    assert set(by_size) == {"300x250", "160x600", "728x90"}

    row = by_size["300x250"]
    assert row[0] == personal["impression_id"]
    assert row[1] == uid
    assert row[2] == "demo-feed"
    assert row[4] == skus(personal)
    assert row[5] == [p["reason"] for p in personal["products"]]
    assert row[5][:2] == ["recent", "recent"]
    assert row[6] == 1
    assert row[7] == "D1012"

    row = by_size["160x600"]
    assert row[0] == anonymous["impression_id"]
    assert (row[1], row[2], row[6]) == ("", "demo-sidebar", 0)
    assert row[4] == skus(anonymous)
    assert row[5] == ["popular"] * len(skus(anonymous))

    row = by_size["728x90"]
    assert len(row[4]) == len(html_links) >= 1
    assert row[4][:2] == ["D1012", "D1004"]
    assert len({r[0] for r in rows}) == 3  # every decision has its own impression id
