"""The demo: two store sites carrying the tracking tag and a microblog page carrying the ad.

Together they show the whole retargeting loop in one browser: look at products in a store, see
them in the ad on the microblog, click and land back on the product page.
"""

from adserver.demo.lotus import demo_products
from adserver.demo.outdoor import outdoor_products
from adserver.demo.views import bp

__all__ = ["bp", "demo_products", "outdoor_products"]
