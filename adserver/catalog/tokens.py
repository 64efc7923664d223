"""Per-advertiser API tokens: created by the CLI, stored hashed, revocable, sent as Bearer tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime

from flask import Request

from tracker.clickhouse import ClickHouse
from tracker.schema import API_TOKENS_COLUMNS

TOKEN_PREFIX = "ads_"
_TOKEN = re.compile(r"^ads_[A-Za-z0-9_-]{43}\Z")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(ch: ClickHouse, advertiser: str, label: str = "") -> str:
    """A new random token for ``advertiser``; only its hash is stored, so it is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC).replace(tzinfo=None)
    ch.insert("api_tokens", API_TOKENS_COLUMNS, [(_hash(token), advertiser, label[:200], 0, time.time_ns(), now)])
    return token


def revoke_token(ch: ClickHouse, token: str) -> bool:
    advertiser = token_advertiser(ch, token)
    if advertiser is None:
        return False
    now = datetime.now(UTC).replace(tzinfo=None)
    ch.insert("api_tokens", API_TOKENS_COLUMNS, [(_hash(token), advertiser, "", 1, time.time_ns(), now)])
    return True


def token_advertiser(ch: ClickHouse, token: str) -> str | None:
    """The advertiser a valid, unrevoked token belongs to, else None."""
    if not token or not _TOKEN.match(token):
        return None
    rows = ch.execute(
        "SELECT advertiser, revoked FROM api_tokens FINAL WHERE token_hash = %(h)s", {"h": _hash(token)}
    )
    if not rows or rows[0][1]:
        return None
    return rows[0][0]


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
