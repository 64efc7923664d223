"""What a phone downloads for one ad unit, before and after slot-sized images; and what resizing costs.

``python -m scripts.image_bytes [--products 40]`` makes real-world-sized product photos (1200x1200,
crops of real photographs with grain, or synthetic gradients and noise), serves them from a store on loopback, imports
a catalog through the product's own path (feed import, then the resize job fetching over HTTP) into
a throw-away embedded data directory, and prints for every standard unit size: the unit's HTML, the
images a 2x phone loads with the feed's originals, and with the variants (WebP, and the JPEG
fallback); then the resize time per 1,000 products on this machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SIZES = ("320x50", "320x100", "728x90", "160x600", "300x250", "responsive")
GOAL = ("300x250", 40 * 1024)  # a full 300x250 unit with its images at 2x


def make_photos(count: int, kind: str = "real") -> list[bytes]:
    """``real``: square crops of the two photographs scikit-learn ships (``load_sample_images``: a temple
    and a flower, 640x427), scaled to 1200x1200 with sensor-like grain, so the variants keep real
    photographic detail; ``synthetic``: gradients and noise, which downscale to very smooth pictures
    and so flatter the variants' sizes."""
    if kind == "synthetic":
        from tests.adserver.catalog.pictures import photo

        return [photo(1200, 1200, seed=n, noise=7.0) for n in range(count)]
    import io

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sources = load_sample_images().images
    rng = np.random.default_rng(7)
    photos = []
    for n in range(count):
        source = sources[n % len(sources)]
        height, width = source.shape[:2]
        side = int(rng.integers(200, height + 1))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = Image.fromarray(source[top:top + side, left:left + side]).resize((1200, 1200), Image.LANCZOS)
        grain = rng.normal(0, 4.0, (1200, 1200, 3))
        pixels = np.clip(np.asarray(crop, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        photos.append(out.getvalue())
    return photos


def serve(files: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def measure(count: int, photos_kind: str = "real") -> dict:
    from adserver import create_app
    from adserver.catalog.images import resize_images
    from adserver.catalog.registry import save_advertiser, save_placement
    from adserver.catalog.upload import import_products
    from adserver.serving.images import image_services
    from tracker.settings import load_settings

    photos = make_photos(count, photos_kind)
    files = {f"/img/{n}.jpg": data for n, data in enumerate(photos)}
    httpd = serve(files)
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings({"ADSERVER_DATA_DIR": data_dir, "ADSERVER_FETCH_ALLOW_LOOPBACK": "1",
                                  "ADSERVER_DEMO": "0"})
        app = create_app(settings, start_writer=False)
        services = app.extensions["adserver"]
        ch = services.ch
        save_advertiser(ch, "shop", "Shop", "CNY", domains=["127.0.0.1"])
        save_placement(ch, "slot", "blog.test", advertisers=["shop"])
        feed = [{"id": f"P{n}", "title": f"商品 {n} Product with a realistic title length", "link": f"{origin}/p/{n}",
                 "image_link": f"{origin}/img/{n}.jpg", "price": "129.00", "currency": "CNY"} for n in range(count)]
        import_products(services.stores, "shop", json.dumps(feed).encode(), "json", full=True)
        client = app.test_client()
        before = {size: _unit(client, size, files, origin) for size in SIZES}
        started = time.perf_counter()
        report = resize_images(ch, services.stores.redis("web"), "shop", ["127.0.0.1"], allow_loopback=True)
        elapsed = time.perf_counter() - started
        time.sleep(image_services(app).index.check_seconds)  # serving processes see the new variants
        after = {size: _unit(client, size, files, origin) for size in SIZES}
        services.close()
    httpd.shutdown()
    return {"photos": photos, "before": before, "after": after, "seconds": elapsed, "report": report}


def _densest(srcset: str) -> str:
    """The URL a 2x screen takes from a srcset of ``URL 1x, URL 2x`` (or of one candidate)."""
    return srcset.split(", ")[-1].split(" ")[0]


def _unit(client, size: str, files: dict[str, bytes], origin: str) -> dict:
    """Bytes of one unit as a 2x phone with WebP loads it (and with JPEG only)."""
    html = client.get(f"/ad?p=slot&size={size}").get_data(as_text=True)
    webp = jpeg = 0
    images = 0
    for tag in re.findall(r"<picture>.*?</picture>|<img [^>]*>", html):
        images += 1
        if tag.startswith("<picture>"):
            webp += len(client.get(_densest(re.search(r'<source[^>]*srcset="([^"]*)"', tag)[1])).data)
            jpeg += len(client.get(_densest(re.search(r'<img[^>]*srcset="([^"]*)"', tag)[1])).data)
        else:
            src = re.search(r'src="([^"]*)"', tag)[1]
            original = len(files.get(src.removeprefix(origin), b""))
            webp += original
            jpeg += original
    return {"html": len(html.encode()), "images": images, "webp": webp, "jpeg": jpeg}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=40, help="catalog size (default 40)")
    parser.add_argument("--photos", choices=("real", "synthetic"), default="real",
                        help="crops of real photographs (default) or synthetic gradients and noise")
    args = parser.parse_args(argv)
    result = measure(args.products, args.photos)
    sizes = [len(p) for p in result["photos"]]
    print(f"{len(sizes)} photos 1200x1200: {min(sizes) // 1024}-{max(sizes) // 1024} KB, "
          f"mean {sum(sizes) // len(sizes) // 1024} KB")
    print(f"{'unit':<11} {'products':>8} {'before (HTML + originals)':>26} {'after, WebP 2x':>15} "
          f"{'after, JPEG 2x':>15}")
    for size in SIZES:
        b, a = result["before"][size], result["after"][size]
        print(f"{size:<11} {a['images']:>8} {(b['html'] + b['webp']) / 1024:>23.1f} KB "
              f"{(a['html'] + a['webp']) / 1024:>12.1f} KB {(a['html'] + a['jpeg']) / 1024:>12.1f} KB")
    report = result["report"]
    per_thousand = result["seconds"] / max(1, report.resized) * 1000
    print(f"resizing: {report.resized} images in {result['seconds']:.1f} s, {per_thousand:.0f} s per 1,000 "
          f"products ({len(report.failures)} failed)")
    goal_size, goal_bytes = GOAL
    a = result["after"][goal_size]
    worst = a["html"] + max(a["webp"], a["jpeg"])
    print(f"goal: a full {goal_size} unit at 2x <= {goal_bytes // 1024} KB: {worst / 1024:.1f} KB "
          f"({'met' if worst <= goal_bytes else 'NOT met'})")
    return 0 if worst <= goal_bytes else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
