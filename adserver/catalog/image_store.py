"""Where resized images live: ClickHouse for every web worker and host, plus each process's hot copies.

ClickHouse holds the variants' bytes (``image_variants``, by hash) and each feed image's variants
(``product_images``), so any worker on any host can answer ``/img/<hash>.<ext>`` and every unit
knows the variants of its products, with no shared file system. Serving reads them through two
bounded in-process caches: :class:`VariantCache` (bytes by hash, so a popular picture costs no
database call after its first request) and :class:`ImageIndex` (each advertiser's image URL ->
variants, reloaded like the catalog when an import or a resize bumps the catalog version).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from adserver.catalog.cache import CatalogVersioned
from adserver.catalog.image_variants import Encoded, Variant
from tracker.clickhouse import ClickHouse
from tracker.schema import IMAGE_VARIANTS_COLUMNS, PRODUCT_IMAGES_COLUMNS

OK = "ok"
LOOKUP_BATCH = 2000


@dataclass(frozen=True)
class ProductImage:
    """What is known of one feed image: ``status`` ``ok`` with its variants, or a failure code."""

    url: str
    status: str
    error: str = ""
    variants: tuple[Variant, ...] = ()
    etag: str = ""
    last_modified: str = ""
    files: tuple[Encoded, ...] = field(default=(), repr=False, compare=False)  # new bytes to store


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def save_images(ch: ClickHouse, advertiser: str, images: Iterable[ProductImage]) -> int:
    """Store the images' records and those of their files not stored yet; returns the files written."""
    images = list(images)
    files = {f.hash: f for image in images for f in image.files}
    written = 0
    if files:
        hashes, known = tuple(files), set()
        for start in range(0, len(hashes), LOOKUP_BATCH):  # a query's text is limited (256 KB by default)
            known.update(r[0] for r in ch.execute("SELECT hash FROM image_variants WHERE hash IN %(h)s",
                                                  {"h": hashes[start:start + LOOKUP_BATCH]}))
        now = _now()
        rows = [(f.hash, f.content_type, f.width, f.height, base64.b64encode(f.data).decode("ascii"), now)
                for f in files.values() if f.hash not in known]
        written = ch.insert("image_variants", IMAGE_VARIANTS_COLUMNS, rows) if rows else 0
    version, now = time.time_ns(), _now()
    ch.insert("product_images", PRODUCT_IMAGES_COLUMNS, [
        (advertiser, i.url, i.status, i.error[:500], json.dumps([v.as_dict() for v in i.variants]), i.etag[:200],
         i.last_modified[:100], version, now)
        for i in images
    ])
    return written


def load_images(ch: ClickHouse, advertiser: str) -> dict[str, ProductImage]:
    """The advertiser's image records by URL."""
    out = {}
    rows = ch.execute("SELECT image_url, status, error, variants, etag, last_modified FROM product_images FINAL "
                      "WHERE advertiser = %(a)s", {"a": advertiser})
    for url, status, error, variants, etag, modified in rows:
        try:
            parsed = tuple(Variant.from_dict(v) for v in json.loads(variants or "[]"))
        except (ValueError, KeyError, TypeError):
            parsed = ()
        out[url] = ProductImage(url, status, error, parsed, etag, modified)
    return out


def load_variant(ch: ClickHouse, digest: str) -> tuple[str, bytes] | None:
    """``(content type, bytes)`` of a stored variant, or None."""
    rows = ch.execute("SELECT content_type, data FROM image_variants WHERE hash = %(h)s LIMIT 1", {"h": digest})
    if not rows:
        return None
    return rows[0][0], base64.b64decode(rows[0][1])


class VariantCache:
    """Variant bytes by hash, most recently used kept, at most ``max_bytes`` in all.

    Content-addressed entries never go stale, so nothing is ever reloaded; only space is managed.
    """

    def __init__(self, max_bytes: int = 32 * 1024 * 1024, max_item: int = 512 * 1024) -> None:
        self.max_bytes, self.max_item = max_bytes, max_item
        self._items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, digest: str, load: Callable[[str], tuple[str, bytes] | None]) -> tuple[str, bytes] | None:
        with self._lock:
            item = self._items.get(digest)
            if item is not None:
                self._items.move_to_end(digest)
                return item
        item = load(digest)
        if item is None or len(item[1]) > self.max_item:
            return item
        with self._lock:
            if digest not in self._items:
                self._items[digest] = item
                self._size += len(item[1])
                while self._size > self.max_bytes and self._items:
                    _, (_, old) = self._items.popitem(last=False)
                    self._size -= len(old)
        return item


class VariantIndex(dict):
    """One advertiser's image URL -> variants, with the pictures already chosen from them for a slot
    (``chosen``, filled by :func:`~adserver.catalog.images.image_choices`): every ad of the advertiser
    would otherwise choose the same pictures again, sorting variants and formatting their URLs. The
    choices live and go with this snapshot of the index (a reload makes a new one)."""

    __slots__ = ("chosen",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chosen: dict = {}


def _images_with_variants(ch: ClickHouse, advertiser: str) -> VariantIndex:
    return VariantIndex({url: image.variants for url, image in load_images(ch, advertiser).items()
                         if image.status == OK and image.variants})


class ImageIndex(CatalogVersioned[dict[str, tuple[Variant, ...]]]):
    """Each advertiser's image URL -> variants, in memory, reloaded with the catalog version (a resize
    bumps it). Only images with variants are kept; without an index units show the feed's own images."""

    def __init__(self, ch_factory: Callable[[], ClickHouse], redis_factory: Callable[[], redis.Redis],
                 check_seconds: float = 5.0) -> None:
        super().__init__(ch_factory, redis_factory, _images_with_variants, check_seconds, fallback=dict)
