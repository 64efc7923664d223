"""Product images sized for ad slots: making the variants of a catalog, and choosing them for a unit.

Feeds link 800-2000 px photos of 100-400 KB; a four-product unit would cost a phone a megabyte. So
each feed image is fetched once (:mod:`adserver.catalog.fetch`: the advertiser's landing domains,
public addresses, a size and time budget), checked and resized (:mod:`adserver.catalog.image_variants`)
and stored (:mod:`adserver.catalog.image_store`); units then show ``/img/<hash>.<ext>`` variants
at the slot's size, 1x and 2x, WebP with a JPEG fallback.

Resizing happens after an import has stored the products, never on an ad request, and not within
the import itself, which stays fast (resizing costs about 0.1 s of CPU per new image, plus its download):
``import-feed --images`` runs it right after storing (the products are live meanwhile, with the
feed's own images), and ``resize-images`` does it for feeds uploaded through the API (an
operator's timer), so an upload answers at once. Images
already resized are not fetched again unless ``refresh`` asks, and then conditionally (ETag,
Last-Modified): an unchanged picture costs a 304. Until an image has variants, or when its fetch
fails, units show the feed's ``image_link`` as they always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import redis

from adserver.catalog.fetch import FetchError, fetch
from adserver.catalog.image_store import OK, ImageIndex, ProductImage, load_images, save_images
from adserver.catalog.image_variants import BOXES, ImageError, Variant, variants_of
from adserver.catalog.product import Product
from adserver.catalog.storage import bump_version, load_products
from tracker.clickhouse import ClickHouse

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 10 * 1024 * 1024
FETCH_TIMEOUT = 15.0
WORKERS = 4  # fetches in flight: stores' servers are slow, not our two cores
SAVE_EVERY = 50  # images per write, so a long run shows progress and a crash loses little
MAX_CHOSEN = 20_000  # pictures an index snapshot remembers (images x slot sizes x Save-Data)
ACCEPT = "image/webp,image/jpeg,image/png,image/gif;q=0.9,*/*;q=0.1"


@dataclass(frozen=True)
class ImageFailure:
    sku: str
    image_link: str
    code: str
    reason: str


@dataclass
class ImageReport:
    """What a resize run did: images resized, kept as they were, and the products whose image failed."""

    resized: int = 0
    unchanged: int = 0
    failures: list[ImageFailure] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"resized": self.resized, "unchanged": self.unchanged, "failed": len(self.failures),
                "failures": [asdict(f) for f in self.failures]}


def process_image(url: str, domains: tuple[str, ...], allow_loopback: bool = False,
                  previous: ProductImage | None = None) -> ProductImage:
    """Fetch and resize one image; a failure is a record with its code (``previous`` kept if it had
    variants: a store's hiccup must not take resized images away)."""
    headers = {"Accept": ACCEPT}
    current = previous is not None and previous.status == OK and previous.variants
    if current and previous.etag:
        headers["If-None-Match"] = previous.etag
    if current and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    try:
        result = fetch(url, allowed_domains=domains, max_bytes=MAX_IMAGE_BYTES, timeout=FETCH_TIMEOUT,
                       allow_loopback=allow_loopback, headers=headers)
        if result.status == 304 and current:
            return previous
        variants, files = variants_of(result.body)
    except (FetchError, ImageError) as exc:
        return ProductImage(url, exc.code, str(exc))
    return ProductImage(url, OK, "", tuple(variants), result.headers.get("etag", ""),
                        result.headers.get("last-modified", ""), files=tuple(files))


def resize_images(ch: ClickHouse, redis_client: redis.Redis | None, advertiser: str, domains: Iterable[str],
                  products: Iterable[Product] | None = None, *, allow_loopback: bool = False, refresh: bool = False,
                  workers: int = WORKERS, progress: Callable[[int], object] | None = None,
                  process: Callable[..., ProductImage] = process_image) -> ImageReport:
    """Make the variants of the images of ``products`` (default: the advertiser's catalog).

    Images with variants are skipped unless ``refresh``; failed ones are tried again. Serving
    processes are told (catalog version) once the records are written. ``process`` turns a URL into
    a record (the demo passes one that reads its own files).
    """
    domains = tuple(domains)
    if products is None:
        products = load_products(ch, advertiser).values()
    skus: dict[str, list[str]] = {}
    for product in products:
        if product.image_link:
            skus.setdefault(product.image_link, []).append(product.sku)
    known = load_images(ch, advertiser)
    report = ImageReport()
    todo = []
    for url in skus:
        previous = known.get(url)
        if not refresh and previous is not None and previous.status == OK and previous.variants:
            report.unchanged += 1
        else:
            todo.append(url)
    batch: list[ProductImage] = []
    done = 0

    def write() -> None:
        if batch:
            save_images(ch, advertiser, batch)
            batch.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="resize") as pool:
        results = pool.map(lambda u: (u, process(u, domains, allow_loopback, known.get(u))), todo)
        for url, image in results:
            done += 1
            previous = known.get(url)
            if image.status != OK:
                report.failures.extend(ImageFailure(sku, url, image.status, image.error) for sku in skus[url])
                if previous is not None and previous.status == OK and previous.variants:
                    continue  # keep the variants it has
            elif image is previous:
                report.unchanged += 1
                continue
            else:
                report.resized += 1
            batch.append(image)
            if len(batch) >= SAVE_EVERY:
                write()
            if progress is not None and done % 100 == 0:
                progress(done)
    write()
    if redis_client is not None and todo:
        bump_version(redis_client, advertiser)
    return report


@dataclass(frozen=True)
class ImageChoice:
    """How a unit shows one product's picture in a ``width`` x ``height`` box.

    ``src`` is the 1x JPEG (or the feed's image while no variant exists), ``srcset`` the JPEG 1x and 2x
    candidates, ``webp_srcset`` the same in WebP (a ``<source type="image/webp">``); both empty
    without variants. ``width``/``height``: the 1x picture's pixels. ``variants``: every file offered,
    as ``{"url", "w", "h", "type"}``.
    """

    src: str
    srcset: str
    width: int
    height: int
    variants: list[dict] = field(default_factory=list)
    webp_srcset: str = ""


def _pick(variants: tuple[Variant, ...], side: int) -> Variant:
    """The smallest variant whose box covers ``side`` pixels (the largest there is otherwise)."""
    for variant in variants:
        if variant.box >= side:
            return variant
    return variants[-1]


def _urls(base: str, variant: Variant) -> tuple[str, str]:
    return f"{base}/img/{variant.webp}.webp", f"{base}/img/{variant.jpeg}.jpg"


def choose(variants: tuple[Variant, ...], image_link: str, width: int, height: int, save_data: bool,
           base: str = "") -> ImageChoice:
    """The choice for one image (see :func:`image_choices`)."""
    if not variants:
        return ImageChoice(image_link, "", width, height)
    variants = tuple(sorted(variants, key=lambda v: v.box))
    side = max(1, width, height)
    one = _pick(variants, side)
    picked = [(one, "1x")]
    if not save_data:
        two = _pick(variants, 2 * side)
        if (two.w, two.h) != (one.w, one.h):
            picked.append((two, "2x"))
    offered, webp, jpeg = [], [], []
    for variant, density in picked:
        webp_url, jpeg_url = _urls(base, variant)
        webp.append(f"{webp_url} {density}")
        jpeg.append(f"{jpeg_url} {density}")
        offered += [{"url": webp_url, "w": variant.w, "h": variant.h, "type": "image/webp"},
                    {"url": jpeg_url, "w": variant.w, "h": variant.h, "type": "image/jpeg"}]
    return ImageChoice(_urls(base, one)[1], ", ".join(jpeg), one.w, one.h, offered, ", ".join(webp))


def image_choices(source: ImageIndex | ClickHouse | Mapping[str, tuple[Variant, ...]], advertiser: str,
                  products: Iterable[Product], width: int, height: int, save_data: bool,
                  base: str = "") -> dict[str, ImageChoice]:
    """Each product's picture for a ``width`` x ``height`` slot, by sku: the variants that cover the
    box at 1x and 2x (1x only with ``save_data``), or the feed's image while none exist.

    ``source``: a serving process's :class:`~adserver.catalog.image_store.ImageIndex`, a ClickHouse
    client (read now), or a mapping image URL -> variants. ``base`` prefixes the ``/img/`` URLs (an
    origin for JSON read elsewhere; empty for a unit on this server's own page).
    """
    if isinstance(source, ImageIndex):
        index = source.get(advertiser)
    elif isinstance(source, Mapping):
        index = source
    else:
        index = {url: image.variants for url, image in load_images(source, advertiser).items()
                 if image.status == OK}
    chosen = getattr(index, "chosen", None)  # an ImageIndex snapshot remembers its choices
    out = {}
    for p in products:
        key = (p.image_link, width, height, save_data, base)
        choice = chosen.get(key) if chosen is not None else None
        if choice is None:
            choice = choose(index.get(p.image_link, ()), p.image_link, width, height, save_data, base)
            if chosen is not None and len(chosen) < MAX_CHOSEN:  # bounded: ``base`` can come from a Host
                chosen[key] = choice
        out[p.sku] = choice
    return out


__all__ = ["BOXES", "ImageChoice", "ImageFailure", "ImageReport", "choose", "image_choices", "process_image",
           "resize_images"]
