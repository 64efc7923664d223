"""The native ad card (``/ad.json?format=native``): one product as an OpenRTB Native 1.2 response.

A microblog shows ads as posts of its own timeline, drawn by the publisher's page (``pub.js`` fills
the page's template) rather than framed. The decision, charging and invalid-traffic rules are those of
every ad (``adserver.serving.views``); this module only shapes the answer. No bid request names the
assets, so their ids are fixed here (see ``docs/publishers.md``): title 1, main image 2, store logo 3,
store name 4, price 5, sale price 6, call to action 7, description 8. A card shows one product, the
first the decision picks (the most recent view for a personalised card), so that an impression names
only what the visitor saw.

Who may read a card: the page draws it, so unlike the framed unit its contents are readable by the
page. A personalised card tells what the visitor looked at in a store, so it is personalised only for
pages of the placement's own site (its ``site`` read as a host name, subdomains included) or of the ad
server itself; any other origin gets the card a visitor without a profile would get.

"Not interested": the product carries its ``hide_url`` (``adserver.serving.feedback``, a signed token
whose ``size`` is ``native``) and ``ext.hide`` the words of the control, in the card's language, so
that ``pub-native.js`` draws the ✕ on every card and sends the answer as a beacon.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Response

from adserver.catalog.images import ImageChoice, image_choices
from adserver.catalog.landing import host_matches, normalize_host, url_host
from adserver.catalog.product import Product
from adserver.catalog.registry import Placement
from adserver.serving.decision import Decision
from adserver.serving.formats import BadSize
from adserver.serving.images import image_services
from adserver.serving.prices import money
from adserver.serving.units import clip, safe_url

VERSION = "1.2"
# Asset ids (ours: no request names them) and the Native 1.2 type codes they carry.
TITLE, MAIN_IMAGE, LOGO, STORE, PRICE, SALE_PRICE, CTA, DESCRIPTION = 1, 2, 3, 4, 5, 6, 7, 8
IMAGE_ICON, IMAGE_MAIN = 1, 3
DATA_SPONSORED, DATA_DESC, DATA_PRICE, DATA_SALEPRICE, DATA_CTATEXT = 1, 2, 6, 7, 12
EVENT_VIEWABLE_MRC50, METHOD_IMG = 2, 1
# What a card may carry, in escaped UTF-8 bytes (as the framed unit counts): 50 to 150 characters.
TITLE_BYTES, DESCRIPTION_BYTES, NAME_BYTES = 450, 600, 90
CTA_TEXT = {"en": "Shop now", "zh": "去看看"}
LABEL = {"en": "Ad", "zh": "广告"}
ADCHOICES = {"en": "Why this ad? Ad choices", "zh": "为什么显示此广告？广告选择"}
HIDE_TEXT = {"en": {"title": "Not interested", "product": "Not this product", "store": "Not this store"},
             "zh": {"title": "不感兴趣", "product": "不看这个商品", "store": "不看这家店"}}
FOREIGN_ORIGIN = "origin_not_allowed"  # fallback reason: the page's origin may not read a personalised card
IMAGE_SIDE = (16, 2000)  # px: bounds of the ``img=WxH`` hint
IMAGE_BOX = (480, 270)  # px: the image box without a hint, a timeline's picture on a phone
_IMAGE_HINT = re.compile(r"([0-9]{2,4})x([0-9]{2,4})")
_CJK = re.compile("[\u4e00-\u9fff]")


def image_hint(value: str | None) -> tuple[int, int] | None:
    """The ``img=WxH`` hint (the template's image box in CSS pixels), None when absent; BadSize if malformed."""
    if not value:
        return None
    match = _IMAGE_HINT.fullmatch(value)
    if not match:
        raise BadSize("img must be WxH in CSS pixels, for example 480x270")
    width, height = int(match.group(1)), int(match.group(2))
    low, high = IMAGE_SIDE
    if not (low <= width <= high and low <= height <= high):
        raise BadSize(f"img width and height must be between {low} and {high} pixels")
    return width, height


def new_nonce() -> str:
    """A request nonce as pub.js draws one (18 random bytes, 24 base64url characters), for callers that
    sent none: the card's viewability tracker needs it to name the impression."""
    return secrets.token_urlsafe(18)


def readable_by(origin: str | None, own_origin: str, placement: Placement | None) -> bool:
    """May a page of ``origin`` read a card personalised for the visitor?

    No ``Origin`` header: browsers send none on a same-origin GET, and a cross-site request without one
    cannot read the answer. Otherwise the page must be the ad server's own, or on the placement's site.
    """
    if origin is None:
        return True
    if origin.lower() == own_origin.lower():
        return True
    host = url_host(origin)
    site = normalize_host(placement.site.strip()) if placement is not None else None
    return bool(host and site and host_matches(host, (site,)))


def allow_origin(response: Response, origin: str | None) -> Response:
    """CORS for pub.js's credentialed fetch: the requesting origin by name (``*`` admits no cookie).

    Every origin may read a card; which card it gets is :func:`readable_by`'s business.
    """
    if origin and origin != "null":
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    else:
        response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers.add("Vary", "Origin")
    return response


def language(product: Product) -> str:
    return "zh" if _CJK.search(product.title) else "en"


def images_for(decision: Decision, box: tuple[int, int] | None, save_data: bool, base: str) -> dict[str, ImageChoice]:
    """The card's picture sized for its box (``IMAGE_BOX`` without a hint), by sku; absolute URLs, as
    the page that reads them is elsewhere."""
    if not decision.slots or not decision.advertiser:
        return {}
    width, height = box or IMAGE_BOX
    return image_choices(image_services().index, decision.advertiser, [decision.slots[0].product], width, height,
                         save_data, base)


def _image(product: Product, choice: ImageChoice | None) -> dict[str, Any] | None:
    """The main image: the resized variants when the picture has some, else the catalog's own (whose
    size nobody measured)."""
    if choice is not None and choice.variants and safe_url(choice.src):
        return {"type": IMAGE_MAIN, "url": safe_url(choice.src), "w": choice.width, "h": choice.height, "ext": {
            "srcset": choice.srcset, "webp_srcset": choice.webp_srcset,
            "variants": [{"url": v["url"], "w": v["w"], "h": v["h"], "type": v["type"]} for v in choice.variants
                         if safe_url(v["url"])],
        }}
    url = safe_url(product.image_link)
    return {"type": IMAGE_MAIN, "url": url} if url else None


def _assets(product: Product, store: str, logo: str, lang: str, choice: ImageChoice | None) -> list[dict[str, Any]]:
    title = clip(product.title, TITLE_BYTES)
    assets: list[dict[str, Any]] = [{"id": TITLE, "title": {"text": title, "len": len(title)}}]
    image = _image(product, choice)
    if image is not None:
        assets.append({"id": MAIN_IMAGE, "img": image})
    if logo:
        assets.append({"id": LOGO, "img": {"type": IMAGE_ICON, "url": logo}})
    on_sale = 0 < product.sale_price < product.price
    assets += [
        {"id": STORE, "data": {"type": DATA_SPONSORED, "value": store}},
        {"id": PRICE, "data": {"type": DATA_PRICE, "value": money(product.price, product.currency)}},
    ]
    if on_sale:
        assets.append({"id": SALE_PRICE, "data": {"type": DATA_SALEPRICE,
                                                  "value": money(product.sale_price, product.currency)}})
    assets.append({"id": CTA, "data": {"type": DATA_CTATEXT, "value": CTA_TEXT[lang]}})
    description = clip(product.description, DESCRIPTION_BYTES)
    if description:
        assets.append({"id": DESCRIPTION, "data": {"type": DATA_DESC, "value": description}})
    return assets


def card(decision: Decision, items: Sequence[dict], *, impression_id: str, placement_id: str, nonce: str,
         base: str, store_name: str, logo_url: str, addressable: bool,
         images: Mapping[str, ImageChoice] | None = None) -> dict[str, Any]:
    """The ``/ad.json?format=native`` answer for a decision whose products are ``items`` (as ``/ad.json``
    lists them, with signed click URLs). ``images`` may hold a resized variant per sku."""
    ext: dict[str, Any] = {
        "impression_id": impression_id, "advertiser": decision.advertiser, "placement": placement_id,
        "path": decision.path, "addressable": addressable, "fallback_reason": decision.fallback_reason or None,
        "campaign": decision.campaign.id if decision.campaign else None,
    }
    if not decision.slots or not items:
        return {"native": None, "ext": {**ext, "products": []}}
    product = decision.slots[0].product
    item = items[0]
    lang = language(product)
    store = clip(store_name or decision.advertiser or "", NAME_BYTES)
    viewable = f"{base}/px/viewable?" + urlencode({"p": placement_id, "r": nonce, "a": decision.advertiser or ""})
    return {"native": {
        "ver": VERSION,
        "assets": _assets(product, store, safe_url(logo_url), lang, (images or {}).get(product.sku)),
        "link": {"url": item["click_url"]},
        "eventtrackers": [{"event": EVENT_VIEWABLE_MRC50, "method": METHOD_IMG, "url": viewable}],
        "privacy": f"{base}/optout",
        "ext": {**ext, "lang": lang, "label": LABEL[lang], "adchoices": ADCHOICES[lang],
                "hide": HIDE_TEXT[lang] if item.get("hide_url") else None,
                "products": [dict(item, price_text=money(product.display_price, product.currency))]},
    }}
