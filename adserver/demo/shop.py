"""What makes a demo store's catalog out of its data tables: product ids, feed rows, departments and pictures.

A demo store stands for an advertiser's own site, so it owns its products, as a shop would: its pages
read them from here, never from the ad server's catalog store. Each store is only data (a
:class:`ShopCatalog` in :mod:`adserver.demo.lotus` and :mod:`adserver.demo.outdoor`); this module
turns that data into Google-Merchant-style feed rows and into SVG pictures drawn in one style, so
the demo works offline and every ad has a real image to show. Everything is deterministic: the
committed pictures are what :meth:`ShopCatalog.write_files` writes, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STATIC_ROOT = Path(__file__).resolve().parent.parent / "static"

FEED_FIELDS = (
    "id", "title", "description", "link", "image_link", "price", "currency", "availability",
    "product_type", "brand", "item_group_id",
)

# A product of a data table: (category slug, title, description, brand, price, item_group_id,
# variant colour). The group and colour are empty for products that are not colour variants.
Row = tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True)
class Category:
    """A department of a demo store: its filter slug, names, feed path and picture style."""

    slug: str
    name: str
    name_zh: str
    product_type: str
    colour: str
    shape: str


@dataclass(frozen=True, eq=False)
class ShopCatalog:
    """One demo store's products and pictures, as data.

    Product ids are ``id_prefix`` followed by ``first_number``, ``first_number + 1``... in the order
    of ``rows``. ``store_path`` is where the store's pages are served (``/demo/store``); ``images``
    and ``logo`` are paths under the static folder. ``shapes`` maps a category's shape to SVG
    markup drawn in a 400x400 box, where ``"F"`` stands for the object's colour and ``"B"`` for the
    background; ``variant_colours`` colours the object of colour variants (others are white).
    """

    advertiser: str
    name: str
    currency: str
    id_prefix: str
    first_number: int
    store_path: str
    images: str
    logo: str
    logo_svg: str
    categories: tuple[Category, ...]
    rows: tuple[Row, ...]
    shapes: dict[str, str]
    variant_colours: dict[str, str]
    out_of_stock: frozenset[str] = field(default_factory=frozenset)

    def product_id(self, index: int) -> str:
        return f"{self.id_prefix}{self.first_number + index}"

    def products(self, base_url: str) -> list[dict]:
        """The store's products as feed rows, with links and pictures under ``base_url``.

        ``base_url`` is the origin the store is reached at, so links work wherever the demo runs.
        Every store writes the same fields, so one import path serves all demo advertisers.
        """
        base = base_url.rstrip("/")
        products = []
        for index, (slug, title, description, brand, price, group, _colour) in enumerate(self.rows):
            pid = self.product_id(index)
            products.append({
                "id": pid,
                "title": title,
                "description": description,
                "link": f"{base}{self.store_path}/p/{pid}",
                "image_link": f"{base}/static/{self.images}/{pid}.svg",
                "price": price,
                "currency": self.currency,
                "availability": "out of stock" if pid in self.out_of_stock else "in stock",
                "product_type": self.category_by_slug(slug).product_type,
                "brand": brand,
                "item_group_id": group,
            })
        return products

    def category_of(self, product: dict) -> Category:
        """The store department a feed row belongs to (from its ``product_type``)."""
        return next(c for c in self.categories if c.product_type == product["product_type"])

    def category_by_slug(self, slug: str) -> Category | None:
        """The department for a ``?cat=`` filter value, or None for an unknown one."""
        return next((c for c in self.categories if c.slug == slug), None)

    def product_svg(self, index: int) -> str:
        """The picture of the product at ``index``: its category's colour and object, and its id."""
        slug, _title, _desc, _brand, _price, _group, colour = self.rows[index]
        category = self.category_by_slug(slug)
        return picture_svg(category, self.shapes[category.shape], self.product_id(index),
                           self.variant_colours.get(colour, "#ffffff"))

    def write_files(self, static: Path = STATIC_ROOT) -> list[Path]:
        """Write the product pictures and the logo under the static folder ``static``."""
        folder = Path(static) / self.images
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for index in range(len(self.rows)):
            path = folder / f"{self.product_id(index)}.svg"
            path.write_text(self.product_svg(index), encoding="ascii")
            paths.append(path)
        logo = Path(static) / self.logo
        logo.parent.mkdir(parents=True, exist_ok=True)
        logo.write_text(self.logo_svg, encoding="ascii")
        return [*paths, logo]


_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" viewBox="0 0 400 400" '
    'role="img" aria-label="{label}">'
    '<rect width="400" height="400" fill="{bg}"/>'
    '<circle cx="200" cy="205" r="150" fill="#fff" fill-opacity=".12"/>'
    "{shape}"
    '<text x="200" y="52" font-family="sans-serif" font-size="20" letter-spacing="3" '
    'text-anchor="middle" fill="#fff" fill-opacity=".85">{category}</text>'
    '<text x="200" y="372" font-family="sans-serif" font-size="30" font-weight="bold" '
    'text-anchor="middle" fill="#fff">{pid}</text>'
    "</svg>\n"
)


def picture_svg(category: Category, shape: str, pid: str, fill: str = "#ffffff") -> str:
    """A product picture in the demo's style: the category's colour and name, the object, the id.

    ``shape`` is SVG markup drawn in a 400x400 box where ``"F"`` stands for the object's colour
    (``fill``) and ``"B"`` for the background (the category's colour). Only ASCII text and the
    generic sans-serif font, so it renders the same everywhere and needs nothing from the network.
    """
    shape = shape.replace('"F"', f'"{fill}"').replace('"B"', f'"{category.colour}"')
    return _SVG.format(
        label=f"{category.name} {pid}", bg=category.colour, shape=shape,
        category=category.name.upper(), pid=pid,
    )
