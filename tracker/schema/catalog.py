"""The registries of what is advertised and where: products, advertisers, placements.

Each is versioned: one row per version of an entry, the newest wins (read with FINAL / argMax),
and a removed entry gets a new version with ``deleted = 1``.
"""

from __future__ import annotations

# The catalog: one row per product version. A product removed from a feed gets a new version with
# ``deleted = 1``.
PRODUCTS_TABLE = """
CREATE TABLE IF NOT EXISTS products (
    advertiser String,
    sku String,
    title String,
    description String,
    link String,
    image_link String,
    price Float64,
    sale_price Float64,
    currency String,
    availability String,
    product_type String,
    brand String,
    item_group_id String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (advertiser, sku)
"""

PRODUCTS_COLUMNS = (
    "advertiser", "sku", "title", "description", "link", "image_link", "price", "sale_price",
    "currency", "availability", "product_type", "brand", "item_group_id", "deleted", "version",
    "updated_at",
)

ADVERTISERS_TABLE = """
CREATE TABLE IF NOT EXISTS advertisers (
    id String,
    name String,
    currency String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

ADVERTISERS_COLUMNS = ("id", "name", "currency", "deleted", "version", "updated_at")

# Each advertiser's time zone (IANA name), for day and hour breakdowns in reports. Added by
# migration 4 with ``AddColumn``, which checks ``system.columns`` first: ClickHouse 18.16 has no
# ``ADD COLUMN IF NOT EXISTS``.
ADVERTISERS_TIMEZONE_COLUMN = "timezone"

# Each advertiser's landing domains (lowercase host names or IP addresses, sorted): product links must
# be on one of them or a subdomain. Added by migration 10; empty for advertisers created before it.
ADVERTISERS_DOMAINS_COLUMN = "domains"

# Publishers' ad slots. ``advertisers`` lists whose non-personalised ads the slot shows when the
# visitor has no usable interest (house ads); empty means any advertiser.
PLACEMENTS_TABLE = """
CREATE TABLE IF NOT EXISTS placements (
    id String,
    site String,
    sizes Array(String),
    advertisers Array(String),
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

PLACEMENTS_COLUMNS = ("id", "site", "sizes", "advertisers", "deleted", "version", "updated_at")

# The lowest price a placement sells for in the auction (added by migration 5).
PLACEMENTS_FLOOR_COLUMN = "floor"

# Feed URLs fetched on a schedule (``fetch-feed``): the validators of the copy last imported, sent back
# as If-None-Match / If-Modified-Since so an unchanged feed is neither downloaded nor imported again.
FEED_SOURCES_TABLE = """
CREATE TABLE IF NOT EXISTS feed_sources (
    advertiser String,
    url String,
    etag String,
    last_modified String,
    imported_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (advertiser, url)
"""

FEED_SOURCES_COLUMNS = ("advertiser", "url", "etag", "last_modified", "imported_at", "version")
