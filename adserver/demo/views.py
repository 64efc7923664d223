"""Routes of the demo store (the advertiser's site) and the demo microblog (the publisher's site).

The store pages stand for shops that installed our tag: they read each shop's own products from
:mod:`adserver.demo.catalog` (Lotus & Co., ``/demo/store``) or :mod:`adserver.demo.outdoor` (Trailhead
Outdoor, ``/demo/outdoor``, a second advertiser competing for the same ad slots), render them with the
same templates, and only talk to the ad server through ``/tag.js`` and ``/px.gif``, exactly as a real
advertiser's pages would. The microblog stands for a publisher: it only embeds the
``/ad`` iframe. The ad server's URLs are written as literal paths so this blueprint can be served
on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from adserver.demo import catalog, outdoor

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")


@dataclass(frozen=True)
class Shop:
    """What differs between the demo's store sites, so one set of store templates serves them all.

    ``views`` prefixes the endpoint names of the shop's ``store``, ``product`` and ``cart`` pages;
    ``neighbour`` is the other demo shop, linked from the footer so a visitor can browse both.
    """

    advertiser: str
    name: str
    name_zh: str
    logo: str
    accent: str
    views: str
    cart_key: str
    cart_script: str
    order_prefix: str
    headline: str
    blurb: str
    thanks_icon: str
    neighbour_name: str
    neighbour_views: str

    def view(self, page: str) -> str:
        """The endpoint name of one of the shop's pages, for ``url_for``."""
        return self.views + page


LOTUS = Shop(
    advertiser="demo", name="Lotus & Co.", name_zh="莲花良品", logo="demo/logo.svg", accent="#d81b60",
    views="demo.", cart_key="lotus-cart", cart_script="lotusCart", order_prefix="LC-",
    headline="好物，慢慢挑 · Good things, chosen slowly",
    blurb="Tea ware, audio, running, bags, keyboards, skincare, coffee and lamps.", thanks_icon="🪷",
    neighbour_name="山径户外 Trailhead Outdoor", neighbour_views="demo.outdoor_",
)
TRAILHEAD = Shop(
    advertiser=outdoor.ADVERTISER, name="Trailhead Outdoor", name_zh="山径户外", logo="demo/outdoor/logo.svg",
    accent="#e8590c", views="demo.outdoor_", cart_key="trailhead-cart", cart_script="trailheadCart",
    order_prefix="TH-", headline="山就在那里 · The trail starts here",
    blurb="Tents, hiking boots, headlamps, camping mugs, trekking poles and sleeping bags.", thanks_icon="🏕️",
    neighbour_name="莲花良品 Lotus & Co.", neighbour_views="demo.",
)


@bp.context_processor
def _default_shop() -> dict:
    """Store pages belong to the Lotus shop unless their view names another one."""
    return {"shop": LOTUS}

PLACEMENT = "demo-feed"
UTM_ORDER = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

# The microblog's timeline: (name, handle, minutes ago, text, replies, likes). Avatars are CSS.
FEED_POSTS = (
    ("林小雨", "xiaoyu_lin", 3, "周末去杭州喝了龙井，回来就想买一套好看的茶具 🍵", 12, 86),
    ("Marco Rossi", "marco_runs", 11, "Long run done: 28 km along the river. My shoes are falling apart, time for new ones.", 4, 41),
    ("陈程序员", "chen_codes", 26, "换了茶轴机械键盘，打字声音终于不吵到同事了。Brown switches FTW.", 31, 204),
    ("Aiko", "aiko_design", 48, "New desk setup: warm lamp, walnut tray, zero cables. 极简主义万岁。", 9, 153),
    ("王大厨", "chef_wang", 75, "Cold brew + oat milk + a pinch of salt. 试试看，真的好喝。", 22, 97),
    ("Sam Okafor", "samo", 122, "Anyone tried bone conduction headphones for cycling? I want to hear the traffic.", 17, 38),
    ("旅行的猫", "travelcat", 190, "20 升的背包装下了一周的行李。Packing list in the replies 👇", 45, 512),
    ("Lena K.", "lena_k", 305, "Sunscreen reminder: even in winter. 冬天也要防晒！", 6, 77),
)


def _products() -> list[dict]:
    """The store's own products, with links on the host the visitor used."""
    return catalog.demo_products(request.host_url.rstrip("/"))


def _categories() -> list[catalog.Category]:
    return list(catalog.CATEGORIES)


def _ago(minutes: int) -> str:
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h"


@bp.get("/")
def index() -> Response:
    """``/demo`` itself: the loop starts on the microblog, whose box explains the steps."""
    return redirect(url_for("demo.feed"))


@bp.get("/store")
def store() -> str:
    """The store's home page, or one department of it with ``?cat=<slug>``.

    The home page fires ``view_home``; a department fires ``view_list`` with the products shown,
    which tells the ad server what the shopper is browsing before any product page is opened.
    """
    products = _products()
    category = catalog.category_by_slug(request.args.get("cat", ""))
    if category is not None:
        products = [p for p in products if catalog.category_of(p) is category]
    return render_template(
        "demo/store.html",
        products=products,
        categories=_categories(),
        category=category,
        event="view_list" if category else "view_home",
        skus=",".join(p["id"] for p in products) if category else "",
    )


@bp.get("/store/p/<sku>")
def product(sku: str) -> tuple[str, int] | str:
    """A product page: fires ``view_item``; shows the UTM parameters an ad click brought along."""
    products = _products()
    item = next((p for p in products if p["id"] == sku), None)
    if item is None:
        return render_template("demo/not_found.html", categories=_categories(), category=None, sku=sku), 404
    category = catalog.category_of(item)
    related = [p for p in products if catalog.category_of(p) is category and p["id"] != sku][:4]
    group = item["item_group_id"]
    variants = [p for p in products if group and p["item_group_id"] == group and p["id"] != sku]
    utm = sorted(
        ((k, v) for k, v in request.args.items() if k.startswith("utm_") and v),
        key=lambda kv: (UTM_ORDER.index(kv[0]) if kv[0] in UTM_ORDER else len(UTM_ORDER), kv[0]),
    )
    return render_template(
        "demo/product.html",
        product=item,
        category=category,
        categories=_categories(),
        related=related,
        variants=variants,
        utm=utm,
    )


@bp.get("/store/cart")
def cart() -> str:
    """The cart: kept in the browser's localStorage by the store's own script.

    The page's script fires ``view_cart`` with the skus in the cart and ``purchase`` when the order
    is placed, as a shop's checkout would after its own order handling.
    """
    prices = [
        {"id": p["id"], "title": p["title"], "price": p["price"], "image": p["image_link"], "link": p["link"]}
        for p in _products()
    ]
    return render_template("demo/cart.html", categories=_categories(), category=None, catalog=prices)


@bp.get("/outdoor")
def outdoor_store() -> str:
    """The outdoor shop's home page, or one department with ``?cat=<slug>`` (``view_home`` / ``view_list``)."""
    products = outdoor.outdoor_products(request.host_url.rstrip("/"))
    category = outdoor.category_by_slug(request.args.get("cat", ""))
    if category is not None:
        products = [p for p in products if outdoor.category_of(p) is category]
    return render_template(
        "demo/store.html",
        shop=TRAILHEAD,
        products=products,
        categories=list(outdoor.CATEGORIES),
        category=category,
        event="view_list" if category else "view_home",
        skus=",".join(p["id"] for p in products) if category else "",
    )


@bp.get("/outdoor/p/<sku>")
def outdoor_product(sku: str) -> tuple[str, int] | str:
    """An outdoor product page: fires ``view_item`` for advertiser ``outdoor``; 404 for unknown skus."""
    products = outdoor.outdoor_products(request.host_url.rstrip("/"))
    categories = list(outdoor.CATEGORIES)
    item = next((p for p in products if p["id"] == sku), None)
    if item is None:
        return render_template("demo/not_found.html", shop=TRAILHEAD, categories=categories, category=None,
                               sku=sku), 404
    category = outdoor.category_of(item)
    group = item["item_group_id"]
    return render_template(
        "demo/product.html",
        shop=TRAILHEAD,
        product=item,
        category=category,
        categories=categories,
        related=[p for p in products if outdoor.category_of(p) is category and p["id"] != sku][:4],
        variants=[p for p in products if group and p["item_group_id"] == group and p["id"] != sku],
        utm=sorted(
            ((k, v) for k, v in request.args.items() if k.startswith("utm_") and v),
            key=lambda kv: (UTM_ORDER.index(kv[0]) if kv[0] in UTM_ORDER else len(UTM_ORDER), kv[0]),
        ),
    )


@bp.get("/outdoor/cart")
def outdoor_cart() -> str:
    """The outdoor shop's cart (its own localStorage key): ``view_cart`` on load, ``purchase`` on order."""
    prices = [
        {"id": p["id"], "title": p["title"], "price": p["price"], "image": p["image_link"], "link": p["link"]}
        for p in outdoor.outdoor_products(request.host_url.rstrip("/"))
    ]
    return render_template("demo/cart.html", shop=TRAILHEAD, categories=list(outdoor.CATEGORIES), category=None,
                           catalog=prices)


@bp.get("/feed")
def feed() -> str:
    """The microblog page with our ad in the sidebar and in the timeline."""
    posts = [
        {"name": n, "handle": h, "ago": _ago(m), "text": t, "replies": r, "likes": likes}
        for n, h, m, t, r, likes in FEED_POSTS
    ]
    return render_template("demo/feed.html", posts=posts, placement=PLACEMENT)


@bp.app_template_filter("demo_price")
def demo_price(price: str) -> str:
    """Show a feed price string ("1299.00") the way the store does ("¥1,299.00")."""
    return f"¥{float(price):,.2f}"
