"""``GET /img/<hash>.<ext>``: the resized product images, cacheable forever.

A name is the digest of the file's bytes (see :mod:`adserver.catalog.image_variants`), so a URL
always means the same bytes: browsers and CDNs keep them a year without asking again. Anything
that is not a known name with its own extension is a 404, never a 500.
"""

from __future__ import annotations

import re
import threading

from flask import Blueprint, Flask, Response, current_app, request

from adserver.catalog.image_store import ImageIndex, VariantCache, load_variant
from adserver.catalog.image_variants import CONTENT_TYPES, HASH_CHARS
from adserver.services import services
from tracker.errors import StoreError

bp = Blueprint("images", __name__)
_NAME = re.compile(rf"([0-9a-f]{{{HASH_CHARS}}})\.(webp|jpg)\Z")
_lock = threading.Lock()
CACHE_FOREVER = "public, max-age=31536000, immutable"


class ImageServices:
    """A serving process's image caches (one per app)."""

    def __init__(self, svc) -> None:
        self.index = ImageIndex(svc.stores.clickhouse, lambda: svc.stream_if_up().client)
        self.variants = VariantCache()


def image_services(app: Flask | None = None) -> ImageServices:
    """The app's image caches, made on first use."""
    app = app or current_app
    found = app.extensions.get("adserver_images")
    if found is None:
        with _lock:
            found = app.extensions.get("adserver_images")
            if found is None:
                found = app.extensions["adserver_images"] = ImageServices(app.extensions["adserver"])
    return found


def _not_found() -> Response:
    return Response("Not found.\n", status=404, mimetype="text/plain",
                    headers={"Cache-Control": "public, max-age=60", "X-Content-Type-Options": "nosniff"})


@bp.get("/img/", defaults={"name": ""})
@bp.get("/img/<path:name>")
def image(name: str) -> Response:
    match = _NAME.match(name)
    if not match:
        return _not_found()
    digest, ext = match.groups()
    if request.headers.get("If-None-Match", "").strip() == f'"{digest}"':
        return Response(status=304, headers={"Cache-Control": CACHE_FOREVER, "ETag": f'"{digest}"'})
    try:
        found = image_services().variants.get(digest, lambda h: load_variant(services().ch, h))
    except StoreError:
        return Response("Images are unavailable right now.\n", status=503, mimetype="text/plain",
                        headers={"Cache-Control": "no-store", "Retry-After": "5"})
    if found is None or found[0] != CONTENT_TYPES[ext]:
        return _not_found()
    return Response(found[1], mimetype=found[0], headers={
        "Cache-Control": CACHE_FOREVER, "X-Content-Type-Options": "nosniff", "ETag": f'"{digest}"',
        "Access-Control-Allow-Origin": "*", "Content-Security-Policy": "default-src 'none'",
    })
