"""ClickHouse schema: named DDL constants and the ordered, idempotent migrations that apply them.

Every statement runs on ClickHouse 18.16 (Debian's server) and on current ClickHouse (chdb): no
TTL clause (old partitions are dropped instead), no LowCardinality, no DateTime64, the explicit
``MergeTree() PARTITION BY ... ORDER BY ...`` form. Each statement is ``IF NOT EXISTS`` so a
migration interrupted half-way can simply run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.clickhouse import ClickHouse

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version
"""

# Raw events: the source of truth for reports and training. Impressions and clicks are events too.
# ``skus``/``reasons`` hold every product of a hit (a purchase of several products, the products of
# an ad unit); ``sku`` is the first of them, for simple per-product filters. ``stream_id`` is the
# Redis stream entry the row came from, so a writer recovering from a crash can tell what is stored.
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    ts DateTime,
    date Date DEFAULT toDate(ts),
    advertiser String,
    event String,
    uid String,
    sku String,
    skus Array(String),
    reasons Array(String),
    order_id String,
    value Float64,
    currency String,
    placement String,
    impression_id String,
    size String,
    addressable UInt8,
    device String,
    url String,
    ref String,
    stream_id String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (advertiser, event, ts)
"""

EVENTS_COLUMNS = (
    "ts", "advertiser", "event", "uid", "sku", "skus", "reasons", "order_id", "value", "currency",
    "placement", "impression_id", "size", "addressable", "device", "url", "ref", "stream_id",
)

# Invalid hits are kept with the raw request and every reason found, for integrators to debug.
BAD_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS bad_events (
    ts DateTime,
    date Date DEFAULT toDate(ts),
    advertiser String,
    event String,
    uid String,
    reason String,
    errors Array(String),
    raw String,
    stream_id String,
    inserted_at DateTime DEFAULT now()
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (advertiser, ts)
"""

BAD_EVENTS_COLUMNS = ("ts", "advertiser", "event", "uid", "reason", "errors", "raw", "stream_id")

# The catalog: one row per product version; the newest version wins (read with FINAL / argMax).
# A product removed from a feed gets a new version with ``deleted = 1``.
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


# API tokens of advertisers (feed uploads, reports). Only a SHA-256 of the token is stored: tokens
# are 256-bit random strings, so a fast hash is enough (a slow KDF is for human passwords).
API_TOKENS_TABLE = """
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash String,
    advertiser String,
    label String,
    revoked UInt8,
    version UInt64,
    created_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash
"""

API_TOKENS_COLUMNS = ("token_hash", "advertiser", "label", "revoked", "version", "created_at")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events and bad_events", (EVENTS_TABLE, BAD_EVENTS_TABLE)),
    Migration(2, "catalog, advertisers, placements", (PRODUCTS_TABLE, ADVERTISERS_TABLE, PLACEMENTS_TABLE)),
    Migration(3, "api tokens", (API_TOKENS_TABLE,)),
)

TABLES = ("events", "bad_events", "products", "advertisers", "placements", "api_tokens")


def applied_versions(ch: ClickHouse) -> set[int]:
    ch.execute(MIGRATIONS_TABLE)
    return {row[0] for row in ch.execute("SELECT version FROM schema_migrations")}


def migrate(ch: ClickHouse) -> list[Migration]:
    """Apply the migrations not applied yet, in order; returns those it applied."""
    done = applied_versions(ch)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        log.info("applying migration %d: %s", migration.version, migration.name)
        for statement in migration.statements:
            ch.execute(statement)
        ch.insert(
            "schema_migrations",
            ("version", "name", "applied_at"),
            [(migration.version, migration.name, datetime.now(UTC).replace(tzinfo=None))],
        )
        applied.append(migration)
    return applied
