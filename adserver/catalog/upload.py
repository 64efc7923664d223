"""Getting feeds in: one import path for the CLI, the authenticated HTTP upload and URL fetches.

``PUT /api/v1/feeds/<advertiser>`` takes the feed as the request body with an advertiser API token
(``Authorization: Bearer ads_...``); ``?full=1`` says the feed is the whole catalog. The answer is the
import report as JSON. Fetching a store's feed URL is :mod:`adserver.catalog.feed_sources`.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify, request

from adserver.api_errors import api_error
from adserver.catalog.drop_guard import check_drop
from adserver.catalog.feed import ImportReport, parse_feed
from adserver.catalog.registry import Registry
from adserver.catalog.storage import bump_version, store_products
from adserver.catalog.tokens import bearer_token, token_advertiser
from adserver.limits import accepts_body
from adserver.services import services
from tracker.errors import AdServerError, FeedError
from tracker.events import ADVERTISER_RE
from tracker.stores import Stores

MAX_FEED_BYTES = 50 * 1024 * 1024

bp = Blueprint("feeds", __name__)


def import_products(stores: Stores, advertiser: str, data: bytes, fmt: str | None, full: bool,
                    progress=None, force: bool = False, resize_images: bool = False) -> ImportReport:
    """Validate and store a feed for a registered advertiser; returns the import report.

    A full feed with no valid product is refused rather than emptying the catalog, and so is one that
    would remove more than ``ADSERVER_FEED_MAX_DROP`` of it unless ``force`` (see
    :mod:`adserver.catalog.drop_guard`). Links must be on the advertiser's landing domains: one
    without any declared gets nothing imported. With ``resize_images`` the feed's images are then
    resized (``report.images``: see :mod:`adserver.catalog.images`).
    """
    ch = stores.clickhouse()
    registry = Registry(lambda: ch)
    registry.reload()
    if advertiser not in registry.advertisers:
        raise AdServerError(f"unknown advertiser {advertiser!r}: create it with create-advertiser", "unknown_advertiser")
    record = registry.advertisers[advertiser]
    if not record.domains:
        raise AdServerError(f"advertiser {advertiser!r} has no landing domain, so no product link can be accepted: "
                            f"an operator declares the store's domains with create-advertiser {advertiser} "
                            "--domain <host>", "no_landing_domain")
    products, report = parse_feed(data, fmt, default_currency=record.currency, progress=progress,
                                  domains=record.domains)
    if not products:
        raise FeedError(f"the feed has no valid product ({len(report.errors)} rejected rows); nothing imported",
                        report=report)
    if full and not force:
        check_drop(ch, advertiser, {p.sku for p in products} | report.seen, stores.settings.feed_max_drop, report)
    report.accepted, report.removed = store_products(ch, advertiser, products, full=full, keep=report.seen)
    bump_version(stores.redis("web"), advertiser)
    if resize_images:  # after storing: the products are live meanwhile, with the feed's own images
        from adserver.catalog.images import resize_images as resize

        report.images = resize(ch, stores.redis("web"), advertiser, record.domains, products,
                               allow_loopback=stores.settings.fetch_allow_loopback).as_dict()
    return report


@bp.put("/api/v1/feeds/<advertiser>")
@accepts_body(MAX_FEED_BYTES)  # the only route taking more than the default 64 KB (nginx: the same)
def upload_feed(advertiser: str) -> Response:
    if not ADVERTISER_RE.match(advertiser):
        return api_error(404, "not_found", "unknown advertiser")
    owner = token_advertiser(services().ch, bearer_token(request))
    if owner is None:
        return api_error(401, "unauthorized", "a valid API token is required (Authorization: Bearer ...)")
    if owner != advertiser:
        return api_error(403, "forbidden", "this token belongs to another advertiser")
    fmt = request.args.get("format") or None
    if fmt not in (None, "csv", "tsv", "json", "xml"):
        return api_error(400, "bad_format", "format must be csv, tsv, json or xml")
    full = request.args.get("full", "0") in ("1", "true", "yes")
    force = request.args.get("force", "0") in ("1", "true", "yes")
    data = request.get_data(cache=False)
    if not data:
        return api_error(400, "empty_feed", "the request body must hold the feed")
    try:
        report = import_products(services().stores, advertiser, data, fmt, full, force=force)
    except FeedError as exc:
        response = api_error(400, exc.code, str(exc))
        if exc.report is not None:
            response.set_data(json.dumps({"error": exc.code, "message": str(exc), **exc.report.as_dict()},
                                         ensure_ascii=False))
        return response
    except AdServerError as exc:
        return api_error(404 if exc.code == "unknown_advertiser" else 400, exc.code, str(exc))
    return jsonify(report.as_dict())
