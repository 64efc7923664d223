"""The ``campaigns`` table: what competes in the auction for a slot."""

from __future__ import annotations

# A campaign's price (CPC or CPM, in the exchange currency of the settings), daily budget, dates,
# audience rules, frequency caps and look. Versioned like the other registries: the newest version
# wins, a removed campaign gets ``deleted = 1``.
CAMPAIGNS_TABLE = """
CREATE TABLE IF NOT EXISTS campaigns (
    id String,
    advertiser String,
    name String,
    status String,
    start_date Date,
    end_date Date,
    pricing String,
    price Float64,
    daily_budget Float64,
    audience_days UInt16,
    exclude_buyers_days UInt16,
    cap_per_day UInt16,
    min_gap_seconds UInt32,
    logo_url String,
    brand_color String,
    text_color String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id
"""

CAMPAIGNS_COLUMNS = (
    "id", "advertiser", "name", "status", "start_date", "end_date", "pricing", "price", "daily_budget",
    "audience_days", "exclude_buyers_days", "cap_per_day", "min_gap_seconds", "logo_url", "brand_color",
    "text_color", "deleted", "version", "updated_at", "hide_days",
)

# Added by migration 15: days a reader's "not interested" in a product or store of the campaign lasts.
CAMPAIGNS_HIDE_DAYS_COLUMN = ("hide_days", "UInt16 DEFAULT 30")
