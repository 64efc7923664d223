"""The native card (``/ad.json?format=native``) on real servers: its Native 1.2 shape, the same decision,
charging and invalid-traffic rules as every ad, who may read a personalised card, and hostile input."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.serving import native
from adserver.tracking.viewability import impression_id_for
from tests.adserver.conftest import product
from tests.adserver.serving.test_ads import SERVER, view
from tests.conftest import SECRET, drain

NONCE = "q8xN3v0Yb1sWm2Kp7LzA9cDe"
BOT = "curl/8.5.0"


@pytest.fixture
def demo(demo_loaded, app) -> None:
    app.extensions["adserver"].registry.reload()


def card(client, query: str = "", **kwargs) -> dict:
    response = client.get("/ad.json?p=demo-feed&format=native" + query, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def assets(answer: dict) -> dict[int, dict]:
    """The card's assets by id, each id once."""
    listed = answer["native"]["assets"]
    by_id = {a["id"]: a for a in listed}
    assert len(by_id) == len(listed)
    return by_id


def events(ch, event: str) -> list[tuple]:
    return ch.execute("SELECT impression_id, skus, size, addressable, invalid, cost FROM events "
                      "WHERE event = %(e)s ORDER BY ts", {"e": event})


# --- the card -------------------------------------------------------------------------------------


def test_personalised_card_is_a_native_1_2_response_of_the_last_viewed_product(client, demo, app):
    view(client, "D1021", "D1002")
    answer = card(client, f"&r={NONCE}")
    n = answer["native"]
    assert n["ver"] == "1.2"
    ext = n["ext"]
    assert ext["path"] == "personalised" and ext["addressable"] is True and ext["fallback_reason"] is None
    assert ext["advertiser"] == "demo" and ext["placement"] == "demo-feed"
    assert ext["impression_id"] == impression_id_for([SECRET], NONCE)
    assert [(p["sku"], p["reason"]) for p in ext["products"]] == [("D1002", "recent")]
    item = app.extensions["adserver"].catalog.get("demo")["D1002"]
    a = assets(answer)
    assert a[native.TITLE]["title"] == {"text": item.title, "len": len(item.title)}
    image = a[native.MAIN_IMAGE]["img"]
    assert image["type"] == 3
    if "w" in image:  # the demo's pictures resized: a variant served here
        assert image["url"].startswith(f"{SERVER}/img/") and image["ext"]["variants"]
    else:
        assert image == {"type": 3, "url": item.image_link}
    assert a[native.STORE]["data"] == {"type": 1, "value": "Lotus & Co. 莲花良品"}
    assert a[native.PRICE]["data"] == {"type": 6, "value": f"¥{item.price:,.2f}"}
    assert native.SALE_PRICE not in a  # not on sale
    assert a[native.CTA]["data"]["type"] == 12 and a[native.CTA]["data"]["value"]
    assert a[native.DESCRIPTION]["data"] == {"type": 2, "value": item.description}
    # The demo campaign's logo is the store's icon.
    assert a[native.LOGO]["img"]["type"] == 1 and a[native.LOGO]["img"]["url"].endswith("/static/demo/logo.svg")
    assert n["link"]["url"] == ext["products"][0]["click_url"] and n["link"]["url"].startswith(f"{SERVER}/c/")
    assert n["privacy"] == f"{SERVER}/optout"
    assert n["eventtrackers"] == [{"event": 2, "method": 1,
                                   "url": f"{SERVER}/px/viewable?p=demo-feed&r={NONCE}&a=demo"}]


def test_card_is_counted_charged_and_clicked_like_any_ad(client, demo, writer, ch):
    view(client, "D1002")
    answer = card(client)
    n = answer["native"]
    impression_id = n["ext"]["impression_id"]
    click = client.get(n["link"]["url"])
    assert click.status_code == 302
    assert click.headers["Location"].startswith("https://store.example/demo/store/p/D1002?")
    tracker = n["eventtrackers"][0]["url"].removeprefix(SERVER)
    assert client.get(tracker).status_code == 200
    assert client.get(tracker).status_code == 200  # once per impression
    drain(writer)
    assert events(ch, "impression") == [(impression_id, ["D1002"], "native", 1, 0, 0.0)]
    assert [row[0] for row in events(ch, "click")] == [impression_id]
    assert [row[0] for row in events(ch, "viewable")] == [impression_id]


def test_card_without_a_nonce_gets_one_for_its_tracker(client, demo):
    first, second = card(client)["native"], card(client)["native"]
    nonces = [n["eventtrackers"][0]["url"].split("&r=")[1].split("&")[0] for n in (first, second)]
    assert nonces[0] != nonces[1]
    for n, nonce in zip((first, second), nonces):
        assert n["ext"]["impression_id"] == impression_id_for([SECRET], nonce)


def test_bots_get_a_card_that_counts_as_invalid_and_costs_nothing(app, demo, writer, ch):
    bot = app.test_client()
    answer = card(bot, headers={"User-Agent": BOT})
    assert answer["native"]["assets"]
    drain(writer)
    rows = events(ch, "impression")
    assert len(rows) == 1 and rows[0][4] == 1 and rows[0][5] == 0.0


def test_unknown_placement_gets_a_house_card(client, demo):
    response = client.get("/ad.json?p=nowhere&format=native")
    assert response.status_code == 200
    assert response.get_json()["native"]["ext"]["fallback_reason"] == "unknown_placement"


# --- "not interested" -------------------------------------------------------------------------------


def test_card_carries_its_hide_url_and_the_words_of_the_control(client, demo, app):
    view(client, "D1002")
    ext = card(client)["native"]["ext"]
    hide_url = ext["products"][0]["hide_url"]
    assert hide_url.startswith(f"{SERVER}/ad/hide?") and "size=native" in hide_url
    token = parse_qs(urlsplit(hide_url).query)["t"][0]
    info = app.extensions["adserver"].hide_tokens.verify(token)
    assert (info.impression_id, info.skus, info.placement) == (ext["impression_id"], ("D1002",), "demo-feed")
    assert ext["hide"] == native.HIDE_TEXT["zh"] and ext["lang"] == "zh"  # the demo's titles are Chinese


def test_a_cards_answer_is_kept_and_the_next_card_leaves_it_out(client, demo, app, writer, ch):
    view(client, "D1021", "D1002")
    first = card(client)["native"]["ext"]
    hide_url = first["products"][0]["hide_url"].removeprefix(SERVER)
    token = parse_qs(urlsplit(hide_url).query)["t"][0]
    beacon = client.post(hide_url, data={"reason": "product", "sku": "D1002", "beacon": "1"})
    assert beacon.status_code == 204
    after = card(client)["native"]["ext"]
    assert after["products"][0]["sku"] == "D1021"  # the visitor's next interest
    # What pub-native.js asks for after an answer: the answered token leaves the product out once more.
    again = card(client, f"&x={token}&xr=product&xs=D1002")["native"]["ext"]
    assert again["products"][0]["sku"] != "D1002"
    # Without the beacon flag (no script): a thanks page, as a card has no frame to show the next ad in.
    page = client.post(hide_url, data={"reason": "store"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert client.get(hide_url).status_code == 200  # the no-script page of the card's answer
    drain(writer)
    assert ch.execute("SELECT skus, reasons, impression_id FROM events WHERE event = 'hide'") == [
        (["D1002"], ["product"], first["impression_id"])]


# --- who may read a personalised card --------------------------------------------------------------


@pytest.fixture
def blog_placement(runner, demo, app) -> str:
    assert runner("create-placement", "blog-native", "--site", "blog.example", "--advertiser", "demo")[0] == 0
    app.extensions["adserver"].registry.reload()
    return "blog-native"


@pytest.mark.parametrize("origin", ["https://blog.example", "https://m.blog.example:8443", SERVER])
def test_pages_of_the_placements_site_or_ours_read_the_personalised_card(client, blog_placement, origin):
    view(client, "D1002")
    response = client.get(f"/ad.json?p={blog_placement}&format=native", headers={"Origin": origin})
    ext = response.get_json()["native"]["ext"]
    assert ext["path"] == "personalised" and ext["products"][0]["sku"] == "D1002"
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers.get_all("Vary")


@pytest.mark.parametrize("origin", ["https://evil.example", "https://blog.example.evil.example",
                                    "https://notblog.example", "null", "javascript:alert(1)", "x" * 5000])
def test_other_origins_get_the_card_of_a_visitor_without_a_profile(client, blog_placement, writer, ch, origin):
    view(client, "D1002")
    response = client.get(f"/ad.json?p={blog_placement}&format=native", headers={"Origin": origin})
    assert response.status_code == 200
    ext = response.get_json()["native"]["ext"]
    assert ext["path"] == "fallback" and ext["addressable"] is False
    assert ext["fallback_reason"] == native.FOREIGN_ORIGIN
    assert ext["products"][0]["reason"] == "popular"
    drain(writer)
    assert ch.execute("SELECT uid, addressable FROM events WHERE event = 'impression'") == [("", 0)]
    if origin == "null":  # an opaque origin is never named, so no cookie can come with it
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_placement_whose_site_is_no_host_name_is_personalised_only_on_our_pages(client, demo):
    view(client, "D1002")
    foreign = card(client, headers={"Origin": "https://demo.example"})["native"]["ext"]  # site "Demo microblog"
    assert foreign["path"] == "fallback" and foreign["fallback_reason"] == native.FOREIGN_ORIGIN
    assert card(client)["native"]["ext"]["path"] == "personalised"


def test_readable_by():
    from adserver.catalog.registry import Placement

    blog = Placement("p", "Blog.Example")
    assert native.readable_by(None, "https://ads.example", blog)
    assert native.readable_by("https://ADS.example", "https://ads.example", None)
    assert native.readable_by("https://www.blog.example", "https://ads.example", blog)
    assert not native.readable_by("http://ads.example", "https://ads.example", None)
    assert not native.readable_by("https://user@blog.example", "https://ads.example", blog)
    assert not native.readable_by("https://blog.example", "https://ads.example", None)
    assert not native.readable_by("https://blog.example", "https://ads.example", Placement("p", "my blog"))


def test_resized_variants_are_offered_for_the_image_box(client, demo, app, ch, redis_client):
    from adserver.catalog.image_store import OK, ProductImage, save_images
    from adserver.catalog.image_variants import Variant
    from adserver.catalog.storage import bump_version

    link = app.extensions["adserver"].catalog.get("demo")["D1002"].image_link
    variants = tuple(Variant(box, box, box * 3 // 4, f"{box:064x}"[:64], f"{box + 1:064x}"[:64])
                     for box in (256, 320, 640))
    save_images(ch, "demo", [ProductImage(link, OK, "", variants)])
    bump_version(redis_client, "demo")
    view(client, "D1002")
    image = assets(card(client, "&img=300x169"))[native.MAIN_IMAGE]["img"]
    assert image["type"] == 3 and (image["w"], image["h"]) == (320, 240)  # the smallest that covers 300 px
    assert image["url"] == f"{SERVER}/img/{variants[1].jpeg}.jpg"
    assert image["ext"]["srcset"] == f"{SERVER}/img/{variants[1].jpeg}.jpg 1x, {SERVER}/img/{variants[2].jpeg}.jpg 2x"
    assert {v["type"] for v in image["ext"]["variants"]} == {"image/webp", "image/jpeg"}
    saving = assets(card(client, "&img=300x169", headers={"Save-Data": "on"}))[native.MAIN_IMAGE]["img"]
    assert saving["ext"]["srcset"] == f"{SERVER}/img/{variants[1].jpeg}.jpg 1x"  # no 2x for a data saver


# --- what the feed holds ---------------------------------------------------------------------------


@pytest.fixture
def shop(create_advertiser, import_feed, runner, app) -> None:
    """A store without a campaign (no logo), one product on sale and one whose title is markup."""
    create_advertiser("shop")
    rows = [
        product("S1", "Kettle 水壶", price="199.00", sale_price="149.00", description="Boils in <b>two</b> minutes."),
        product("X1", "&lt;img src=x onerror=alert(1)&gt; " + "长" * 400, image_link=""),
    ]
    code, out = import_feed("shop", rows)
    assert code == 0, out
    assert runner("create-placement", "shop-feed", "--site", "Shop blog", "--advertiser", "shop")[0] == 0
    app.extensions["adserver"].registry.reload()


def test_sale_price_and_regular_price_both_show(client, shop):
    view(client, "S1", advertiser="shop")
    answer = client.get("/ad.json?p=shop-feed&format=native").get_json()
    a = assets(answer)
    assert a[native.TITLE]["title"]["text"] == "Kettle 水壶"
    assert a[native.PRICE]["data"] == {"type": 6, "value": "¥199.00"}
    assert a[native.SALE_PRICE]["data"] == {"type": 7, "value": "¥149.00"}
    assert a[native.DESCRIPTION]["data"]["value"] == "Boils in two minutes."
    # A picture that could not be resized (shop.example is not reachable): the feed's own, size unknown.
    assert a[native.MAIN_IMAGE]["img"] == {"type": 3, "url": "https://shop.example/img/S1.png"}
    assert a[native.CTA]["data"]["value"] == "去看看" and answer["native"]["ext"]["label"] == "广告"
    assert answer["native"]["ext"]["products"][0]["price_text"] == "¥149.00"
    # No campaign, so no logo: the page draws a monogram of the store's name.
    assert native.LOGO not in a and a[native.STORE]["data"]["value"] == "shop"


def test_markup_in_a_title_stays_text_and_long_titles_are_cut(client, shop):
    view(client, "X1", advertiser="shop")
    answer = client.get("/ad.json?p=shop-feed&format=native").get_json()
    a = assets(answer)
    title = a[native.TITLE]["title"]["text"]
    assert title.startswith("<img src=x onerror=alert(1)> 长") and title.endswith("…")
    assert len(title.replace("<", "&lt;").replace(">", "&gt;").encode()) <= native.TITLE_BYTES
    assert native.MAIN_IMAGE not in a  # the product has no picture


# --- hostile input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["garbage", "NATIVE", "native ", "native%00", "html", "x" * 3000, "%E2%80%AE"])
def test_unknown_formats_are_refused(client, demo, fmt):
    response = client.get(f"/ad.json?p=demo-feed&format={fmt}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad_request" and "format" in response.get_json()["message"]


@pytest.mark.parametrize("query", ["", "p=", "p=Demo-Feed", "p=" + "a" * 65, "p=demo-feed%0d%0aX:1", "p[]=demo-feed"])
def test_bad_placements_are_refused_with_cors_for_the_page(client, demo, query):
    response = client.get(f"/ad.json?format=native&{query}", headers={"Origin": "https://blog.example"})
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    assert response.headers["Access-Control-Allow-Origin"] == "https://blog.example"  # pub.js can read why


@pytest.mark.parametrize("query", ["&size=garbage", "&size=99999x1", "&r=short", "&r=" + "A" * 5000,
                                   "&format=garbage", "&a=<script>"])
def test_other_parameters_do_not_break_the_card(client, demo, query):
    answer = card(client, query)  # ignored: the card has no size, a bad nonce is replaced
    assert answer["native"]["assets"]


@pytest.mark.parametrize("img", ["big", "1x1", "15x100", "2001x100", "99999x99999", "480x270%0a", "480X270",
                                 "-480x270", "%D9%A4%D9%A8%D9%A0x270"])
def test_bad_image_hints_are_refused(client, demo, img):
    response = client.get(f"/ad.json?p=demo-feed&format=native&img={img}")
    assert response.status_code == 400 and "img" in response.get_json()["message"]


def test_a_placement_with_sizes_must_list_native(client, demo):
    response = client.get("/ad.json?p=demo-sidebar&format=native")
    assert response.status_code == 400
    assert "native is not allowed on placement demo-sidebar" in response.get_json()["message"]


def test_the_product_list_is_unchanged(client, demo):
    response = client.get("/ad.json?p=demo-feed&size=300x250&format=")
    assert response.status_code == 200 and response.get_json()["products"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
