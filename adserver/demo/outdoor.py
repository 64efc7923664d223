"""The second demo advertiser, "Trailhead Outdoor" / 山径户外 (advertiser ``outdoor``): its products and pictures.

With two stores the ad auction has two advertisers competing for the same slots, and a shopper who
browses both shows interest in each. Its pictures are drawn in the same style as the Lotus store's
(:mod:`adserver.demo.shop`). Everything is deterministic: ``write_all()`` rewrites the pictures and
the logo byte for byte (``python -c "from adserver.demo.outdoor import write_all; write_all()"``).
"""

from __future__ import annotations

from pathlib import Path

from adserver.demo.shop import STATIC_ROOT, Category, Row, ShopCatalog

ADVERTISER = "outdoor"
NAME = "Trailhead Outdoor 山径户外"
CURRENCY = "CNY"

CATEGORIES: tuple[Category, ...] = (
    Category("tents", "Tents", "帐篷", "Outdoor > Camping > Tents", "#2e7d32", "tent"),
    Category("hiking-boots", "Hiking Boots", "登山鞋", "Apparel > Shoes > Hiking Boots", "#8d5524", "boot"),
    Category("headlamps", "Headlamps", "头灯", "Outdoor > Lighting > Headlamps", "#37474f", "headlamp"),
    Category("camping-mugs", "Camping Mugs", "露营杯", "Outdoor > Camping > Cookware > Mugs", "#00838f", "mug"),
    Category("trekking-poles", "Trekking Poles", "登山杖", "Outdoor > Hiking > Trekking Poles", "#c62828", "poles"),
    Category("sleeping-bags", "Sleeping Bags", "睡袋", "Outdoor > Camping > Sleeping Bags", "#1565c0", "sleeping-bag"),
)

# Colour of the drawn object for colour variants; other products are drawn in white.
VARIANT_COLOURS = {"orange": "#ff7043", "sand": "#e6c98f", "grey": "#b0bec5"}

# The products, in id order (T2001 first): see ``Row``.
ROWS: tuple[Row, ...] = (
    ("tents", "双人轻量帐篷 Ridge 2 Ultralight Tent 橙色 Orange", "Two people, 1.4 kg, two doors and two vestibules. 双层防雨。", "Trailhead", "1299.00", "RIDGE2", "orange"),
    ("tents", "Ridge 2 Ultralight Tent 双人帐篷 沙色 Sand", "Two people, 1.4 kg, two doors and two vestibules. 双层防雨。", "Trailhead", "1299.00", "RIDGE2", "sand"),
    ("tents", "双人轻量帐篷 Ridge 2 Ultralight Tent 灰色 Grey", "Two people, 1.4 kg, two doors and two vestibules. 双层防雨。", "Trailhead", "1299.00", "RIDGE2", "grey"),
    ("tents", "Family Dome Tent 4P 家庭露营帐篷", "A tall four-person dome with a porch; pitches in ten minutes.", "Campside", "1699.00", "", ""),
    ("hiking-boots", "中帮防水登山鞋 Summit Mid Waterproof Boots", "Waterproof membrane, deep lugs and ankle support for rocky trails.", "Summitline", "1099.00", "", ""),
    ("hiking-boots", "Trail Hiker Low 低帮徒步鞋", "A light, breathable low-cut shoe for day hikes.", "Summitline", "699.00", "", ""),
    ("hiking-boots", "Alpine Pro Boots 高山靴", "Stiff sole that takes crampons, for snow and scree. 雪山攀登。", "Summitline", "1899.00", "", ""),
    ("hiking-boots", "女款徒步鞋 Women's Trail Walker", "Shaped for women's feet, with a cushioned heel.", "Pinecrest", "759.00", "", ""),
    ("headlamps", "LED头灯 Beam 400 Headlamp", "400 lumens, red night mode, USB-C rechargeable.", "Lumina Trail", "199.00", "", ""),
    ("headlamps", "Ultralight Headlamp 超轻头灯 35 g", "35 g with its battery; 200 lumens for a run at dusk.", "Lumina Trail", "149.00", "", ""),
    ("headlamps", "Beam 900 Pro 远射头灯", "900 lumens, battery pack at the back, waterproof to IPX7.", "Lumina Trail", "389.00", "", ""),
    ("headlamps", "儿童头灯 Kids Headlamp", "Soft strap, 50 lumens, and a lock so it never lights up in the bag.", "Campside", "79.00", "", ""),
    ("camping-mugs", "钛杯 Titanium Mug 450ml", "58 g, folding handles; goes straight onto the stove.", "Pinecrest", "169.00", "", ""),
    ("camping-mugs", "Insulated Camp Mug 保温露营杯", "Double-wall steel with a sliding lid: coffee stays hot for an hour.", "Campside", "119.00", "", ""),
    ("camping-mugs", "搪瓷杯 Enamel Camp Mug", "The classic enamel steel mug with a rolled rim.", "Campside", "49.00", "", ""),
    ("camping-mugs", "Collapsible Silicone Cup 折叠杯", "Folds flat to 2 cm; food-grade silicone.", "Trailhead", "39.00", "", ""),
    ("trekking-poles", "碳纤维登山杖 Carbon Trekking Poles (pair)", "210 g each, three-section folding, cork grips.", "Summitline", "599.00", "", ""),
    ("trekking-poles", "Aluminium Trekking Poles 铝合金登山杖 (pair)", "Telescopic, lever locks, tungsten tips.", "Trailhead", "259.00", "", ""),
    ("trekking-poles", "Z-Fold Running Poles 越野跑折叠杖", "Fold to 38 cm and stow on a running vest.", "Summitline", "459.00", "", ""),
    ("trekking-poles", "儿童徒步杖 Kids Walking Pole", "A short telescopic pole with a soft grip.", "Campside", "99.00", "", ""),
    ("sleeping-bags", "羽绒睡袋 Down Sleeping Bag -5°C", "700-fill goose down, mummy cut, 980 g.", "Pinecrest", "1199.00", "", ""),
    ("sleeping-bags", "Synthetic Sleeping Bag 化纤睡袋 +5°C", "Stays warm when damp; machine washable.", "Campside", "399.00", "", ""),
    ("sleeping-bags", "信封睡袋 Envelope Sleeping Bag", "Opens flat into a quilt and zips to a twin.", "Campside", "299.00", "", ""),
    ("sleeping-bags", "Silk Sleeping Bag Liner 真丝睡袋内胆", "Adds warmth and keeps the bag clean; 120 g.", "Trailhead", "189.00", "", ""),
)

# Drawings centred in a 400x400 box; "F" is replaced by the object's colour, "B" by the background.
SHAPES = {
    "tent": (
        '<path d="M200 96 V78" stroke="F" stroke-width="8" stroke-linecap="round"/>'
        '<path d="M200 100 L338 298 H62 Z" fill="F"/>'
        '<path d="M200 150 L246 298 H154 Z" fill="#000" fill-opacity=".18"/>'
        '<path d="M62 298 L30 316 M338 298 L370 316" stroke="F" stroke-width="5"/>'
        '<rect x="44" y="294" width="312" height="12" rx="6" fill="F"/>'
    ),
    "boot": (
        '<path d="M118 104 H206 L212 212 Q300 218 322 256 L326 290 H92 L100 248 Z" fill="F"/>'
        '<path d="M150 134 H194 M152 164 H198 M156 194 H204" stroke="B" stroke-width="8"/>'
        '<rect x="84" y="286" width="250" height="24" rx="9" fill="F"/>'
        '<path d="M104 310 V296 M144 310 V296 M184 310 V296 M224 310 V296 M264 310 V296 M304 310 V296" '
        'stroke="B" stroke-width="6"/>'
    ),
    "headlamp": (
        '<ellipse cx="200" cy="190" rx="132" ry="52" fill="none" stroke="F" stroke-width="16"/>'
        '<rect x="146" y="196" width="108" height="84" rx="20" fill="F"/>'
        '<circle cx="200" cy="238" r="26" fill="B"/>'
        '<circle cx="200" cy="238" r="14" fill="#fff" fill-opacity=".6"/>'
        '<path d="M200 296 V330 M164 290 L140 318 M236 290 L260 318" stroke="F" stroke-width="8" '
        'stroke-linecap="round"/>'
    ),
    "mug": (
        '<rect x="122" y="138" width="148" height="18" rx="8" fill="F"/>'
        '<path d="M130 150 H262 V286 Q262 306 242 306 H150 Q130 306 130 286 Z" fill="F"/>'
        '<path d="M262 180 H292 Q312 180 312 200 V240 Q312 260 292 260 H262" fill="none" stroke="F" '
        'stroke-width="16"/>'
        '<path d="M156 270 L184 228 L200 250 L216 232 L238 270 Z" fill="B"/>'
    ),
    "poles": (
        '<path d="M130 320 L250 90 M270 320 L150 90" stroke="F" stroke-width="12" stroke-linecap="round"/>'
        '<path d="M250 90 L236 118 M150 90 L164 118" stroke="F" stroke-width="28" stroke-linecap="round"/>'
        '<ellipse cx="144" cy="292" rx="22" ry="8" fill="none" stroke="F" stroke-width="6"/>'
        '<ellipse cx="256" cy="292" rx="22" ry="8" fill="none" stroke="F" stroke-width="6"/>'
    ),
    "sleeping-bag": (
        '<path d="M150 90 Q200 70 250 90 Q282 112 270 200 L258 310 Q200 330 142 310 L130 200 '
        'Q118 112 150 90 Z" fill="F"/>'
        '<ellipse cx="200" cy="122" rx="36" ry="24" fill="#000" fill-opacity=".18"/>'
        '<path d="M136 184 Q200 200 264 184 M134 234 Q200 250 266 234 M140 282 Q200 298 260 282" '
        'fill="none" stroke="B" stroke-width="5"/>'
        '<path d="M240 146 L228 304" stroke="B" stroke-width="4" stroke-dasharray="6 4"/>'
    ),
}

# The logo: a mountain and the store's Latin name (CJK fonts are not assumed).
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="220" height="48" viewBox="0 0 220 48" '
    'role="img" aria-label="Trailhead Outdoor">'
    '<path d="M2 40 L17 16 L24 27 L32 6 L46 40 Z" fill="#2f5d3a"/>'
    '<path d="M32 6 L29 14 L31 12 L33 15 L35 14 Z" fill="#fff"/>'
    '<rect x="4" y="40" width="40" height="4" rx="2" fill="#e8590c"/>'
    '<text x="54" y="32" font-family="sans-serif" font-size="22" font-weight="bold" '
    'fill="#1f2933">Trailhead</text>'
    '<text x="154" y="31" font-family="sans-serif" font-size="10" font-weight="bold" letter-spacing="1" '
    'fill="#e8590c">OUTDOOR</text>'
    "</svg>\n"
)

CATALOG = ShopCatalog(
    advertiser=ADVERTISER, name=NAME, currency=CURRENCY, id_prefix="T", first_number=2001,
    store_path="/demo/outdoor", images="demo/outdoor", logo="demo/outdoor/logo.svg", logo_svg=LOGO_SVG,
    categories=CATEGORIES, rows=ROWS, shapes=SHAPES, variant_colours=VARIANT_COLOURS,
    # Sold out, so the ad server's handling of unavailable products shows in this store too.
    out_of_stock=frozenset({"T2007", "T2022"}),
)


def outdoor_products(base_url: str) -> list[dict]:
    """The 24 products as feed rows, with links and pictures under ``base_url`` (the store's origin)."""
    return CATALOG.products(base_url)


def write_all(static: Path = STATIC_ROOT) -> list[Path]:
    """Regenerate every committed file of the store: the product pictures and the logo."""
    return CATALOG.write_files(static)
