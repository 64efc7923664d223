"""Routes of the demo stores (the advertisers' sites) and the demo microblog (the publisher's site).

The store pages stand for shops that installed our tag: each shop reads its own products from its
catalog (:mod:`adserver.demo.lotus`: Lotus & Co., ``/demo/store``; :mod:`adserver.demo.outdoor`:
Trailhead Outdoor, ``/demo/outdoor``, a second advertiser competing for the same ad slots), the same
templates render both, and they only talk to the ad server through ``/tag.js`` and ``/px.gif``,
exactly as a real advertiser's pages would. The microblog stands for a publisher: it only embeds the
``/ad`` iframe. The ad server's URLs are written as literal paths so this blueprint can be served
on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from adserver.demo import lotus, outdoor
from adserver.demo.shop import ShopCatalog

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")


@dataclass(frozen=True)
class Shop:
    """What differs between the demo's store sites, so one set of views and templates serves them all.

    ``catalog`` holds the shop's products and pictures, the other fields its look. ``views``
    prefixes the endpoint names of the shop's ``store``, ``product`` and ``cart`` pages; ``neighbour`` is the other demo shop, linked from the footer so a visitor can browse both.
    """

    catalog: ShopCatalog
    name: str
    name_zh: str
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

    @property
    def advertiser(self) -> str:
        return self.catalog.advertiser

    @property
    def logo(self) -> str:
        """The logo's path under the static folder."""
        return self.catalog.logo

    def view(self, page: str) -> str:
        """The endpoint name of one of the shop's pages, for ``url_for``."""
        return self.views + page


LOTUS = Shop(
    catalog=lotus.CATALOG, name="Lotus & Co.", name_zh="莲花良品", accent="#d81b60",
    views="demo.", cart_key="lotus-cart", cart_script="lotusCart", order_prefix="LC-",
    headline="好物，慢慢挑 · Good things, chosen slowly",
    blurb="Tea ware, audio, running, bags, keyboards, skincare, coffee and lamps.", thanks_icon="🪷",
    neighbour_name="山径户外 Trailhead Outdoor", neighbour_views="demo.outdoor_",
)
TRAILHEAD = Shop(
    catalog=outdoor.CATALOG, name="Trailhead Outdoor", name_zh="山径户外", accent="#e8590c",
    views="demo.outdoor_", cart_key="trailhead-cart", cart_script="trailheadCart", order_prefix="TH-",
    headline="山就在那里 · The trail starts here",
    blurb="Tents, hiking boots, headlamps, camping mugs, trekking poles and sleeping bags.", thanks_icon="🏕️",
    neighbour_name="莲花良品 Lotus & Co.", neighbour_views="demo.",
)

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


def _ago(minutes: int) -> str:
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h"


@bp.get("/")
def index() -> Response:
    """``/demo`` itself: the loop starts on the microblog, whose box explains the steps."""
    return redirect(url_for("demo.feed"))


def _products(shop: Shop) -> list[dict]:
    """The shop's own products, with links on the host the visitor used."""
    return shop.catalog.products(request.host_url.rstrip("/"))


def _store_page(shop: Shop) -> str:
    """A shop's home page, or one department of it with ``?cat=<slug>``.

    The home page fires ``view_home``; a department fires ``view_list`` with the products shown,
    which tells the ad server what the shopper is browsing before any product page is opened.
    """
    catalog = shop.catalog
    products = _products(shop)
    category = catalog.category_by_slug(request.args.get("cat", ""))
    if category is not None:
        products = [p for p in products if catalog.category_of(p) is category]
    return render_template(
        "demo/store.html",
        shop=shop,
        products=products,
        categories=list(catalog.categories),
        category=category,
        event="view_list" if category else "view_home",
        skus=",".join(p["id"] for p in products) if category else "",
    )


def _product_page(shop: Shop, sku: str) -> tuple[str, int] | str:
    """A product page: fires ``view_item``; shows the UTM parameters an ad click brought along.

    An unknown sku is a 404 page that reports nothing to the ad server.
    """
    catalog = shop.catalog
    products = _products(shop)
    categories = list(catalog.categories)
    item = next((p for p in products if p["id"] == sku), None)
    if item is None:
        return render_template("demo/not_found.html", shop=shop, categories=categories, category=None,
                               sku=sku), 404
    category = catalog.category_of(item)
    group = item["item_group_id"]
    return render_template(
        "demo/product.html",
        shop=shop,
        product=item,
        category=category,
        categories=categories,
        related=[p for p in products if catalog.category_of(p) is category and p["id"] != sku][:4],
        variants=[p for p in products if group and p["item_group_id"] == group and p["id"] != sku],
        utm=sorted(
            ((k, v) for k, v in request.args.items() if k.startswith("utm_") and v),
            key=lambda kv: (UTM_ORDER.index(kv[0]) if kv[0] in UTM_ORDER else len(UTM_ORDER), kv[0]),
        ),
    )


def _cart_page(shop: Shop) -> str:
    """The cart: kept in the browser's localStorage (one key per shop) by the shop's own script.

    The page's script fires ``view_cart`` with the skus in the cart and ``purchase`` when the order
    is placed, as a shop's checkout would after its own order handling.
    """
    prices = [
        {"id": p["id"], "title": p["title"], "price": p["price"], "image": p["image_link"], "link": p["link"]}
        for p in _products(shop)
    ]
    return render_template("demo/cart.html", shop=shop, categories=list(shop.catalog.categories), category=None,
                           catalog=prices)


def _serve(shop: Shop) -> None:
    """Route the shop's store, product and cart pages under its store path, named by ``shop.views``."""
    path = shop.catalog.store_path.removeprefix(bp.url_prefix)
    name = shop.views.removeprefix(f"{bp.name}.")
    bp.add_url_rule(path, name + "store", partial(_store_page, shop))
    bp.add_url_rule(f"{path}/p/<sku>", name + "product", partial(_product_page, shop))
    bp.add_url_rule(f"{path}/cart", name + "cart", partial(_cart_page, shop))


for _shop in (LOTUS, TRAILHEAD):
    _serve(_shop)


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
