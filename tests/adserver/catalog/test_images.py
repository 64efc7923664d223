"""Product images: only real pictures become variants, sized for the slots, stored once, served forever."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from adserver.catalog.image_store import OK, ProductImage, load_images
from adserver.catalog.image_variants import BOXES, MAX_PIXELS, ImageError, decode, make_variants, variants_of
from adserver.catalog.images import choose, image_choices, process_image, resize_images
from adserver.catalog.product import Product
from tests.adserver.catalog.pictures import photo, png_declaring

LOCAL = ("127.0.0.1",)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- what is a picture ----------------------------------------------------------------------------

@pytest.mark.parametrize("data, code", [
    (png_declaring(100_000, 100_000), "decompression_bomb"),  # Pillow's guard, raised as an error
    (png_declaring(5000, 5000), "too_many_pixels"),  # under Pillow's limit, over ours
    (b"<!doctype html><html><body>not a picture</body></html>", "not_image"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not_image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not_image"),  # EPS would run Ghostscript
    (b"BM" + b"\0" * 60, "not_image"),  # BMP: a real format, not one we take
    (b"", "not_image"),
])
def test_what_is_not_a_picture_we_use_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(ImageError) as info:
        decode(data)
    assert info.value.code == code, str(info.value)


def test_a_truncated_picture_is_refused() -> None:
    data = photo(300, 200)
    with pytest.raises(ImageError) as info:
        decode(data[: len(data) // 2])
    assert info.value.code == "bad_image"


def test_our_pixel_cap_is_below_pillows() -> None:
    assert MAX_PIXELS < Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_the_four_web_formats_decode(fmt: str) -> None:
    assert decode(photo(120, 80, fmt=fmt)).size == (120, 80)


# --- variants -------------------------------------------------------------------------------------

def test_variants_fit_every_box_keep_the_ratio_and_are_content_addressed() -> None:
    variants, files = variants_of(photo(1200, 800))
    assert [v.box for v in variants] == sorted(BOXES)
    by_hash = {f.hash: f for f in files}
    for variant in variants:
        assert (variant.w, variant.h) == (variant.box, round(variant.box * 2 / 3))
        webp, jpeg = by_hash[variant.webp], by_hash[variant.jpeg]
        assert (webp.ext, jpeg.ext) == ("webp", "jpg")
        assert opened(webp.data).format == "WEBP" and opened(jpeg.data).format == "JPEG"
        assert opened(jpeg.data).size == (variant.w, variant.h)
    for f in files:
        assert re.fullmatch(r"[0-9a-f]{32}", f.hash)
    assert len(by_hash) == 2 * len(BOXES)
    assert variants_of(photo(1200, 800))[0] == variants  # the same bytes give the same names


def test_a_small_picture_is_never_enlarged() -> None:
    variants, files = variants_of(photo(50, 30, fmt="PNG"))
    assert {(v.w, v.h) for v in variants if v.box >= 50} == {(50, 30)}
    assert (variants[0].w, variants[0].h) == (40, 24)
    assert len(files) == 4  # 40 px, and one 50 px file for every larger box


def test_orientation_is_applied_and_metadata_dropped() -> None:
    image = opened(photo(300, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show upright
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    variants, files = variants_of(out.getvalue())
    assert (variants[-1].w, variants[-1].h) == (100, 300)
    for f in files:
        assert b"SecretCam" not in f.data and not opened(f.data).getexif()


def test_transparency_is_kept_in_webp_and_flattened_in_jpeg() -> None:
    image = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (25, 25, 75, 75))
    out = io.BytesIO()
    image.save(out, "PNG")
    variants, files = make_variants(decode(out.getvalue()))
    by_hash = {f.hash: f for f in files}
    webp, jpeg = opened(by_hash[variants[-1].webp].data), opened(by_hash[variants[-1].jpeg].data)
    assert webp.mode == "RGBA" and webp.getpixel((2, 2))[3] == 0
    assert jpeg.mode == "RGB" and min(jpeg.getpixel((2, 2))) > 240  # white, not black


# --- choosing for a slot --------------------------------------------------------------------------

def test_choices_cover_the_slot_at_1x_and_2x_webp_first() -> None:
    variants = tuple(variants_of(photo(600, 600))[0])
    choice = choose(variants, "https://shop.example/a.jpg", 60, 60, save_data=False, base="https://ads.test")
    one, two = variants[1], variants[3]  # the 64 and 128 px boxes
    assert (one.box, two.box) == (64, 128)
    assert choice.src == f"https://ads.test/img/{one.jpeg}.jpg"
    assert choice.srcset == f"https://ads.test/img/{one.jpeg}.jpg 1x, https://ads.test/img/{two.jpeg}.jpg 2x"
    assert choice.webp_srcset == f"https://ads.test/img/{one.webp}.webp 1x, https://ads.test/img/{two.webp}.webp 2x"
    assert (choice.width, choice.height) == (64, 64)
    assert [(v["w"], v["type"]) for v in choice.variants] == [
        (64, "image/webp"), (64, "image/jpeg"), (128, "image/webp"), (128, "image/jpeg")]
    lite = choose(variants, "https://shop.example/a.jpg", 60, 60, save_data=True)
    assert lite.srcset == f"/img/{one.jpeg}.jpg 1x" and len(lite.variants) == 2


def test_without_variants_the_feeds_image_is_shown() -> None:
    product = Product("A1", "A", "https://shop.example/p/1", "https://shop.example/a.jpg")
    [choice] = image_choices({}, "shop", [product], 60, 60, False).values()
    assert (choice.src, choice.srcset, choice.variants) == ("https://shop.example/a.jpg", "", [])


def test_a_slot_larger_than_every_box_gets_the_largest() -> None:
    variants = tuple(variants_of(photo(900, 900))[0])
    choice = choose(variants, "", 500, 500, save_data=False)
    assert choice.width == 640 and choice.srcset.count("x") == 1  # no 2x larger than the 1x


# --- fetching and storing -------------------------------------------------------------------------

def _products(server, *names: str) -> list[Product]:
    return [Product(f"S{n}", f"Product {n}", server.url(f"/p/{n}"), server.url(f"/img/{name}"))
            for n, name in enumerate(names)]


def test_process_image_reports_fetch_and_content_failures(local_server) -> None:
    local_server.body("/fake.jpg", b"<html>not found</html>", "image/jpeg")
    local_server.body("/bomb.png", png_declaring(100_000, 100_000), "image/png")
    checks = {"/fake.jpg": "not_image", "/bomb.png": "decompression_bomb", "/missing.jpg": "http_status"}
    for path, code in checks.items():
        image = process_image(local_server.url(path), LOCAL, allow_loopback=True)
        assert (image.status, image.variants) == (code, ()), image
    assert process_image(local_server.url("/fake.jpg"), LOCAL).status == "private_address"  # the setting is off
    assert process_image(local_server.url("/fake.jpg"), ("shop.example",), True).status == "domain"


def test_resize_images_stores_variants_and_reports_failures(local_server, ch, redis_client) -> None:
    local_server.body("/img/a.jpg", photo(400, 300), "image/jpeg", headers={"ETag": '"a1"'})
    local_server.body("/img/b.png", photo(200, 200, fmt="PNG"), "image/png")
    local_server.body("/img/page.jpg", b"<html></html>", "image/jpeg")
    products = _products(local_server, "a.jpg", "b.png", "page.jpg", "gone.jpg", "a.jpg")
    report = resize_images(ch, redis_client, "shop", LOCAL, products, allow_loopback=True)
    assert (report.resized, report.unchanged) == (2, 0)
    assert sorted((f.sku, f.code) for f in report.failures) == [("S2", "not_image"), ("S3", "http_status")]
    stored = load_images(ch, "shop")
    assert {url.rsplit("/", 1)[1]: image.status for url, image in stored.items()} == {
        "a.jpg": OK, "b.png": OK, "page.jpg": "not_image", "gone.jpg": "http_status"}
    a = stored[local_server.url("/img/a.jpg")]
    assert a.etag == '"a1"' and len(a.variants) == len(BOXES)
    count = ch.execute("SELECT count() FROM image_variants")[0][0]
    assert count == len({h for i in stored.values() for v in i.variants for h in (v.webp, v.jpeg)})
    assert redis_client.get("catalog:ver:{shop}") == b"1"  # serving processes reload their index

    fetched = len(local_server.requests)
    again = resize_images(ch, redis_client, "shop", LOCAL, products, allow_loopback=True)
    assert (again.resized, again.unchanged, len(again.failures)) == (0, 2, 2)
    assert len(local_server.requests) - fetched == 2  # only the failed ones are tried again


def test_refresh_is_conditional_and_a_failure_keeps_the_variants(local_server, ch, redis_client) -> None:
    def conditional(req) -> None:
        if req.headers.get("If-None-Match") == '"a1"':
            req.send_response(304)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        data = photo(300, 300)
        req.send_response(200)
        req.send_header("ETag", '"a1"')
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    local_server.routes["/img/a.jpg"] = conditional
    products = _products(local_server, "a.jpg")
    assert resize_images(ch, redis_client, "shop", LOCAL, products, allow_loopback=True).resized == 1
    before = load_images(ch, "shop")
    report = resize_images(ch, redis_client, "shop", LOCAL, products, allow_loopback=True, refresh=True)
    assert (report.resized, report.unchanged) == (0, 1)
    assert local_server.requests[-1][1]["if-none-match"] == '"a1"'
    local_server.body("/img/a.jpg", b"", status=500)
    report = resize_images(ch, redis_client, "shop", LOCAL, products, allow_loopback=True, refresh=True)
    assert [f.code for f in report.failures] == ["http_status"]
    assert load_images(ch, "shop") == before  # the variants it had are still shown


def test_image_choices_read_from_clickhouse(ch) -> None:
    from adserver.catalog.image_store import save_images

    variants, files = variants_of(photo(300, 300))
    save_images(ch, "shop", [ProductImage("https://shop.example/a.jpg", OK, "", tuple(variants), files=tuple(files))])
    product = Product("A1", "A", "https://shop.example/p/1", "https://shop.example/a.jpg")
    choice = image_choices(ch, "shop", [product], 124, 124, False)["A1"]
    assert choice.width == 128 and [v["w"] for v in choice.variants] == [128, 128, 256, 256]
    assert image_choices(ch, "other", [product], 124, 124, False)["A1"].src == "https://shop.example/a.jpg"


def test_an_index_snapshot_remembers_its_choices_per_slot_and_a_reload_forgets_them() -> None:
    from adserver.catalog.image_store import VariantIndex

    variants = tuple(variants_of(photo(300, 300))[0])
    product = Product("A1", "A", "https://shop.example/p/1", "https://shop.example/a.jpg")
    index = VariantIndex({product.image_link: variants})
    first = image_choices(index, "shop", [product], 60, 60, False)["A1"]
    assert first == choose(variants, product.image_link, 60, 60, False)
    assert image_choices(index, "shop", [product], 60, 60, False)["A1"] is first  # remembered
    assert image_choices(index, "shop", [product], 124, 124, False)["A1"].width == 128  # per slot
    assert image_choices(index, "shop", [product], 60, 60, True)["A1"].srcset.count(",") == 0  # per Save-Data
    assert len(index.chosen) == 3
    reloaded = VariantIndex({product.image_link: variants[:1]})  # a resize made other variants
    assert image_choices(reloaded, "shop", [product], 60, 60, False)["A1"] != first
