"""Who may see and change what, and what advertisers pay: API tokens, marketer accounts, prices."""

from __future__ import annotations

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

# Marketer accounts: a user signs in with an e-mail and a password (scrypt hash, see
# adserver/console/accounts.py) and sees the advertisers they are a member of.
USERS_TABLE = """
CREATE TABLE IF NOT EXISTS users (
    email String,
    password_hash String,
    disabled UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY email
"""

USERS_COLUMNS = ("email", "password_hash", "disabled", "version", "updated_at")

# Each marketer's session generation: a session carries the generation current when it began and is
# valid only while it still is (adserver/console/auth.py); signing out or a new password writes a
# larger one. Only ever inserted, never rewritten: the current generation is the largest, so a bump
# cannot undo another change of the user's row (a password, ``disabled``) written at the same time.
SESSION_GENERATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS session_generations (
    email String,
    generation UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(generation)
ORDER BY email
"""

SESSION_GENERATIONS_COLUMNS = ("email", "generation", "updated_at")

MEMBERSHIPS_TABLE = """
CREATE TABLE IF NOT EXISTS memberships (
    email String,
    advertiser String,
    deleted UInt8,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY (email, advertiser)
"""

MEMBERSHIPS_COLUMNS = ("email", "advertiser", "deleted", "version", "updated_at")

# What an advertiser pays: ``model`` 'cpc' (per click) or 'cpm' (per 1000 impressions), in the
# advertiser's currency; '' means no price (reports then show no cost and no ROAS).
PRICES_TABLE = """
CREATE TABLE IF NOT EXISTS advertiser_prices (
    advertiser String,
    model String,
    amount Float64,
    version UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY advertiser
"""

PRICES_COLUMNS = ("advertiser", "model", "amount", "version", "updated_at")
