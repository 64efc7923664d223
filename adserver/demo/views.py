"""Routes of the demo store (the advertiser's site) and the demo microblog (the publisher's site).

The store pages stand for a shop that installed our tag: they read the shop's own products from
:mod:`adserver.demo.catalog` and only talk to the ad server through ``/tag.js`` and ``/px.gif``,
exactly as a real advertiser's pages would. The microblog stands for a publisher: it only embeds the
``/ad`` iframe. The ad server's URLs are written as literal paths so this blueprint can be served
on its own.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from adserver.demo import catalog

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")

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
