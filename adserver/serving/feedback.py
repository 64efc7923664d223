"""The "not interested" answer: the reader dismisses a product or a whole store from their ads.

Every ad with products carries a signed hide token (``hide_tokens``): the HTML unit as the ✕ link of
its bar, ``/ad.json`` as ``hide_url``. The flow works without any script, inside the ad's iframe:

- ``GET /ad/hide?t=<token>&size=<size>`` shows the ad's products, each with "not this product", and
  "not this store", as buttons of one POST form carrying the same token;
- ``POST /ad/hide`` (``t``, ``reason`` = ``product`` | ``store``, ``sku`` for a product of an ad of
  several) records the answer, then answers ``303`` to the next ad of the same placement and size,
  or a short "thanks" page with a link to one without a size; ``beacon=1`` (pub.js sends it with
  ``navigator.sendBeacon``) answers ``204``.

An answer is the event ``hide`` (``skus`` = the product, ``reasons`` = the answer, with the
impression, placement and campaign of the ad) through the normal event path: never charged, and
counted once per product of an impression however often its token comes back. A visitor with our
cookie does not see the product (or any product of the store) again for the campaign's
``hide_days`` (``DEFAULT_HIDE_DAYS`` for house ads): ``tracker.hides``. Without a cookie (blocked
third-party cookies, opt-out, ``Sec-GPC``) nothing is kept per visitor: the answer is still counted,
and the next ad, whose URL carries the answer (``x``, ``xr``), leaves the product or store out once.
An ad served under IAB TCF ``gdpr=1`` without consent for personalised ads (the state its token
carries, as the answer comes without ``gdpr`` parameters) is answered the same way, cookie or not:
the cookie is not read, and the next framed ad asks with ``gdpr=1`` so it stays non-personalised.
A native card (``size=native``) is drawn by the publisher's page, which fetches the next card itself
(``pub-native.js``): its answer has no framed next ad.
Answers from valid traffic also lower the product's rank for everyone (``models.feedback``); bots'
answers are recorded as invalid and change nothing.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

import redis
from flask import Blueprint, Response, render_template, request

from adserver.serving.formats import NATIVE, BadSize, parse_size
from adserver.serving.hide_tokens import HideRequest, InvalidHideToken
from adserver.tracking.traffic import device_of, invalid_fields, request_verdict
from adserver.tracking.views import current_uid
from tracker.hides import REASONS, member

log = logging.getLogger(__name__)
bp = Blueprint("feedback", __name__)

DEFAULT_HIDE_DAYS = 30  # how long an answer lasts for a campaign that does not say, and for house ads
# The confirmation page runs no script either; its form posts to this server only.
HIDE_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; base-uri 'none'; "
            "form-action 'self'")
TEXT = {
    "en": {"title": "Not interested?", "product": "Not this product", "store": "Not this store",
           "back": "Back to the ad", "thanks": "Thanks. You will see other ads.",
           "no_cookie": "This browser does not keep our cookie, so the choice cannot be remembered; it was counted.",
           "no_consent": "Without consent to personalised ads the choice is not remembered; it was counted.",
           "next": "Show another ad", "days": "for {days} days"},
    "zh": {"title": "不感兴趣？", "product": "不看这个商品", "store": "不看这家店", "back": "返回广告",
           "thanks": "谢谢，您将看到其他广告。", "no_cookie": "此浏览器不保存我们的 Cookie，无法记住您的选择；反馈已计入。",
           "no_consent": "未同意个性化广告，因此不会记住您的选择；反馈已计入。",
           "next": "显示其他广告", "days": "{days} 天内"},
}


def _services():
    from adserver.services import services

    return services()


def _base() -> str:
    return _services().settings.public_url or f"{request.scheme}://{request.host}"


def hide_url(base: str, token: str, size: str) -> str:
    """The ✕ link of an ad: its "not interested" page."""
    return f"{base}/ad/hide?" + urlencode({"t": token, "size": size})


def request_exclusions() -> set[str]:
    """What the current ad request must leave out because its URL carries an answer just given
    (``x`` = the answered token, ``xr`` = the answer, ``xs`` = the product): for visitors whose
    answer could not be kept. Anything unverifiable is ignored: it only ever removes."""
    token = request.args.get("x")
    if not token:
        return set()
    try:
        info = _services().hide_tokens.verify(token)
    except InvalidHideToken:
        return set()
    reason, sku = request.args.get("xr", ""), request.args.get("xs", "")
    if reason == "store":
        return {member("store", info.advertiser, "")}
    return {member("product", info.advertiser, sku)} if sku in info.skus else set()


def _bad(message: str, status: int = 400) -> Response:
    return Response(f"Bad request: {message}\n", status=status, mimetype="text/plain",
                    headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _page(html: str, status: int = 200) -> Response:
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HIDE_CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _verify(token: object) -> HideRequest | Response:
    try:
        return _services().hide_tokens.verify(token)
    except InvalidHideToken as exc:
        return _bad(f"invalid or expired link ({exc})")


def _size(raw: str | None) -> str | Response:
    """The framed unit's size to show the next ad in; "" for none (no size, or a native card)."""
    if not raw or raw == NATIVE.name:
        return ""
    try:
        return parse_size(raw).name
    except BadSize as exc:
        return _bad(str(exc))


def _language(titles: list[str]) -> str:
    return "zh" if any("\u4e00" <= c <= "\u9fff" for t in titles for c in t) else "en"


def _catalog(advertiser: str) -> dict:
    try:
        return _services().catalog.get(advertiser)
    except Exception:  # noqa: BLE001 - the pages still offer the store, and the products by id
        log.warning("catalog of %r unavailable for the hide page", advertiser)
        return {}


def _ad_url(info: HideRequest, size: str, answer: dict[str, str] | None = None) -> str:
    query = {"p": info.placement, "size": size or "responsive", **(answer or {})}
    if not info.may_identify:
        query["gdpr"] = "1"  # the ad's consent string is not ours to repeat: without one, no personal data
    return "/ad?" + urlencode(query)


@bp.get("/ad/hide")
def hide_page() -> Response:
    """The confirmation page: which product, or the whole store."""
    info = _verify(request.args.get("t"))
    if isinstance(info, Response):
        return info
    size = _size(request.args.get("size"))
    if isinstance(size, Response):
        return size
    svc = _services()
    catalog = _catalog(info.advertiser)
    products = [(sku, getattr(catalog.get(sku), "title", "") or sku) for sku in info.skus]
    advertiser = svc.registry.advertisers.get(info.advertiser)
    store = advertiser.name if advertiser and advertiser.name else info.advertiser
    lang = _language([title for _, title in products] + [store])
    return _page(render_template("hide.html", text=TEXT[lang], lang=lang, token=request.args.get("t"),
                                 size=size, products=products, store=store,
                                 back_url=_ad_url(info, size)))


@bp.post("/ad/hide")
def hide_answer() -> Response:
    """Record the answer; then the next ad (``size``), a thanks page, or 204 (``beacon=1``)."""
    form = request.form
    info = _verify(form.get("t") or request.args.get("t"))
    if isinstance(info, Response):
        return info
    reason = form.get("reason", "")
    if reason not in REASONS:
        return _bad(f"reason must be one of {', '.join(REASONS)}")
    sku = form.get("sku") or (info.skus[0] if len(info.skus) == 1 else "")
    if reason == "product" and sku not in info.skus:
        return _bad("sku must name one of the ad's products")
    if reason == "store":
        sku = sku if sku in info.skus else (info.skus[0] if info.skus else "")
    size = _size(form.get("size") or request.args.get("size"))
    if isinstance(size, Response):
        return size
    uid = current_uid() if info.may_identify else None
    kept = _record(info, reason, sku, uid)
    if form.get("beacon") == "1":
        return Response(status=204, headers={"Cache-Control": "no-store"})
    answer = None if kept else {"x": form.get("t") or request.args.get("t", ""), "xr": reason, "xs": sku}
    if size:
        return Response(status=303, headers={"Location": _ad_url(info, size, answer), "Cache-Control": "no-store"})
    lang = _language([getattr(_catalog(info.advertiser).get(sku), "title", "")])
    text = TEXT[lang] if info.may_identify else {**TEXT[lang], "no_cookie": TEXT[lang]["no_consent"]}
    return _page(render_template("hide.html", text=text, lang=lang, done=True, kept=kept,
                                 next_url=_ad_url(info, "", answer)))


def _record(info: HideRequest, reason: str, sku: str, uid: str | None) -> bool:
    """Store the answer (once per product of an impression) and its event. Returns whether it is
    kept for the visitor (a cookie, and Redis answered)."""
    svc = _services()
    verdict = request_verdict(uid)
    campaign = svc.registry.campaigns.get(info.campaign) if info.campaign else None
    days = getattr(campaign, "hide_days", 0) or DEFAULT_HIDE_DAYS
    now = time.time()
    visitor = None if verdict else uid  # bots change nobody's ads
    try:
        first = svc.hides.record(info.impression_id, sku, info.advertiser, reason, visitor, days, info.expires,
                                 count=not verdict, now=now)
        svc.breaker.success()
    except (redis.RedisError, OSError) as exc:
        svc.breaker.failure()  # the answer cannot be checked for a replay: recorded, as it may be the first
        log.warning("hide answer of %s not kept: Redis unavailable (%s)", info.impression_id, exc)
        first, visitor = True, None
    if first:
        svc.record({
            "ts": now, "advertiser": info.advertiser, "event": "hide", "uid": uid or "", "skus": [sku] if sku else [],
            "reasons": [reason], "placement": info.placement, "impression_id": info.impression_id,
            "campaign": info.campaign, "addressable": 1 if uid else 0, "cost": 0.0, "consent": info.consent,
            "device": device_of(request.headers.get("User-Agent", "")), **invalid_fields(verdict),
        }, uid=uid, counter="hides_invalid" if verdict else "hides")
    return visitor is not None
