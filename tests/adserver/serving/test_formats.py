"""Ad unit formats: each size's layout, the 8 KB budget, strict HTML validity, branding and hostile input.

Units are checked twice: rendered directly with synthetic worst cases (the most products a format
takes, 150-character titles in Chinese and English, ~100-byte URLs, a long brand name and a logo),
and served by the app from the demo catalog.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import html5lib
import pytest
from markupsafe import escape

from adserver.campaigns.campaign import Campaign
from adserver.serving.formats import RESPONSIVE, STANDARD, BadSize, Format, parse_size
from adserver.serving.units import MAX_BYTES, Brand, clip, contrast, render_unit, safe_color, safe_url

STANDARD_SIZES = ["300x250", "728x90", "160x600", "320x50", "320x100", "responsive"]
GENERIC_SIZES = ["600x400", "468x60", "970x250", "300x600", "120x600", "234x60", "2000x2000", "2000x20", "20x2000",
                 "20x20"]
OPTOUT = "http://localhost/optout"
ZH_TITLE = ("超轻便携真空保温杯不锈钢大容量男女学生办公室泡茶水杯礼盒装" * 6)[:150]
EN_TITLE = ("Ultralight portable vacuum insulated stainless steel tumbler with tea infuser, gift box " * 2)[:150]
MIXED_TITLE = ("青瓷茶具 Celadon tea set & “cups” <6 pcs> " * 5)[:150]
LONG_BRAND = Brand("莲花良品 Lotus & Co. 官方旗舰店" * 8, "https://cdn.shop.example/brand/lotus-and-co/logo-2024.svg",
                   "#0f5132", "#ffffff")


def items(count: int, title: str = EN_TITLE) -> list[dict]:
    """Synthetic products with ~100-byte click and image URLs."""
    return [{"sku": f"SKU{i:05d}", "title": title, "price_text": "¥1,234,567.89", "reason": "popular",
             "image": f"https://cdn.shop.example/images/products/2024/06/{i:05d}-front-800x800-q85.jpg?v=3f2a",
             "click_url": f"http://localhost/c/{'A' * 76}{i:05d}"} for i in range(count)]


class Unit(HTMLParser):
    """Tags, attributes, text and the stylesheet of a rendered unit."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.css = ""
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css += data
        else:
            self.text.append(data)

    def attrs_of(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def products(self) -> list[dict[str, str]]:
        return [a for a in self.attrs_of("a") if "/c/" in a.get("href", "")]

    def adchoices(self) -> list[dict[str, str]]:
        return [a for a in self.attrs_of("a") if a.get("href", "").endswith("/optout")]


def check_unit(html: str, fmt: Format, expected_products: int | None = None) -> Unit:
    """What every unit must be: small, strictly valid HTML, no script, lazy images, an AdChoices link."""
    assert len(html.encode()) <= MAX_BYTES, (fmt.name, len(html.encode()))
    html5lib.HTMLParser(strict=True).parse(html)  # raises on any parse error
    assert "<script" not in html.lower()
    assert "@import" not in html and "@font-face" not in html
    unit = Unit(html)
    assert not [t for t, _ in unit.tags if t in ("script", "iframe", "object", "embed", "form", "base", "link")]
    for tag, attrs in unit.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
    products = unit.products()
    assert len(products) <= fmt.slots
    if expected_products is not None:
        assert len(products) == expected_products
    for link in products:
        assert link["target"] == "_blank" and "noopener" in link["rel"].split()
    images = unit.attrs_of("img")
    assert len(images) == len(products)  # every image is a product's; the logo is a background
    for img in images:
        assert img["loading"] == "lazy"
        assert img["width"].isdigit() and img["height"].isdigit()
        assert img["alt"] == ""  # the title next to it names the link
    [choices] = unit.adchoices()
    assert choices["target"] == "_blank" and "noopener" in choices["rel"].split()
    assert "".join(unit.text).strip()
    return unit


# --- sizes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "layout", "slots"), [
    ("320x50", "banner", 1), ("320x100", "strip", 2), ("728x90", "strip", 4), ("160x600", "column", 3),
    ("300x250", "grid", 4), ("responsive", "carousel", 6),
])
def test_standard_sizes_have_their_own_layouts(size, layout, slots):
    fmt = parse_size(size)
    assert (fmt.name, fmt.layout, fmt.slots) == (size, layout, slots)
    assert fmt.cols * fmt.rows == slots or fmt.layout == "carousel"
    assert parse_size(None) == parse_size("") == RESPONSIVE


@pytest.mark.parametrize(("size", "layout"), [
    ("468x60", "strip"), ("234x60", "banner"), ("970x90", "strip"), ("120x600", "column"), ("300x600", "grid"),
    ("600x400", "grid"), ("336x280", "grid"), ("20x20", "banner"), ("2000x2000", "grid"),
])
def test_other_sizes_get_a_layout_from_their_shape(size, layout):
    fmt = parse_size(size)
    assert (fmt.name, fmt.width, fmt.height) == (size, *map(int, size.split("x")))
    assert fmt.layout == layout
    assert 1 <= fmt.slots <= 12
    assert fmt.cols * fmt.rows == fmt.slots
    assert fmt.image >= 16
    assert size not in STANDARD


def test_large_generic_grid_keeps_twelve_products():
    assert parse_size("600x400").slots == 12  # 4 x 3, as before


@pytest.mark.parametrize(("size", "message"), [
    ("abc", "WxH"), ("300x250x1", "WxH"), ("300x250\n", "WxH"), ("-300x250", "WxH"), ("٣٠٠x250", "WxH"),
    ("10x10", "between 20 and 2000"), ("2001x250", "between 20 and 2000"), ("300x19", "between 20 and 2000"),
])
def test_bad_sizes_keep_their_messages(size, message):
    with pytest.raises(BadSize, match=message):
        parse_size(size)


@pytest.mark.parametrize("size", ["0x0", "abc", "2001x250", "300%20x%20250"])
def test_bad_size_is_a_400_for_the_html_unit(client, demo_loaded, size):
    response = client.get(f"/ad?p=demo-feed&size={size}")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "WxH" in body or "width and height must be between" in body


# --- the budget and validity, worst cases ---------------------------------------------------------------


@pytest.mark.parametrize("title", [ZH_TITLE, EN_TITLE, MIXED_TITLE], ids=["zh", "en", "mixed"])
@pytest.mark.parametrize("size", STANDARD_SIZES + GENERIC_SIZES)
def test_worst_case_unit_fits_8kb_and_is_valid(size, title):
    fmt = parse_size(size)
    assert len(title) == 150
    html = render_unit(items(fmt.slots + 3, title), fmt, LONG_BRAND, OPTOUT, "zh")
    unit = check_unit(html, fmt, expected_products=fmt.slots)
    for link in unit.products():  # titles are cut between characters, never inside one
        shown = link["title"]
        assert title.startswith(shown.removesuffix("…").rstrip())
        assert shown in unit.text


def test_titles_are_cut_by_characters_within_a_byte_budget():
    assert clip("短标题", 100) == "短标题"
    cut = clip("保温杯" * 50, 30)
    assert cut == "保温杯保温杯保温杯…" and len(cut.encode()) == 30
    assert clip("a\u0301" * 20, 10) == "a\u0301a\u0301…"  # never a letter without its accent
    for budget in range(3, 9):
        kept = clip("e\u0301" * 3, budget).removesuffix("…")
        assert not unicodedata.combining(("e\u0301" * 3 + "x")[len(kept)]), budget  # the cut falls between letters
    assert len(str(escape(clip('"' * 150, 60))).encode()) <= 60  # measured escaped: &#34; is 5 bytes
    assert clip("tab\tand\nnew  line\x00\x07", 100) == "tab and new line"
    for budget in range(4, 60):
        text = clip("莲花 lotus 良品 😀 " * 10, budget)
        assert len(text.encode()) <= budget


def test_chinese_units_are_labelled_in_chinese():
    fmt = parse_size("300x250")
    zh = Unit(render_unit(items(4, ZH_TITLE), fmt, Brand("莲花良品"), OPTOUT, "zh"))
    assert "广告" in "".join(zh.text)
    assert zh.attrs_of("html")[0]["lang"] == "zh"
    en = Unit(render_unit(items(4), fmt, Brand("Lotus"), OPTOUT, "en"))
    assert "Ad" in "".join(en.text)
    bad = Unit(render_unit(items(4), fmt, Brand("Lotus"), OPTOUT, '"><x'))
    assert bad.attrs_of("html")[0]["lang"] == "en"


@pytest.mark.parametrize("size", STANDARD_SIZES + ["600x400"])
def test_a_unit_with_nothing_to_show_is_still_a_unit(size):
    fmt = parse_size(size)
    for brand in (Brand(""), Brand("Lotus & Co.", brand_color="#0f5132")):
        unit = check_unit(render_unit([], fmt, brand, OPTOUT, "en"), fmt, expected_products=0)
        assert "Ads by adserver" in "".join(unit.text)
    unplayable = [dict(item, click_url="javascript:alert(1)") for item in items(2)]
    check_unit(render_unit(unplayable, fmt, Brand(""), OPTOUT, "en"), fmt, expected_products=0)


def test_missing_images_keep_the_layout():
    fmt = parse_size("300x250")
    unit = Unit(render_unit([dict(i, image="") for i in items(4)], fmt, Brand("x"), OPTOUT, "en"))
    assert len(unit.products()) == 4 and not unit.attrs_of("img") and len(unit.attrs_of("i")) == 4


# --- branding -------------------------------------------------------------------------------------------


def campaign(**kwargs) -> Campaign:
    return Campaign("spring", "lotus", name="Spring sale", price=1.0, **kwargs)


def test_brand_for_campaign_and_defaults():
    assert Brand.for_campaign(None, "Lotus") == Brand("Lotus")
    brand = Brand.for_campaign(campaign(logo_url="https://cdn.example/l.svg", brand_color="#0F5132",
                                        text_color="#FFFFFF"), "Lotus")
    assert brand == Brand("Lotus", "https://cdn.example/l.svg", "#0f5132", "#ffffff")
    assert Brand.for_campaign(campaign(), "").name == "Spring sale"
    hostile = Brand.for_campaign(campaign(logo_url="javascript:alert(1)", brand_color="red",
                                          text_color="#fff\"}"), "Lotus")
    assert hostile == Brand("Lotus")


def test_palette_stays_readable():
    assert Brand("x").palette()["bg"] == "#f6f8fa"
    dark = Brand("x", brand_color="#0f5132").palette()
    assert dark["fg"] == "#ffffff" and dark["price"] == "#0f5132"
    light = Brand("x", brand_color="#ffe066").palette()
    assert light["fg"] == "#1f2328" and light["price"] != "#ffe066"
    assert contrast(light["bg"], light["fg"]) >= 4.5
    assert Brand("x", brand_color="#ffe066", text_color="#123456").palette()["fg"] == "#123456"


def test_logo_and_colours_reach_the_unit():
    fmt = parse_size("728x90")
    unit = Unit(render_unit(items(4), fmt, LONG_BRAND, OPTOUT, "en"))
    assert "background:#0f5132" in unit.css and "color:#ffffff" in unit.css
    [logo] = [a for _, a in unit.tags if a.get("role") == "img"]
    assert logo["style"] == 'background-image:url("https://cdn.shop.example/brand/lotus-and-co/logo-2024.svg")'
    assert logo["aria-label"].startswith("莲花良品")


HOSTILE_TITLES = [
    "<script>alert(1)</script>Tea", '"><img src=x onerror=alert(1)>Cup', "' onmouseover='x",
    "</style><script>alert(2)</script>", "&lt;script&gt;alert(4)&lt;/script&gt;", "</title><svg onload=alert(5)>",
]
HOSTILE_BRANDS = [
    Brand("</style><script>alert(1)</script>", "javascript:alert(1)", "red;}</style><script>alert(2)</script>",
          '#fff" onload="alert(3)'),
    Brand('"><img src=x onerror=alert(4)>', 'https://cdn.example/l.svg")};body{background:url(//evil.example/x)}',
          "#123456;background:url(//evil.example/y)", "expression(alert(5))"),
    Brand("</title><script>alert(6)</script>", "https://cdn.example/l.svg' onerror='alert(7)", "#12345g",
          "#ffffff\n}</style>"),
    Brand("x", "data:image/svg+xml,<svg onload=alert(8)>", "", ""),
    Brand("x", "//evil.example/\\\"", "", ""),
]


@pytest.mark.parametrize("brand", HOSTILE_BRANDS)
@pytest.mark.parametrize("size", STANDARD_SIZES)
def test_hostile_titles_brands_colours_and_urls_render_inert(size, brand):
    fmt = parse_size(size)
    hostile = [dict(item, title=title) for item, title in zip(items(6), HOSTILE_TITLES)]
    hostile.append(dict(items(1)[0], click_url="javascript:alert(9)"))
    hostile.append(dict(items(1)[0], image="javascript:alert(10)"))
    hostile.append(dict(items(1)[0], image='https://x.example/a.png" onerror="alert(11)'))
    html = render_unit(hostile, fmt, brand, OPTOUT, "en")
    unit = check_unit(html, fmt)
    for payload in ("<script", "<img src=x", "<svg", "javascript:", "data:image", "evil.example", "expression(",
                    "' onmouseover='"):
        assert payload not in html, payload
    assert html.count("</style>") == 1 and html.count("</title>") == 1
    # Colours reach the stylesheet only as #rrggbb.
    for declaration in re.findall(r"(?:color|background|border):([^;}]*)", unit.css):
        assert re.fullmatch(r"#[0-9a-f]{6}|#fff|inherit|1px solid #[0-9a-f]{6}|(left )?center/contain no-repeat",
                            declaration.strip()), declaration
    assert "url(" not in unit.css
    # Titles are shown as text, escaped, not dropped.
    text = "".join(unit.text)
    shown = [a["title"] for a in unit.products()]
    for title in HOSTILE_TITLES[: fmt.slots]:
        assert title in shown and title in text


def test_url_and_colour_checks():
    assert safe_url("https://cdn.example/a.png?x=1&y=2") == "https://cdn.example/a.png?x=1&y=2"
    assert safe_url("/static/demo/logo.svg") == "/static/demo/logo.svg"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:x", "data:image/png,x", "https://x/\"a", "https://x/a b",
                "https://x/\u0085", "http://", "ftp://x/", "", None, "https://x/" + "a" * 2048):
        assert safe_url(bad) == "", bad
    assert safe_color("#A1B2C3") == "#a1b2c3"
    for bad in ("red", "#fff", "#a1b2c3;", "#a1b2c3\n", "", None, "#a1b2cg"):
        assert safe_color(bad) == "", bad


# --- served by the app ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", STANDARD_SIZES + ["600x400", "468x60", "120x600", "970x250"])
def test_served_units_fit_and_are_valid(client, demo_loaded, size):
    assert client.get("/px.gif?a=demo&e=view_item&sku=D1004").status_code == 200
    response = client.get(f"/ad?p=demo-feed&size={size}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    fmt = parse_size(size)
    unit = check_unit(response.get_data(as_text=True), fmt)
    assert 1 <= len(unit.products()) <= fmt.slots
    assert unit.attrs_of("html")[0]["lang"] == "zh"  # the demo catalog has Chinese titles
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_served_unit_without_products_is_not_empty(client, demo_loaded, monkeypatch):
    from adserver.serving import views as ads

    def nothing(items, fmt, brand, optout_url, lang, *args):
        return real(items[:0], fmt, brand, optout_url, lang, *args)

    real = ads.render_unit
    monkeypatch.setattr(ads, "render_unit", nothing)
    response = client.get("/ad?p=demo-feed&size=300x250")
    assert response.status_code == 200
    unit = check_unit(response.get_data(as_text=True), parse_size("300x250"), expected_products=0)
    assert "adserver" in "".join(unit.text)
