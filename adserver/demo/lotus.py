"""The first demo advertiser, "Lotus & Co." / 莲花良品 (advertiser ``demo``): its products and pictures.

A general store with eight departments and 60 products, some of them colour variants and some sold
out. The same products, written as ``feed.json``, are the example of the Google-Merchant-style feed
an advertiser uploads. Everything is deterministic: ``write_all()`` rewrites ``feed.json``, the
product pictures and the logo byte for byte
(``python -c "from adserver.demo.lotus import write_all; write_all()"``).
"""

from __future__ import annotations

import json
from pathlib import Path

from adserver.demo.shop import STATIC_ROOT, Category, Row, ShopCatalog

ADVERTISER = "demo"
NAME = "Lotus & Co. 莲花良品"
CURRENCY = "CNY"
FEED_BASE_URL = "http://127.0.0.1:8000"
FEED_PATH = Path(__file__).with_name("feed.json")

CATEGORIES: tuple[Category, ...] = (
    Category("tea-ware", "Tea Ware", "茶具", "Home > Tea Ware", "#2e7d6b", "teapot"),
    Category("headphones", "Headphones", "耳机", "Electronics > Audio > Headphones", "#3949ab", "headphones"),
    Category("running-shoes", "Running Shoes", "跑鞋", "Apparel > Shoes > Running Shoes", "#e4572e", "shoe"),
    Category("backpacks", "Backpacks", "背包", "Bags > Backpacks", "#8d6e63", "backpack"),
    Category("keyboards", "Mechanical Keyboards", "机械键盘", "Electronics > Computers > Keyboards", "#546e7a", "keyboard"),
    Category("skincare", "Skincare", "护肤", "Health & Beauty > Skin Care", "#c2185b", "bottle"),
    Category("coffee", "Coffee", "咖啡", "Food & Drink > Coffee", "#6d4c41", "cup"),
    Category("lamps", "Desk Lamps", "台灯", "Home > Lighting > Desk Lamps", "#f2a413", "lamp"),
)

# Colour of the drawn object for colour variants; other products are drawn in white.
VARIANT_COLOURS = {
    "black": "#212121", "silver": "#cfd8dc", "blue": "#1a237e", "white": "#ffffff",
    "grey": "#9e9e9e", "navy": "#283593", "brown": "#a1662f", "red": "#e53935",
}

# The products, in id order (D1001 first): see ``Row``.
ROWS: tuple[Row, ...] = (
    ("tea-ware", "青瓷茶具套装 Celadon Tea Set", "Six cups, a gaiwan and a fair cup in Longquan celadon glaze. 龙泉青瓷。", "Longquan Studio", "368.00", "", ""),
    ("tea-ware", "Glass Teapot 玻璃茶壶 600ml", "Heat-resistant borosilicate teapot with a steel infuser.", "Clearleaf", "89.00", "", ""),
    ("tea-ware", "紫砂壶 Yixing Clay Teapot", "Hand-thrown zisha clay teapot, 220 ml, for oolong and pu-erh.", "Dingshu Craft", "520.00", "", ""),
    ("tea-ware", "Bamboo Tea Tray 竹制茶盘", "Carbonised bamboo tray with a hidden drainage tank.", "Moso Home", "159.00", "", ""),
    ("tea-ware", "旅行茶具便携套装 Travel Tea Kit", "One pot, four cups and a padded case that fits in a backpack.", "Clearleaf", "129.00", "", ""),
    ("tea-ware", "Gaiwan 盖碗 White Porcelain", "Classic 150 ml lidded bowl in Jingdezhen white porcelain.", "Jingdezhen Works", "68.00", "", ""),
    ("tea-ware", "建盏 Jian Zhan Tenmoku Cup", "Iron-rich glaze with a hare's-fur pattern; every cup is unique.", "Jianyang Kiln", "238.00", "", ""),
    ("tea-ware", "Tea Canister Set 茶叶罐 (3 pcs)", "Airtight tin canisters that keep green tea fresh.", "Moso Home", "49.90", "", ""),
    ("headphones", "降噪头戴耳机 QuietCore 20 黑色 Black", "Over-ear noise cancelling, 40-hour battery, folding design.", "QuietCore", "1299.00", "QC20", "black"),
    ("headphones", "QuietCore 20 Headphones 银色 Silver", "Over-ear noise cancelling, 40-hour battery, folding design.", "QuietCore", "1299.00", "QC20", "silver"),
    ("headphones", "降噪头戴耳机 QuietCore 20 午夜蓝 Midnight Blue", "Over-ear noise cancelling, 40-hour battery, folding design.", "QuietCore", "1349.00", "QC20", "blue"),
    ("headphones", "AirLite True Wireless Earbuds 真无线耳机", "Pocket-size charging case, 7 hours per charge, IPX4.", "AirLite", "399.00", "", ""),
    ("headphones", "运动蓝牙耳机 SportLoop Wireless Earphones", "Ear hooks that stay put on a run. 防汗防水。", "SportLoop", "259.00", "", ""),
    ("headphones", "M50 Studio Monitor Headphones 监听耳机", "Flat response for mixing, detachable cable.", "Studio Line", "899.00", "", ""),
    ("headphones", "骨传导耳机 OpenRun Bone Conduction", "Open-ear sound that leaves you aware of the traffic.", "OpenRun", "699.00", "", ""),
    ("headphones", "Kids Headphones 儿童耳机 Volume-Limited", "85 dB limit, bendable band, stickers included.", "Little Ears", "149.00", "", ""),
    ("running-shoes", "轻量跑鞋 Swift 3 Running Shoes 白色 White", "A 210 g daily trainer with a breathable knit upper.", "Swift", "599.00", "SWIFT3", "white"),
    ("running-shoes", "Swift 3 Running Shoes 黑色 Black", "A 210 g daily trainer with a breathable knit upper.", "Swift", "599.00", "SWIFT3", "black"),
    ("running-shoes", "Trail Runner X 越野跑鞋", "Deep lugs and a rock plate for mountain trails.", "Ridgeline", "799.00", "", ""),
    ("running-shoes", "碳板竞速跑鞋 Carbon Racer Elite", "Full-length carbon plate for race day. 马拉松竞速。", "Swift", "1499.00", "", ""),
    ("running-shoes", "Daily Trainer 日常训练跑鞋", "Durable rubber outsole for 800 km and more.", "Stride", "459.00", "", ""),
    ("running-shoes", "女子缓震跑鞋 CloudStep Women's Running Shoes", "Soft foam midsole shaped for women's feet.", "CloudStep", "649.00", "", ""),
    ("running-shoes", "Barefoot Minimal Shoe 赤足跑鞋", "Zero drop, wide toe box, 4 mm sole.", "Stride", "529.00", "", ""),
    ("running-shoes", "儿童跑鞋 Junior Dash Kids Running Shoes", "Hook-and-loop straps, reflective heel.", "Stride", "299.00", "", ""),
    ("backpacks", "通勤双肩包 Metro 20L Backpack 灰色 Grey", "Padded 15-inch laptop sleeve and a hidden back pocket.", "Metro Gear", "329.00", "METRO20", "grey"),
    ("backpacks", "Metro 20L Commuter Backpack 藏青 Navy", "Padded 15-inch laptop sleeve and a hidden back pocket.", "Metro Gear", "329.00", "METRO20", "navy"),
    ("backpacks", "Hiking Pack 40L 登山包", "Adjustable back system, rain cover and hip-belt pockets.", "Ridgeline", "569.00", "", ""),
    ("backpacks", "防水卷口背包 Rolltop Waterproof Backpack", "Welded seams and a roll-top closure; cycling-ready.", "Drybag Co", "399.00", "", ""),
    ("backpacks", "Laptop Backpack 16\" 电脑双肩包", "Fits a 16-inch laptop, USB charging port, luggage strap.", "Metro Gear", "279.00", "", ""),
    ("backpacks", "儿童书包 Kids School Backpack", "Light, reflective and easy for small hands to open.", "Little Ears", "199.00", "", ""),
    ("backpacks", "Minimal Daypack 极简日用包", "A 15 L everyday bag in recycled nylon.", "Drybag Co", "229.00", "", ""),
    ("keyboards", "机械键盘 K87 Mechanical Keyboard 茶轴 Brown", "Tenkeyless, hot-swap sockets, tactile brown switches.", "Keyforge", "459.00", "K87", "brown"),
    ("keyboards", "K87 Mechanical Keyboard 红轴 Red Switch", "Tenkeyless, hot-swap sockets, linear red switches.", "Keyforge", "459.00", "K87", "red"),
    ("keyboards", "75% 无线机械键盘 Wireless 75% Keyboard", "Bluetooth, 2.4 GHz and USB-C; gasket mount.", "Keyforge", "699.00", "", ""),
    ("keyboards", "Low-Profile Keyboard 矮轴键盘", "Slim aluminium case, 17 mm tall, quiet switches.", "Flatkey", "549.00", "", ""),
    ("keyboards", "客制化键盘套件 Custom Keyboard Kit", "Barebone 65% kit: case, plate, PCB. Bring your own switches.", "Keyforge", "899.00", "", ""),
    ("keyboards", "PBT Keycap Set 键帽套装", "Dye-sublimated PBT, 139 keys, cherry profile.", "Flatkey", "189.00", "", ""),
    ("keyboards", "人体工学分体键盘 Ergonomic Split Keyboard", "Two halves, tenting feet, fully programmable.", "Splitwise", "1099.00", "", ""),
    ("keyboards", "Numpad 数字小键盘", "A 21-key mechanical number pad for spreadsheets.", "Flatkey", "159.00", "", ""),
    ("skincare", "温和洁面乳 Gentle Cleanser 150ml", "Low-pH foam cleanser for sensitive skin. 敏感肌适用。", "Pure Lotus", "98.00", "", ""),
    ("skincare", "Hyaluronic Serum 玻尿酸精华 30ml", "Three weights of hyaluronic acid for lasting moisture.", "Pure Lotus", "239.00", "", ""),
    ("skincare", "防晒霜 SPF50 Daily Sunscreen", "Light, no white cast, PA++++.", "Sunday", "129.00", "", ""),
    ("skincare", "Night Repair Cream 晚霜", "Ceramides and peptides that work while you sleep.", "Pure Lotus", "329.00", "", ""),
    ("skincare", "保湿面膜 Hydrating Sheet Masks (10 pcs)", "Cotton sheet masks soaked in a panthenol essence.", "Sunday", "119.00", "", ""),
    ("skincare", "Vitamin C Toner 维C爽肤水", "Brightening toner with stable vitamin C.", "Sunday", "159.00", "", ""),
    ("skincare", "润唇膏 Lip Balm Trio", "Unscented, honey and mint. 三支装。", "Pure Lotus", "59.00", "", ""),
    ("coffee", "云南小粒咖啡豆 Yunnan Arabica Beans 500g", "Medium roast from Pu'er: nutty, brown sugar, low acidity.", "Mountain Roast", "88.00", "", ""),
    ("coffee", "Yirgacheffe Beans 耶加雪菲 250g", "Light roast Ethiopian coffee with jasmine and lemon notes.", "Mountain Roast", "118.00", "", ""),
    ("coffee", "手冲咖啡壶 Pour-Over Kettle 600ml", "Gooseneck spout for a slow, even pour.", "Brewlab", "199.00", "", ""),
    ("coffee", "Hand Grinder 手摇磨豆机", "Steel burrs, 40 grind settings, fits in a travel bag.", "Brewlab", "329.00", "", ""),
    ("coffee", "冷萃咖啡 Cold Brew Concentrate (6 bottles)", "Steeped for 18 hours; mix one to one with milk or water.", "Mountain Roast", "79.00", "", ""),
    ("coffee", "Espresso Capsules 意式胶囊 (50)", "Dark roast capsules for common capsule machines.", "Brewlab", "149.00", "", ""),
    ("coffee", "挂耳咖啡 Drip Bag Coffee Sampler (20)", "Five origins in single-cup drip bags.", "Mountain Roast", "69.00", "", ""),
    ("lamps", "护眼台灯 Eye-Care LED Desk Lamp", "Flicker-free LED, five colour temperatures.", "Lumen", "269.00", "", ""),
    ("lamps", "Architect Desk Lamp 摇臂台灯 Black", "Spring-balanced arm that stays where you put it.", "Lumen", "359.00", "ARCH", "black"),
    ("lamps", "摇臂台灯 Architect Desk Lamp 白色 White", "Spring-balanced arm that stays where you put it.", "Lumen", "359.00", "ARCH", "white"),
    ("lamps", "Wireless Charging Lamp 无线充电台灯", "Charges your phone on the base while it lights the desk.", "Lumen", "329.00", "", ""),
    ("lamps", "木质床头灯 Walnut Bedside Lamp", "Solid walnut base and a linen shade. 暖光。", "Woodlight", "299.00", "", ""),
    ("lamps", "Clip-on Reading Light 夹子阅读灯", "Clips to a book or shelf; USB rechargeable.", "Woodlight", "89.00", "", ""),
    ("lamps", "氛围灯 Ambient Mood Light RGB", "Sixteen million colours, app and remote control.", "Lumen", "159.00", "", ""),
)

# Drawings centred in a 400x400 box; "F" is replaced by the object's colour, "B" by the background.
SHAPES = {
    "teapot": (
        '<ellipse cx="200" cy="215" rx="95" ry="72" fill="F"/>'
        '<rect x="165" y="128" width="70" height="22" rx="9" fill="F"/>'
        '<circle cx="200" cy="118" r="12" fill="F"/>'
        '<path d="M282 200 L345 148 L356 160 L300 236 Z" fill="F"/>'
        '<path d="M112 180 C55 180 55 255 118 250" fill="none" stroke="F" stroke-width="16"/>'
    ),
    "headphones": (
        '<path d="M112 235 V195 A88 88 0 0 1 288 195 V235" fill="none" stroke="F" stroke-width="18"/>'
        '<rect x="86" y="212" width="48" height="88" rx="18" fill="F"/>'
        '<rect x="266" y="212" width="48" height="88" rx="18" fill="F"/>'
    ),
    "shoe": (
        '<path d="M78 262 L92 168 Q128 172 152 204 L214 222 Q305 232 326 262 Z" fill="F"/>'
        '<rect x="70" y="258" width="264" height="26" rx="12" fill="F"/>'
        '<path d="M160 212 L178 196 M180 218 L198 202" stroke="B" stroke-width="7"/>'
    ),
    "backpack": (
        '<path d="M172 128 V104 Q200 80 228 104 V128" fill="none" stroke="F" stroke-width="13"/>'
        '<rect x="122" y="122" width="156" height="196" rx="36" fill="F"/>'
        '<rect x="148" y="226" width="104" height="62" rx="12" fill="#000" fill-opacity=".18"/>'
    ),
    "keyboard": (
        '<rect x="52" y="138" width="296" height="132" rx="16" fill="F"/>'
        '<path d="M76 170 H332 M76 202 H332 M76 234 H332" stroke="B" stroke-width="20" stroke-dasharray="24 8"/>'
        '<rect x="140" y="248" width="120" height="12" rx="4" fill="B"/>'
    ),
    "bottle": (
        '<rect x="168" y="96" width="64" height="26" rx="7" fill="F"/>'
        '<rect x="182" y="120" width="36" height="42" fill="F"/>'
        '<rect x="150" y="158" width="100" height="160" rx="24" fill="F"/>'
        '<rect x="168" y="204" width="64" height="64" rx="8" fill="#000" fill-opacity=".18"/>'
    ),
    "cup": (
        '<path d="M170 150 q-16 -22 0 -44 M200 150 q-16 -22 0 -44 M230 150 q-16 -22 0 -44" fill="none" '
        'stroke="F" stroke-width="8" stroke-linecap="round"/>'
        '<path d="M118 166 H282 L266 292 Q262 306 246 306 H154 Q138 306 134 292 Z" fill="F"/>'
        '<path d="M280 190 Q334 194 322 236 Q312 264 270 258" fill="none" stroke="F" stroke-width="15"/>'
        '<rect x="96" y="306" width="208" height="14" rx="7" fill="F"/>'
    ),
    "lamp": (
        '<circle cx="176" cy="214" r="52" fill="#fff" fill-opacity=".25"/>'
        '<rect x="130" y="300" width="130" height="18" rx="9" fill="F"/>'
        '<path d="M196 300 L250 210 L196 140" fill="none" stroke="F" stroke-width="12" stroke-linecap="round"/>'
        '<path d="M132 150 L206 106 L232 186 Z" fill="F"/>'
    ),
}

# The logo: a lotus and the store's Latin name (CJK fonts are not assumed).
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="220" height="48" viewBox="0 0 220 48" '
    'role="img" aria-label="Lotus &amp; Co.">'
    '<g fill="#d81b60">'
    '<path d="M24 6 C32 16 32 30 24 40 C16 30 16 16 24 6 Z"/>'
    '<path d="M6 18 C18 18 24 30 24 40 C12 38 6 30 6 18 Z" fill-opacity=".75"/>'
    '<path d="M42 18 C30 18 24 30 24 40 C36 38 42 30 42 18 Z" fill-opacity=".75"/>'
    "</g>"
    '<rect x="4" y="40" width="40" height="4" rx="2" fill="#2e7d6b"/>'
    '<text x="54" y="32" font-family="sans-serif" font-size="22" font-weight="bold" '
    'fill="#1f2933">Lotus &amp; Co.</text>'
    "</svg>\n"
)

CATALOG = ShopCatalog(
    advertiser=ADVERTISER, name=NAME, currency=CURRENCY, id_prefix="D", first_number=1001,
    store_path="/demo/store", images="demo/img", logo="demo/logo.svg", logo_svg=LOGO_SVG,
    categories=CATEGORIES, rows=ROWS, shapes=SHAPES, variant_colours=VARIANT_COLOURS,
    # Sold out in the demo, so the ad server's handling of unavailable products can be seen.
    out_of_stock=frozenset({"D1003", "D1020", "D1036", "D1055"}),
)


def demo_products(base_url: str) -> list[dict]:
    """The 60 products as feed rows, with links and pictures under ``base_url`` (the store's origin)."""
    return CATALOG.products(base_url)


def feed_json(base_url: str = FEED_BASE_URL) -> str:
    """The products as a pretty-printed JSON array, as an advertiser would upload them."""
    return json.dumps(demo_products(base_url), ensure_ascii=False, indent=2) + "\n"


def write_feed(path: Path = FEED_PATH, base_url: str = FEED_BASE_URL) -> Path:
    """Write the example feed (``feed.json``) used by the documentation and import tests."""
    path = Path(path)
    path.write_text(feed_json(base_url), encoding="utf-8")
    return path


def write_all(static: Path = STATIC_ROOT, feed: Path = FEED_PATH) -> list[Path]:
    """Regenerate every committed file of the store: the feed, the product pictures and the logo."""
    return [write_feed(feed), *CATALOG.write_files(static)]
