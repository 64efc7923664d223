"""The ``events`` and ``bad_events`` tables: what the batch writer stores from the event stream."""

from __future__ import annotations

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

# Columns added to ``events`` by migration 5 (order of the writer's rows): the campaign that won,
# what it was charged, the predicted CTR and the interest the decision saw (the CTR model trains on
# them), and the invalid-traffic verdict (bots, prefetches, click floods).
EVENTS_V5_COLUMNS = (
    ("campaign", "String DEFAULT ''"),
    ("cost", "Float64 DEFAULT 0"),
    ("pctr", "Float64 DEFAULT 0"),
    ("interest_age", "UInt32 DEFAULT 0"),
    ("interest_views", "UInt16 DEFAULT 0"),
    ("invalid", "UInt8 DEFAULT 0"),
    ("invalid_reason", "String DEFAULT ''"),
)

# Added by migration 11: 1 for purchases a store sent with its API token (POST /api/v1/conversions),
# 0 for everything else, browser pixels included. Reports can count verified orders only. The batch
# writer never writes it (it is not in ``EVENTS_COLUMNS``), so nothing from the event stream can
# claim to be verified.
EVENTS_VERIFIED_COLUMN = ("verified", "UInt8 DEFAULT 0")

# Added by migration 14: the visitor's IAB TCF consent as the request stated it (tracker/consent.py).
# 0: GDPR does not apply (no ``gdpr=1``); 1: it applies and the consent string allows what the event
# needed (an ad: personalised ads; a store event: a profile); 2: it applies without that consent (the
# ad was chosen without personal data; store events are not recorded then). Reports count the consent
# share of impressions from it.
EVENTS_CONSENT_COLUMN = ("consent", "UInt8 DEFAULT 0")

EVENTS_COLUMNS = (
    "ts", "advertiser", "event", "uid", "sku", "skus", "reasons", "order_id", "value", "currency",
    "placement", "impression_id", "size", "addressable", "device", "url", "ref", "stream_id",
    "campaign", "cost", "pctr", "interest_age", "interest_views", "invalid", "invalid_reason", "consent",
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
