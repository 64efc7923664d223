"""Product images resized for ad slots: the variants' bytes, and which variants each feed image has.

Variants are content-addressed (``hash`` is a digest of ``data``): the same picture in two feeds, or
at two sizes that come out identical, is stored once, and a URL ``/img/<hash>.<ext>`` never changes
meaning, so browsers and CDNs may keep it forever. The bytes are base64 text: both ClickHouse
backends (the native driver and chdb's JSON) carry text faithfully, not arbitrary bytes.
"""

from __future__ import annotations

IMAGE_VARIANTS_TABLE = """
CREATE TABLE IF NOT EXISTS image_variants (
    hash String,
    content_type String,
    width UInt16,
    height UInt16,
    data String,
    created DateTime
) ENGINE = ReplacingMergeTree(created)
ORDER BY hash
"""

IMAGE_VARIANTS_COLUMNS = ("hash", "content_type", "width", "height", "data", "created")

# One row per version of an advertiser's feed image (newest wins). ``status`` is ``ok`` or the code of
# the last failure (``error`` says more); ``variants`` is a JSON list of
# ``{"box", "w", "h", "webp", "jpeg"}`` (box: the square the variant fits in; webp/jpeg: hashes).
# ``etag``/``last_modified`` make the next refresh a conditional request.
PRODUCT_IMAGES_TABLE = """
CREATE TABLE IF NOT EXISTS product_images (
    advertiser String,
    image_url String,
    status String,
    error String,
    variants String,
    etag String,
    last_modified String,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (advertiser, image_url)
"""

PRODUCT_IMAGES_COLUMNS = ("advertiser", "image_url", "status", "error", "variants", "etag", "last_modified",
                          "version", "updated_at")
