"""The publisher side: the ad unit (HTML for an iframe, or JSON) and the signed click redirect."""

from __future__ import annotations

import logging
import secrets
import time

import redis
from flask import Blueprint, Response, abort, jsonify, request

from adserver.campaigns.budgets import local_date
from adserver.campaigns.campaign import Campaign
from adserver.services import services
from adserver.serving import auction, feedback, native
from adserver.serving.auction import AuctionContext, Candidate
from adserver.serving.click_ids import with_click_id
from adserver.serving.clicks import InvalidToken, landing_refusal, with_utm
from adserver.serving.decision import Decision
from adserver.serving.formats import NATIVE, BadSize, Format, parse_size
from adserver.serving.pictures import add_pictures, save_data_format, wants_save_data
from adserver.serving.prices import price_text
from adserver.serving.units import Brand, render_unit
from adserver.tracking.traffic import device_of, invalid_fields, request_verdict
from adserver.tracking.viewability import impression_id_for, valid_nonce
from adserver.tracking.views import current_uid, request_consent
from tracker.events import PLACEMENT_RE
from tracker.identity import OPTOUT_COOKIE, UID_COOKIE, tracking_allowed
from tracker.signing import b64encode
from tracker.stream import Frequency

log = logging.getLogger(__name__)
bp = Blueprint("ads", __name__)

# Ad units run no script at all, load nothing but product images, and may be framed anywhere.
AD_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
          "base-uri 'none'; form-action 'none'")


def _base_url() -> str:
    """Where click links point: the configured public URL, else this request's scheme and host.

    Built from ``request.host`` rather than ``request.host_url``, which converts the whole URL to
    an IRI (IDNA decoding) on every call: a tenth of an ad's CPU. A punycode host stays punycode,
    which every browser follows."""
    return services().settings.public_url or f"{request.scheme}://{request.host}"


def _bad_request(message: str, as_json: bool) -> Response:
    if as_json:
        response = jsonify({"error": "bad_request", "message": message})
    else:
        response = Response(f"Bad request: {message}\n", mimetype="text/plain")
    response.status_code = 400
    return response


def _fallback_reason(uid: str | None, read: bool, interests) -> str:
    if not tracking_allowed(request.cookies, request.headers):
        return "opted_out" if request.cookies.get(OPTOUT_COOKIE) == "1" else "do_not_track"
    if not request_consent().personalised:
        return "no_consent"  # gdpr=1 without consent for personalised ads (IAB TCF)
    if uid is None:
        return "no_cookie"
    if not read:
        return "profile_unavailable"
    return "not_eligible" if interests else "no_interest"


def _decide(fmt: Format, placement_id: str, device: str,
            personal: bool = True) -> tuple[Decision, str | None, list[Candidate]]:
    """Run the auction for this request (see ``adserver.serving.auction``); not ``personal``: as for a
    visitor without a cookie."""
    svc = services()
    registry = svc.registry
    uid = current_uid() if personal else None
    now = time.time()
    state = svc.interests(uid, now) if uid else None
    interests, frequency = state if state else ([], Frequency())
    frequency.hidden |= feedback.request_exclusions()  # an answer this browser could not keep
    placement = registry.placement(placement_id)
    known = placement is not None or not registry.loaded
    ctx = AuctionContext(placement_id, placement, known, fmt.name, fmt.slots, device, now,
                         time.gmtime(now).tm_hour, interests, frequency, personalised=state is not None,
                         fatigue_free=svc.settings.fatigue_free, fatigue_decay=svc.settings.fatigue_decay)
    invalid = bool(request_verdict())  # bots and prefetches see an ad but nobody pays for it
    decision, ranked = auction.run(ctx, _sources(svc, charge=not invalid))
    if invalid:
        decision.charged = 0.0
    if decision.path != "personalised":
        decision.fallback_reason = "unknown_placement" if not known else (
            native.FOREIGN_ORIGIN if not personal else _fallback_reason(uid, state is not None, interests))
    return decision, uid, ranked


def _sources(svc, charge: bool = True) -> auction.Sources:
    registry = svc.registry

    def reserve(campaign: Campaign, amount: float) -> bool:
        if not charge:
            amount = 0.0  # still within budget and pacing, but nothing is taken
        try:
            return svc.budgets.reserve(campaign.id, registry.timezone_of(campaign.advertiser),
                                       campaign.daily_budget, amount)
        except (redis.RedisError, OSError):
            svc.breaker.failure()  # no budget check possible: paid ads sit out, house ads still show
            return False

    def predict(campaign: Campaign, advertiser: str, interest, ctx: AuctionContext) -> float:
        return svc.predict_ctr(ctx, advertiser, interest)

    return auction.Sources(
        campaigns=registry.campaigns_of, advertisers=registry.advertiser_ids, timezone=registry.timezone_of,
        catalog=svc.catalog.get, popular=svc.popular.get, model=svc.models.get, predict=predict, reserve=reserve,
        hides=svc.hide_counts.get,
        local_date=lambda advertiser, now: local_date(now, registry.timezone_of(advertiser)),
        house=lambda placement_id: _house_advertisers(registry, placement_id),
    )


def _house_advertisers(registry, placement_id: str) -> list[str]:
    """The placement's house advertisers, or (none listed, unknown placement) the first one registered."""
    placement = registry.placement(placement_id)
    if placement is not None and placement.advertisers:
        return list(placement.advertisers)
    return registry.advertiser_ids()[:1]


def _auction_row(decision: Decision) -> dict:
    """What the impression row keeps of the auction (the CTR model learns from these)."""
    interest = decision.interest
    return {
        "campaign": decision.campaign.id if decision.campaign else "", "cost": decision.charged,
        "pctr": decision.pctr,
        "interest_age": int(max(0.0, time.time() - interest.last_seen)) if interest else 0,
        "interest_views": interest.views if interest else 0,
    }


def _auction_json(decision: Decision, ranked: list[Candidate], placement_id: str) -> dict:
    placement = services().registry.placements.get(placement_id)
    campaign = decision.campaign
    return {
        "floor": placement.floor if placement else 0.0, "currency": services().settings.currency,
        "winner": campaign.id if campaign else None, "charged": round(decision.charged, 6),
        "candidates": [c.describe() for c in ranked[:20]],
    }


def _serve(as_json: bool, card: bool = False) -> Response:
    """The ad for this request: the HTML unit, the JSON product list, or (``card``) the native card."""
    placement_id = request.args.get("p", "")
    if not PLACEMENT_RE.match(placement_id):
        return _bad_request("p must be a placement id (1-64 lowercase letters, digits, '_' or '-')", as_json)
    try:
        fmt = NATIVE if card else parse_size(request.args.get("size"))
        image_box = native.image_hint(request.args.get("img")) if card else None
    except BadSize as exc:
        return _bad_request(str(exc), as_json)
    svc = services()
    placement = svc.registry.placement(placement_id)
    if placement is not None and placement.sizes and fmt.name not in placement.sizes:
        return _bad_request(f"size {fmt.name} is not allowed on placement {placement_id} "
                            f"(allowed: {', '.join(placement.sizes)})", as_json)
    save_data = wants_save_data(request.headers)  # fewer products, 1x pictures
    if save_data:
        fmt = save_data_format(fmt)
    device = device_of(request.headers.get("User-Agent", ""))
    personal = not card or native.readable_by(request.headers.get("Origin"), _base_url(), placement)
    decision, uid, ranked = _decide(fmt, placement_id, device, personal)
    nonce = valid_nonce(request.args.get("r"))  # pub.js slots: the id derives from it, for /px/viewable
    nonce = nonce or (native.new_nonce() if card else None)  # a card carries its own viewability tracker
    impression_id = impression_id_for(svc.settings.secret_keys, nonce) if nonce else b64encode(secrets.token_bytes(12))
    base = _base_url()
    campaign_id = decision.campaign.id if decision.campaign else ""
    consent = request_consent().code  # signed into the click and hide tokens: their requests carry no gdpr
    items = []
    tokens = svc.clicks.issue_all(impression_id, decision.advertiser, placement_id,
                                  [(slot.product.sku, slot.reason) for slot in decision.slots],
                                  campaign=campaign_id, consent=consent)
    for slot, token in zip(decision.slots, tokens, strict=True):
        p = slot.product
        item = {"sku": p.sku, "title": p.title, "price": round(p.display_price, 2), "currency": p.currency,
                "image": p.image_link, "click_url": f"{base}/c/{token}", "reason": slot.reason}
        if slot.source_sku:
            item["source_sku"] = slot.source_sku
        items.append(item)
    hide_url = feedback.hide_url(base, svc.hide_tokens.issue(impression_id, decision.advertiser, placement_id,
                                                             [i["sku"] for i in items], campaign_id,
                                                             consent=consent),
                                 fmt.name) if items else ""
    for item in items:
        item["hide_url"] = hide_url
    add_pictures(items, [s.product for s in decision.slots], decision.advertiser or "", fmt, save_data,
                 base if as_json else "", html=not as_json)
    if decision.slots:
        svc.record({
            "ts": time.time(), "advertiser": decision.advertiser, "event": "impression", "uid": uid or "",
            "skus": [s.product.sku for s in decision.slots], "reasons": [s.reason for s in decision.slots],
            "placement": placement_id, "impression_id": impression_id, "size": fmt.name,
            "addressable": 1 if uid else 0, "device": device, "consent": consent,
            "ref": (request.referrer or "")[:2048],
            **invalid_fields(request_verdict()),
            **_auction_row(decision),
        }, uid=uid, counter="ads_invalid" if request_verdict() else "ads_served")
    if card:
        name = getattr(svc.registry.advertisers.get(decision.advertiser or ""), "name", decision.advertiser or "")
        brand = Brand.for_campaign(decision.campaign, name)
        save_data = (request.headers.get("Save-Data") or "").lower() == "on"
        response = jsonify(native.card(decision, items, impression_id=impression_id, placement_id=placement_id,
                                       nonce=nonce, base=base, store_name=brand.name, logo_url=brand.logo_url,
                                       addressable=uid is not None,
                                       images=native.images_for(decision, image_box, save_data, base)))
    elif as_json:
        response = jsonify({
            "impression_id": impression_id, "advertiser": decision.advertiser, "placement": placement_id,
            "size": fmt.name, "path": decision.path, "addressable": uid is not None, "products": items,
            "save_data": save_data,
            "fallback_reason": decision.fallback_reason or None, "campaign": campaign_id or None,
            "hide_url": hide_url or None, "auction": _auction_json(decision, ranked, placement_id),
        })
    else:
        advertiser = svc.registry.advertisers.get(decision.advertiser or "")
        for item, slot in zip(items, decision.slots):
            item["price_text"] = price_text(slot.product)
        name = advertiser.name if advertiser else (decision.advertiser or "")
        brand = Brand.for_campaign(getattr(decision, "campaign", None), name)
        response = Response(render_unit(items, fmt, brand, f"{base}/optout", "zh" if _has_cjk(items) else "en",
                                        hide_url))
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
    kind = request.args.get("format", "")
    if kind == "native":  # pub.js asks with the visitor's cookie: the page's origin is named, not *
        return native.allow_origin(_serve(as_json=True, card=True), request.headers.get("Origin"))
    if kind:
        response = _bad_request("format must be native, or left out for the list of products", True)
    else:
        response = _serve(as_json=True)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _charge_click(info) -> float:
    """A CPC campaign pays for the click (once per impression, within its budget); 0 otherwise."""
    svc = services()
    campaign = svc.registry.campaigns.get(info.campaign)
    if campaign is None or campaign.pricing != "cpc":
        return 0.0
    try:
        charged = svc.budgets.charge(campaign.id, svc.registry.timezone_of(campaign.advertiser),
                                     campaign.daily_budget, campaign.price, info.impression_id,
                                     remember_seconds=svc.settings.click_ttl_days * 86400 + 86400)
    except (redis.RedisError, OSError):
        svc.breaker.failure()
        log.warning("click on %s not charged: Redis unavailable", info.impression_id)
        return 0.0
    return charged or 0.0


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
    refusal = landing_refusal(svc.registry, info.advertiser, product.link)
    if refusal is not None:  # neither followed, nor logged, nor charged
        log.warning("click on %s/%s refused: %s", info.advertiser, info.sku, refusal[1])
        return Response(refusal[1] + "\n", status=refusal[0], mimetype="text/plain",
                        headers={"Cache-Control": "no-store"})
    uid = None
    if info.may_identify and tracking_allowed(request.cookies, request.headers):
        uid = svc.ids.verify(request.cookies.get(UID_COOKIE))
    row = {
        "ts": time.time(), "advertiser": info.advertiser, "event": "click", "uid": uid or "",
        "skus": [info.sku], "reasons": [info.reason], "placement": info.placement,
        "impression_id": info.impression_id, "addressable": 1 if uid else 0,
        "device": device_of(request.headers.get("User-Agent", "")), "campaign": info.campaign,
        "consent": max(info.consent, 0), **invalid_fields(request_verdict(uid, click=True)),
    }
    if not row.get("invalid"):
        row["cost"] = _charge_click(info)
    svc.record(row, uid=uid, counter="clicks_invalid" if row.get("invalid") else "clicks")
    response = Response(status=302)
    click_id = svc.click_ids.issue(info.advertiser, info.impression_id, row["ts"], uid)  # for the conversion API
    response.headers["Location"] = with_click_id(
        with_utm(product.link, info.placement, info.sku, info.advertiser, info.campaign), click_id)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer-when-downgrade"
    return response
