"""Units show slot-sized pictures from /img/ once a catalog's images are resized; Save-Data gets less."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.adserver.catalog.localserver import LocalServer
from tests.adserver.catalog.pictures import photo, png_declaring
from tests.adserver.conftest import product
from tests.adserver.serving.test_ads import AdPage

pytestmark = pytest.mark.settings_env(ADSERVER_FETCH_ALLOW_LOOPBACK="1")
IMG = re.compile(r"/img/([0-9a-f]{32})\.(webp|jpg)")


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture
def shop(local_server, create_advertiser, import_feed, runner):
    """Advertiser ``shop`` on the loopback server: 4 products, S0-S2 with photos, S3 with an HTML page as its
    image; house advertiser of placement ``slot`` (a 300x250 unit shows the 4)."""
    create_advertiser("shop", "127.0.0.1")
    rows = []
    for n in range(4):
        name = f"{n}.jpg"
        if n == 3:
            local_server.body(f"/img/{name}", b"<!doctype html><p>moved</p>", "image/jpeg")
        else:
            local_server.body(f"/img/{name}", photo(800, 800, seed=n), "image/jpeg")
        rows.append(product(f"S{n}", link=local_server.url(f"/p/{n}"), image_link=local_server.url(f"/img/{name}")))
    code, out = import_feed("shop", rows)
    assert code == 0, out
    code, out = runner("create-placement", "slot", "--site", "blog.test", "--advertiser", "shop")
    assert code == 0, out
    return local_server


def unit(client, size: str = "300x250", **headers) -> tuple[str, AdPage]:
    response = client.get(f"/ad?p=slot&size={size}", headers=headers)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return html, AdPage(html)


def test_before_resizing_units_show_the_feeds_images(shop, client) -> None:
    html, page = unit(client)
    assert "srcset" not in html and "<picture>" not in html
    assert all(img["src"].startswith(shop.url("/img/")) for img in page.attrs_of("img"))


def test_resize_images_then_units_show_variants(shop, client, runner) -> None:
    code, out = runner("resize-images", "shop")
    assert code == 0, out
    assert "image of S3: not_image" in out and "images: 3 resized, 0 unchanged, 1 failed" in out
    html, page = unit(client)
    images, sources = page.attrs_of("img"), page.attrs_of("source")
    assert len(images) == 4 and len(sources) == 3  # S3 keeps its feed image, without variants
    for img, source in zip([img for img in images if "srcset" in img], sources):
        one, two = img["srcset"].split(", ")
        assert img["src"] == one.removesuffix(" 1x") and IMG.fullmatch(img["src"])
        assert two.endswith(" 2x") and IMG.fullmatch(two.removesuffix(" 2x"))
        assert source["type"] == "image/webp" and source["srcset"].count(".webp") == 2
        assert (img["width"], img["height"], img["loading"]) == ("60", "60", "lazy")
        for url in (img["src"], two.removesuffix(" 2x"), source["srcset"].split(" ")[0]):
            response = client.get(url)
            assert response.status_code == 200
            picture = Image.open(io.BytesIO(response.data))
            assert max(picture.size) in (64, 128) and picture.format in ("WEBP", "JPEG")
    assert [img["src"] for img in images if "srcset" not in img] == [shop.url("/img/3.jpg")]


def test_ad_json_lists_the_variants_and_keeps_the_feeds_image(shop, client, runner) -> None:
    assert runner("resize-images", "shop")[0] == 0
    decision = client.get("/ad.json?p=slot&size=300x250").get_json()
    assert decision["save_data"] is False
    with_variants = [p for p in decision["products"] if "images" in p]
    assert len(decision["products"]) == 4 and sorted(p["sku"] for p in with_variants) == ["S0", "S1", "S2"]
    for item in with_variants:
        assert item["image"].startswith(shop.url("/img/"))  # the contract's field: the feed's own
        assert [(v["w"], v["type"]) for v in item["images"]] == [
            (64, "image/webp"), (64, "image/jpeg"), (128, "image/webp"), (128, "image/jpeg")]
        assert all(v["url"].startswith("http://localhost/img/") for v in item["images"])


def test_save_data_gets_fewer_products_and_1x_only(shop, client, runner) -> None:
    assert runner("resize-images", "shop")[0] == 0
    full = client.get("/ad.json?p=slot&size=300x250").get_json()
    lite = client.get("/ad.json?p=slot&size=300x250", headers={"Save-Data": "on"}).get_json()
    assert lite["save_data"] is True and len(lite["products"]) == len(full["products"]) // 2 == 2
    assert all(len(p.get("images", [])) in (0, 2) for p in lite["products"])
    html, page = unit(client, **{"Save-Data": "on"})
    assert len(page.attrs_of("img")) == 2
    for img in page.attrs_of("img"):
        if "srcset" in img:
            assert " 2x" not in img["srcset"]
    assert client.get("/ad.json?p=slot&size=300x250", headers={"Save-Data": "off"}).get_json()["save_data"] is False


def test_import_feed_with_images_lists_failures_with_codes(local_server, create_advertiser, import_feed,
                                                           runner, tmp_path) -> None:
    create_advertiser("shop", "127.0.0.1")
    local_server.body("/a.jpg", photo(300, 300), "image/jpeg")
    local_server.body("/bomb.png", png_declaring(100_000, 100_000), "image/png")
    rows = [product("A", link=local_server.url("/p/a"), image_link=local_server.url("/a.jpg")),
            product("B", link=local_server.url("/p/b"), image_link=local_server.url("/bomb.png")),
            product("C", link=local_server.url("/p/c"), image_link="https://cdn.elsewhere.test/c.jpg")]
    path = tmp_path / "feed.json"
    path.write_text(json.dumps(rows))
    code, out = runner("import-feed", "shop", str(path), "--images")
    assert code == 0, out
    assert "image of B: decompression_bomb" in out and "image of C: domain" in out
    assert "images: 1 resized, 0 unchanged, 2 failed" in out


# --- /img/ ----------------------------------------------------------------------------------------

def test_variants_are_served_forever_and_immutable(shop, client, runner) -> None:
    assert runner("resize-images", "shop")[0] == 0
    html, page = unit(client)
    url = page.attrs_of("img")[0]["src"]
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    webp = page.attrs_of("source")[0]["srcset"].split(" ")[0]
    assert client.get(webp).mimetype == "image/webp"
    assert client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    digest = IMG.fullmatch(url)[1]
    assert client.get(f"/img/{digest}.webp").status_code == 404  # a JPEG's name with another extension


@pytest.mark.parametrize("path", [
    "/img/", "/img/0", "/img/" + "0" * 32 + ".jpg", "/img/" + "0" * 32 + ".png", "/img/" + "A" * 32 + ".jpg",
    "/img/" + "0" * 31 + ".jpg", "/img/" + "0" * 33 + ".jpg", "/img/../../etc/passwd", "/img/%2e%2e%2fsecret_key",
    "/img/" + "0" * 32 + ".jpg%00.html", "/img/" + "0" * 32 + ".jpg/x", "/img/" + "x" * 3000,
    "/img/%ff%fe.jpg", "/img/\u00e9" + "0" * 31 + ".jpg", "/img/" + "0" * 32 + ".JPG", "/img/0' OR '1'='1.jpg",
])
def test_unknown_or_malformed_names_are_404(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_units_with_many_products_show_webp_alone_within_the_byte_budget(shop, client, runner) -> None:
    from adserver.serving.units import MAX_BYTES

    assert runner("resize-images", "shop")[0] == 0
    html, page = unit(client, size="600x400")  # a 4 x 3 grid: <picture> markup for 12 would crowd titles out
    assert "<picture>" not in html and len(html.encode()) <= MAX_BYTES
    resized = [img for img in page.attrs_of("img") if "srcset" in img]
    assert len(resized) == 3
    for img in resized:
        assert IMG.fullmatch(img["src"])[2] == "webp" and IMG.fullmatch(img["srcset"].removesuffix(" 2x"))
        assert client.get(img["srcset"].removesuffix(" 2x")).status_code == 200
