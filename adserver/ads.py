"""The publisher side: the ad unit (HTML for an iframe, or JSON) and the signed click redirect."""

from __future__ import annotations

import logging
import secrets
import time

from flask import Blueprint, Response, abort, jsonify, render_template, request

from adserver.catalog import Product
from adserver.clicks import InvalidToken, with_utm
from adserver.decision import Decision, decide
from adserver.formats import BadSize, Format, parse_size
from adserver.services import services
from adserver.tracking import current_uid
from tracker.events import PLACEMENT_RE, device_class
from tracker.identity import UID_COOKIE, tracking_allowed
from tracker.signing import b64encode

log = logging.getLogger(__name__)
bp = Blueprint("ads", __name__)

# Ad units run no script at all, load nothing but product images, and may be framed anywhere.
AD_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
          "base-uri 'none'; form-action 'none'")
SYMBOLS = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$", "TWD": "NT$"}


def price_text(product: Product) -> str:
    amount = product.display_price
    symbol = SYMBOLS.get(product.currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {product.currency}"


def _base_url() -> str:
    return services().settings.public_url or request.host_url.rstrip("/")


def _bad_request(message: str, as_json: bool) -> Response:
    if as_json:
        response = jsonify({"error": "bad_request", "message": message})
    else:
        response = Response(f"Bad request: {message}\n", mimetype="text/plain")
    response.status_code = 400
    return response


def _fallback_advertiser(placement_id: str) -> str | None:
    registry = services().registry
    placement = registry.placement(placement_id)
    candidates = list(placement.advertisers) if placement and placement.advertisers else registry.advertiser_ids()
    return candidates[0] if candidates else None


def _decide(fmt: Format, placement_id: str) -> tuple[Decision, str | None]:
    svc = services()
    uid = current_uid()
    profile = svc.profile(uid) if uid else None
    decision = decide(profile, _fallback_advertiser(placement_id), svc.catalog.get, svc.popular.get, fmt.slots,
                      model=svc.models.get)
    return decision, uid


def _serve(as_json: bool) -> Response:
    placement_id = request.args.get("p", "")
    if not PLACEMENT_RE.match(placement_id):
        return _bad_request("p must be a placement id (1-64 lowercase letters, digits, '_' or '-')", as_json)
    try:
        fmt = parse_size(request.args.get("size"))
    except BadSize as exc:
        return _bad_request(str(exc), as_json)
    svc = services()
    decision, uid = _decide(fmt, placement_id)
    impression_id = b64encode(secrets.token_bytes(12))
    base = _base_url()
    items = []
    for slot in decision.slots:
        p = slot.product
        token = svc.clicks.issue(impression_id, decision.advertiser, placement_id, p.sku, slot.reason)
        item = {"sku": p.sku, "title": p.title, "price": round(p.display_price, 2), "currency": p.currency,
                "image": p.image_link, "click_url": f"{base}/c/{token}", "reason": slot.reason}
        if slot.source_sku:
            item["source_sku"] = slot.source_sku
        items.append(item)
    if decision.slots:
        svc.record({
            "ts": time.time(), "advertiser": decision.advertiser, "event": "impression", "uid": uid or "",
            "skus": [s.product.sku for s in decision.slots], "reasons": [s.reason for s in decision.slots],
            "placement": placement_id, "impression_id": impression_id, "size": fmt.name,
            "addressable": 1 if uid else 0, "device": device_class(request.headers.get("User-Agent", "")),
            "ref": (request.referrer or "")[:2048],
        }, counter="ads_served")
    if as_json:
        response = jsonify({
            "impression_id": impression_id, "advertiser": decision.advertiser, "placement": placement_id,
            "size": fmt.name, "path": decision.path, "addressable": uid is not None, "products": items,
        })
    else:
        advertiser = svc.registry.advertisers.get(decision.advertiser or "")
        for item, slot in zip(items, decision.slots):
            item["price_text"] = price_text(slot.product)
        cols = {"strip": len(items), "column": 1, "grid": max(1, min(4, (fmt.width or 300) // 140))}.get(fmt.layout, 2)
        response = Response(render_template(
            "ad.html", items=items, fmt=fmt, cols=max(1, cols), lang="zh" if _has_cjk(items) else "en",
            advertiser_name=advertiser.name if advertiser else (decision.advertiser or ""),
            optout_url=f"{base}/optout",
        ))
        response.headers["Content-Security-Policy"] = AD_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _has_cjk(items: list[dict]) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for item in items for c in item["title"])


@bp.get("/ad")
def ad_html() -> Response:
    return _serve(as_json=False)


@bp.get("/ad.json")
def ad_json() -> Response:
    response = _serve(as_json=True)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/c/<token>")
def click(token: str) -> Response:
    """Verify the token, log the click, redirect to the product's link from the catalog."""
    svc = services()
    try:
        info = svc.clicks.verify(token)
    except InvalidToken as exc:
        return Response(f"Invalid or expired link ({exc}).\n", status=400, mimetype="text/plain")
    product = svc.catalog.get(info.advertiser).get(info.sku)
    if product is None:
        abort(410, description="This product is no longer available.")
    uid = None
    if tracking_allowed(request.cookies, request.headers):
        uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
    svc.record({
        "ts": time.time(), "advertiser": info.advertiser, "event": "click", "uid": uid or "",
        "skus": [info.sku], "reasons": [info.reason], "placement": info.placement,
        "impression_id": info.impression_id, "addressable": 1 if uid else 0,
        "device": device_class(request.headers.get("User-Agent", "")),
    }, counter="clicks")
    response = Response(status=302)
    response.headers["Location"] = with_utm(product.link, info.placement, info.sku, info.advertiser)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer-when-downgrade"
    return response
