"""Rendering the HTML ad unit: the products of a decision, laid out for a :class:`~adserver.serving.formats.Format`.

The unit runs in a publisher's iframe under a CSP that forbids scripts, so it is plain HTML and CSS:
no script, no web font, nothing loaded but the product images and the advertiser's logo. It stays
under 8 KB (without the images) whatever the catalog holds: titles are cut on character boundaries
to a byte budget that shrinks as the number of products grows, and the browser ellipsises what does
not fit on screen. Everything that comes from a catalog or a campaign is re-checked here and escaped
by the template: colours reach the stylesheet only as ``#rrggbb``, URLs only as http(s) or local paths.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader
from markupsafe import escape

from adserver.campaigns.campaign import COLOR_RE, Campaign
from adserver.catalog.landing import url_problem
from adserver.serving.formats import Format

MAX_BYTES = 8192  # the promise: HTML and CSS of a unit, without its images
# What a unit spends besides titles: the document, stylesheet and brand bar with its "not interested" link
# (its token lists at most ``hide_tokens.SKU_BYTES`` of product ids), with margin, and per product its
# markup, price and two URLs of ~100 bytes. Titles share the rest (each is written twice).
RESERVE, PER_PRODUCT = 3300, 380
# A product picture in sized variants adds a <picture> with a WebP source and two candidates per format;
# units with many products (where that would leave titles too little) show the WebP ones alone.
PER_PICTURE, PER_LEAN_PICTURE = 280, 60
TITLE_MIN, TITLE_MAX = 45, 450  # escaped UTF-8 bytes per title: 15 to 150 CJK characters
NAME_BYTES, PRICE_BYTES, URL_MAX = 90, 24, 2048
DEFAULT_BG, DEFAULT_FG, DEFAULT_BORDER, DEFAULT_PRICE = "#f6f8fa", "#57606a", "#e3e6ea", "#cf222e"
DARK, LIGHT = "#1f2328", "#ffffff"
HOUSE_NAME = "adserver"
_URL = re.compile(r"(?:https?://[^/?#]|/)[^\x00-\x20\x7f-\x9f<>\"'\\`]*\Z", re.IGNORECASE)
_PLAIN_ORIGIN = re.compile(r"https?://[a-z0-9._-]+(?::[0-9]{1,5})?(?:[/?#]|\Z)", re.IGNORECASE)  # the usual case, fast
_LANG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8})*\Z")
_TEMPLATES = Path(__file__).parent.parent / "templates"
_env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True,
                   auto_reload=False)
# Compiled when the worker starts (~15 ms), not on its first ads, where every thread that misses
# it compiles it for itself at once: a burst of CPU that holds a fresh worker's requests.
_AD_TEMPLATE = _env.get_template("ad.html")

LABELS = {  # AdChoices text, its accessible name, and the message of a unit with nothing to show
    "en": ("Ad \u24d8", "Why this ad? Ad choices", f"Ads by {HOUSE_NAME}"),
    "zh": ("广告 \u24d8", "为什么显示此广告？广告选择", f"{HOUSE_NAME} 广告"),
}
HIDE_LABELS = {"en": "Not interested", "zh": "不感兴趣"}  # the name of the bar's ✕
_HIDE_PLACEHOLDER = "\x1aX\x1a"


def safe_color(value: str | None) -> str:
    """``#rrggbb`` (lowercased) or ``""``: the only form a colour may take into the stylesheet."""
    return value.lower() if isinstance(value, str) and COLOR_RE.match(value) else ""


def safe_url(value: str | None) -> str:
    """An http(s) URL or a path on this server, without quotes, spaces or controls; ``""`` otherwise.

    URLs whose host a browser would read differently (user info, encoded hosts: see
    :func:`~adserver.catalog.landing.url_problem`) and ``//host`` paths are refused too.
    """
    if not isinstance(value, str) or len(value) > URL_MAX or not _URL.match(value) or not value.isprintable():
        return ""
    if value.startswith("//") or (not value.startswith("/") and not _PLAIN_ORIGIN.match(value)
                                  and url_problem(value) is not None):
        return ""
    return value


def _is_extension(char: str) -> bool:
    """Marks and modifiers that belong to the character before them: a cut must not separate them."""
    return unicodedata.category(char) in ("Mn", "Mc", "Me", "Sk") or "\ufe00" <= char <= "\ufe0f"


def clip(text: str | None, max_bytes: int) -> str:
    """Printable text whose escaped UTF-8 form fits ``max_bytes``, cut between characters with ``…``.

    Cutting bytes would split a Chinese character; cutting before a combining mark would strip it
    from its letter, so the cut backs off over those. Results are cached (bounded LRU): an ad
    clips the same catalog titles and prices again and again, and the character-by-character work
    was a tenth of an ad's CPU.
    """
    text = "" if text is None else str(text)
    return _clip(text, max_bytes) if len(text) <= CLIP_CACHE_TEXT else _clip.__wrapped__(text, max_bytes)


CLIP_CACHE_SIZE = 8192
CLIP_CACHE_TEXT = 1024  # longer texts are clipped each time: they would crowd the cache out


@lru_cache(maxsize=CLIP_CACHE_SIZE)
def _clip(text: str, max_bytes: int) -> str:
    if not text.isprintable():
        text = "".join(c for c in text if c.isprintable() or c.isspace())
    text = " ".join(text.split())
    if len(str(escape(text)).encode()) <= max_bytes:
        return text
    budget, end = max_bytes - len("…".encode()), 0
    while end < len(text):
        size = len(str(escape(text[end])).encode())
        if size > budget:
            break
        budget -= size
        end += 1
    while 0 < end < len(text) and _is_extension(text[end]):
        end -= 1
    return text[:end].rstrip() + "…"


def _luminance(color: str) -> float:
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True)
class Brand:
    """Who the unit speaks for: the advertiser's name, logo and colours (empty: the neutral defaults)."""

    name: str
    logo_url: str = ""
    brand_color: str = ""
    text_color: str = ""

    @classmethod
    def for_campaign(cls, campaign: Campaign | None, name: str) -> Brand:
        """The campaign's logo and colours under the advertiser's ``name``; no campaign: a plain unit."""
        if campaign is None:
            return cls(name=(name or "").strip())
        return cls(name=(name or campaign.name or campaign.advertiser or "").strip(),
                   logo_url=safe_url(campaign.logo_url), brand_color=safe_color(campaign.brand_color),
                   text_color=safe_color(campaign.text_color))

    def palette(self) -> dict[str, str]:
        """Validated colours for the stylesheet, readable whatever the campaign chose.

        Without a text colour the bar's text is white or near-black, whichever contrasts more; prices
        take the brand colour when it is readable on white.
        """
        bg = safe_color(self.brand_color)
        fg = safe_color(self.text_color)
        if not bg:
            return {"bg": DEFAULT_BG, "fg": fg or DEFAULT_FG, "border": DEFAULT_BORDER, "price": DEFAULT_PRICE}
        if not fg:
            fg = LIGHT if contrast(bg, LIGHT) >= contrast(bg, DARK) else DARK
        return {"bg": bg, "fg": fg, "border": bg, "price": bg if contrast(bg, LIGHT) >= 4.5 else DEFAULT_PRICE}


def title_bytes(slots: int, picture_bytes: int = 0) -> int:
    """Bytes each title may take in a unit of ``slots`` products, so that the unit stays within ``MAX_BYTES``
    (``picture_bytes``: what each product's sized variants add, see :func:`_pictures`)."""
    slots = max(1, slots)
    return max(TITLE_MIN, min(TITLE_MAX, (MAX_BYTES - RESERVE - slots * (PER_PRODUCT + picture_bytes)) // (2 * slots)))


def _pictures(items: list[dict], slots: int) -> int:
    """Bytes per product the unit's pictures take: ``PER_PICTURE`` for ``<picture>`` with WebP and JPEG
    candidates while titles keep ``TITLE_MIN``; beyond, WebP alone (``PER_LEAN_PICTURE``: every browser
    that reads ``srcset`` but a few old Safaris shows WebP), rewritten here into ``image``/``srcset``."""
    if not any(item.get("webp_srcset") for item in items[:slots]):
        return 0
    if (MAX_BYTES - RESERVE - slots * (PER_PRODUCT + PER_PICTURE)) // (2 * max(1, slots)) >= TITLE_MIN:
        return PER_PICTURE
    for item in items:
        candidates = (item.get("webp_srcset") or "").split(", ")
        if item.get("webp_srcset") and len(candidates) <= 2:
            item.update(image=candidates[0].split(" ")[0], webp_srcset="",
                        srcset=candidates[1] if len(candidates) == 2 else "")
    return PER_LEAN_PICTURE


_CANDIDATE = re.compile(r"(\S+?)(?: ([12])x)?\Z")


def safe_srcset(value: str | None) -> str:
    """A ``srcset`` of at most two candidates ``URL [1x|2x]`` whose URLs pass :func:`safe_url` (no commas:
    they would split a candidate); ``""`` otherwise."""
    if not isinstance(value, str) or not value or len(value) > 2 * URL_MAX:
        return ""
    return _checked_srcset(value)


@lru_cache(maxsize=4096)
def _checked_srcset(value: str) -> str:
    """The check itself, remembered: an advertiser's ads show the same few pictures' srcsets again and again."""
    candidates = value.split(", ")
    if len(candidates) > 2:
        return ""
    for candidate in candidates:
        match = _CANDIDATE.match(candidate)
        if not match or "," in match[1] or safe_url(match[1]) != match[1]:
            return ""
    return value


def _products(items: list[dict], fmt: Format) -> list[dict[str, str]]:
    items = [dict(item) for item in items]
    limit = title_bytes(fmt.slots, _pictures(items, fmt.slots))
    out = []
    for item in items:
        if len(out) >= fmt.slots:
            break
        href = safe_url(item.get("click_url"))
        if not href:  # a product nobody can click is no ad
            continue
        image = safe_url(item.get("image"))
        out.append({"href": href, "image": image, "title": clip(item.get("title"), limit),
                    "price": clip(item.get("price_text"), PRICE_BYTES),
                    "srcset": safe_srcset(item.get("srcset")) if image else "",
                    "webp": safe_srcset(item.get("webp_srcset")) if image else ""})
    return out


# A unit's markup depends on its products only through their values; everything else (format,
# brand, language, how many products and which have an image) repeats from one request to the next.
# So the template is rendered once per such shape with placeholders in place of the values, and a
# request only escapes its values into that skeleton: the same bytes as rendering, in a fraction of
# the time (Jinja rendered the whole stylesheet for every ad). Placeholders use \x1a, which no value
# can hold (``clip`` drops it from text, ``safe_url`` rejects it), and which escaping leaves alone.
_SKELETONS: dict[tuple, str] = {}
_SKELETONS_LOCK = threading.Lock()  # a new shape is rendered once, while the threads that need it wait
SKELETONS_MAX = 1024
_PLACEHOLDER = re.compile("\x1a([0-9]+)([hitpsw])\x1a")
_FIELDS = {"h": "href", "i": "image", "t": "title", "p": "price", "s": "srcset", "w": "webp"}


def render_unit(items: list[dict], fmt: Format, brand: Brand, optout_url: str, lang: str,
                hide_url: str = "") -> str:
    """The complete HTML document of one ad unit: at most ``fmt.slots`` of ``items``, branded, never empty.

    ``items`` carry ``sku, title, price_text, image, click_url, reason``; ``lang`` (``en``, ``zh``…)
    picks the language of the labels; ``hide_url``: the unit's "not interested" page (no ✕ without it,
    nor in a unit without products).
    """
    lang = lang if isinstance(lang, str) and _LANG.match(lang) else "en"
    products = _products(items, fmt)
    name, logo = clip(brand.name, NAME_BYTES), safe_url(brand.logo_url)
    optout = safe_url(optout_url) or "/optout"
    hide = safe_url(hide_url) if products else ""
    key = (fmt, lang, name, logo, brand.brand_color, brand.text_color, optout, bool(hide),
           tuple((bool(p["image"]), bool(p["srcset"]), bool(p["webp"])) for p in products))
    skeleton = _SKELETONS.get(key)
    if skeleton is None:
        with _SKELETONS_LOCK:
            skeleton = _SKELETONS.get(key)
            if skeleton is None:
                skeleton = _skeleton(products, fmt, brand, name, logo, optout, lang, bool(hide))
                if len(_SKELETONS) >= SKELETONS_MAX:
                    _SKELETONS.clear()
                _SKELETONS[key] = skeleton
    values = [{k: str(escape(v)) for k, v in p.items()} for p in products]
    html = _PLACEHOLDER.sub(lambda m: values[int(m[1])][_FIELDS[m[2]]], skeleton)
    return html.replace(_HIDE_PLACEHOLDER, str(escape(hide)), 1) if hide else html


def _skeleton(products: list[dict[str, str]], fmt: Format, brand: Brand, name: str, logo: str, optout: str,
              lang: str, hide: bool) -> str:
    """The unit of this shape with a placeholder in place of each product's values (see ``render_unit``)."""
    slots = [{"href": f"\x1a{n}h\x1a", "image": f"\x1a{n}i\x1a" if p["image"] else "",
              "title": f"\x1a{n}t\x1a", "price": f"\x1a{n}p\x1a",
              "srcset": f"\x1a{n}s\x1a" if p["srcset"] else "", "webp": f"\x1a{n}w\x1a" if p["webp"] else ""}
             for n, p in enumerate(products)]
    return _render(slots, fmt, brand, name, logo, optout, lang, _HIDE_PLACEHOLDER if hide else "")


def _render(products: list[dict[str, str]], fmt: Format, brand: Brand, name: str, logo: str, optout: str,
            lang: str, hide_url: str = "") -> str:
    language = "zh" if lang.startswith("zh") else "en"
    label, label_long, house = LABELS[language]
    return _AD_TEMPLATE.render(
        fmt=fmt, items=products, lang=lang, label=label, label_long=label_long, house=house,
        name=name, logo=logo, colors=brand.palette(), optout_url=optout, hide_url=hide_url,
        hide_label=HIDE_LABELS[language],
    )
