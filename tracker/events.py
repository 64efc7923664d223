"""The tracking event schema and the validation of pixel hits.

A hit is checked field by field and every problem is reported with a stable reason code, so an
integrator reading ``/px/debug`` or the ``bad_events`` table knows exactly what to fix. Nothing in
a hit is trusted: lengths, character sets, numbers and currency codes are all checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

STORE_EVENTS = frozenset({"view_home", "view_list", "view_item", "add_to_cart", "view_cart", "purchase"})
AD_EVENTS = frozenset({"impression", "click", "viewable"})
# Events that name products and therefore need at least one sku.
SKU_EVENTS = frozenset({"view_item", "add_to_cart", "purchase"})
# Events that show interest in a product: they feed the visitor's recently-viewed list.
INTEREST_EVENTS = frozenset({"view_item", "add_to_cart"})
# How much each product event says about wanting the product (popularity and the models use them).
INTEREST_WEIGHTS = {"view_item": 1.0, "add_to_cart": 3.0, "purchase": 5.0}

MAX_SKUS = 50
MAX_SKU_LEN = 100
MAX_ORDER_LEN = 100
MAX_URL_LEN = 2048
MAX_RAW_LEN = 8192

ADVERTISER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
PLACEMENT_RE = ADVERTISER_RE
# Printable, no spaces, no commas (they separate skus), no quotes or angle brackets.
SKU_RE = re.compile(r"^[^\x00-\x20\x7f,<>\"'`\\]{1,%d}\Z" % MAX_SKU_LEN)
ORDER_RE = re.compile(r"^[^\x00-\x1f\x7f<>\"'`\\]{1,%d}\Z" % MAX_ORDER_LEN)
VALUE_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,4})?\Z")
CURRENCY_RE = re.compile(r"^[A-Z]{3}\Z")

# ISO 4217 codes in current use.
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XOF XPF YER ZAR ZMW ZWL""".split()
)


@dataclass
class Hit:
    """A validated store event, ready for the stream."""

    advertiser: str
    event: str
    skus: list[str] = field(default_factory=list)
    order_id: str = ""
    value: float = 0.0
    currency: str = ""
    url: str = ""
    ref: str = ""


@dataclass
class Invalid:
    """A rejected hit: what could be read of it, and every reason it was rejected."""

    advertiser: str
    event: str
    errors: list[str]
    raw: str

    @property
    def reason(self) -> str:
        return self.errors[0].split(":", 1)[0]


def _text(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    return value if isinstance(value, str) else ""


def _clean_url(value: str, name: str, errors: list[str]) -> str:
    if not value:
        return ""
    if len(value) > MAX_URL_LEN:
        errors.append(f"{name}_too_long: {name} is longer than {MAX_URL_LEN} characters")
        return ""
    if not re.match(r"^https?://", value, re.IGNORECASE) or re.search(r"[\x00-\x20\x7f]", value):
        errors.append(f"invalid_{name}: {name} must be an http(s) URL without spaces or control characters")
        return ""
    return value


def validate_hit(params: Mapping[str, str], raw: str, known_advertiser=None) -> Hit | Invalid:
    """Check a pixel hit's parameters; ``known_advertiser(id)`` may reject unregistered stores.

    Unknown extra parameters (cache busters) are ignored. Every problem found is listed, not just
    the first, so one debug call shows the integrator everything to fix.
    """
    errors: list[str] = []
    advertiser = _text(params, "a")
    event = _text(params, "e")
    if not advertiser:
        errors.append("missing_advertiser: parameter a (advertiser id) is required")
    elif not ADVERTISER_RE.match(advertiser):
        errors.append("invalid_advertiser: a must be 1-64 lowercase letters, digits, '_' or '-'")
    elif known_advertiser is not None and not known_advertiser(advertiser):
        errors.append(f"unknown_advertiser: advertiser {advertiser!r} is not registered")
    if not event:
        errors.append("missing_event: parameter e (event name) is required")
    elif event not in STORE_EVENTS:
        errors.append(f"invalid_event: e must be one of {', '.join(sorted(STORE_EVENTS))}")

    skus: list[str] = []
    sku_raw = _text(params, "sku")
    if sku_raw:
        parts = sku_raw.split(",")
        if len(parts) > MAX_SKUS:
            errors.append(f"too_many_skus: at most {MAX_SKUS} skus per hit")
        elif not all(SKU_RE.match(p) for p in parts):
            errors.append(f"invalid_sku: each sku is 1-{MAX_SKU_LEN} printable characters without spaces, quotes or commas")
        else:
            skus = list(dict.fromkeys(parts))  # de-duplicate, keep order
    if event in SKU_EVENTS and not skus and not any(e.startswith(("invalid_sku", "too_many")) for e in errors):
        errors.append(f"missing_sku: event {event} needs sku")

    order_id = _text(params, "order")
    if order_id and not ORDER_RE.match(order_id):
        errors.append(f"invalid_order: order is 1-{MAX_ORDER_LEN} printable characters")
        order_id = ""
    if event == "purchase" and not order_id and "invalid_order" not in " ".join(errors):
        errors.append("missing_order: event purchase needs order (the order id)")

    value = 0.0
    value_raw = _text(params, "value")
    if value_raw:
        try:
            if not VALUE_RE.match(value_raw):
                raise InvalidOperation
            value = float(Decimal(value_raw))
        except InvalidOperation:
            errors.append("invalid_value: value must be a decimal number like 129.90 (no sign, at most 4 decimals)")
    currency = _text(params, "currency")
    if currency and (not CURRENCY_RE.match(currency) or currency not in CURRENCIES):
        errors.append("invalid_currency: currency must be an ISO 4217 code such as CNY, EUR, USD")
        currency = ""
    elif value_raw and not currency:
        errors.append("missing_currency: a value needs its currency")

    url = _clean_url(_text(params, "url"), "url", errors)
    ref = _clean_url(_text(params, "ref"), "ref", errors)

    if errors:
        return Invalid(
            advertiser=advertiser[:64] if ADVERTISER_RE.match(advertiser[:64]) else "",
            event=event[:32] if event in STORE_EVENTS else "",
            errors=errors,
            raw=raw[:MAX_RAW_LEN],
        )
    return Hit(advertiser, event, skus, order_id, value, currency, url, ref)


_MOBILE = re.compile(r"Mobile|iPhone|iPod|Android.*Mobile|Windows Phone|Opera Mini", re.IGNORECASE)
_TABLET = re.compile(r"iPad|Tablet|Android(?!.*Mobile)|Kindle|Silk", re.IGNORECASE)
_BOT = re.compile(r"bot|crawl|spider|slurp|preview|headless|curl|wget|python-requests", re.IGNORECASE)


def device_class(user_agent: str) -> str:
    """Reduce a user agent to a device class; the full string is never stored."""
    if not user_agent:
        return "unknown"
    if _BOT.search(user_agent):
        return "bot"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"
