"""Feeds fetched from a store's URL, on a schedule, only when they changed.

``fetch-feed <advertiser> <url>`` is meant to run from a timer (``deploy/systemd/adserver-feed@.timer``
or cron). Each run sends back the ``ETag`` and ``Last-Modified`` of the copy last imported from that
URL (``If-None-Match``, ``If-Modified-Since``); a ``304 Not Modified`` imports nothing. The validators
are kept in ClickHouse (``feed_sources``), beside the catalog they describe and as durable as it, and
only once an import succeeded: a refused feed is fetched and checked again on the next run.

The download goes through :mod:`adserver.catalog.fetch` (public addresses only, redirects checked,
size and time bounded). The URL's own host is allowed because an operator typed it; redirects may
lead only to that host or to the advertiser's landing domains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from adserver.catalog.fetch import FetchError, fetch
from adserver.catalog.landing import url_host
from adserver.catalog.registry import get_advertiser
from adserver.catalog.upload import MAX_FEED_BYTES
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError, FeedError
from tracker.events import ADVERTISER_RE
from tracker.schema import FEED_SOURCES_COLUMNS
from tracker.stores import Stores

# The whole download, redirects included: a 50 MB feed over a slow link still fits.
FETCH_TIMEOUT = 300.0
_MAX_VALIDATOR = 512


@dataclass(frozen=True)
class Validators:
    """What identifies the copy of a feed last imported, as its server described it."""

    etag: str = ""
    last_modified: str = ""

    def headers(self) -> dict[str, str]:
        sent = {}
        if self.etag:
            sent["If-None-Match"] = self.etag
        if self.last_modified:
            sent["If-Modified-Since"] = self.last_modified
        return sent


@dataclass(frozen=True)
class FetchedFeed:
    url: str  # as asked for: the key of its validators
    status: int  # 200-299, or 304: not modified since the last import
    body: bytes
    fmt: str | None  # suggested by the content type; None: from the content
    validators: Validators

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _header_value(value: str | None) -> str:
    """A validator we may send back: printable ASCII of a sane length, else none (no header injection)."""
    value = (value or "").strip()
    if len(value) > _MAX_VALIDATOR or any(not " " <= c <= "~" for c in value):
        return ""
    return value


def load_validators(ch: ClickHouse, advertiser: str, url: str) -> Validators:
    rows = ch.execute("SELECT etag, last_modified FROM feed_sources FINAL WHERE advertiser = %(a)s AND url = %(u)s",
                      {"a": advertiser, "u": url})
    return Validators(*rows[0]) if rows else Validators()


def save_validators(ch: ClickHouse, advertiser: str, url: str, validators: Validators) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    ch.insert("feed_sources", FEED_SOURCES_COLUMNS,
              [(advertiser, url, validators.etag, validators.last_modified, now, time.time_ns())])


def fetch_feed(stores: Stores, advertiser: str, url: str, conditional: bool = True) -> FetchedFeed:
    """Download an advertiser's feed; with ``conditional``, a 304 when unchanged since the last import.

    Raises :class:`FeedError` (code of the fetch failure) or :class:`AdServerError` for an unknown
    advertiser; nothing is fetched for an advertiser that could not import it.
    """
    ch = stores.clickhouse()
    record = get_advertiser(ch, advertiser) if ADVERTISER_RE.match(advertiser or "") else None
    if record is None:
        raise AdServerError(f"unknown advertiser {advertiser[:64]!r}: create it with create-advertiser",
                            "unknown_advertiser")
    domains = tuple(record.domains)
    host = url_host(url)
    if host and host not in domains:
        domains += (host,)
    sent = load_validators(ch, advertiser, url).headers() if conditional else {}
    try:
        result = fetch(url, allowed_domains=domains, max_bytes=MAX_FEED_BYTES, timeout=FETCH_TIMEOUT,
                       allow_loopback=stores.settings.fetch_allow_loopback, headers=sent)
    except FetchError as exc:
        raise FeedError(f"could not fetch the feed: {exc}", exc.code) from None
    ctype = result.headers.get("content-type", "")
    fmt = "json" if "json" in ctype else "tsv" if "tab-separated" in ctype else None
    validators = Validators(_header_value(result.headers.get("etag")),
                            _header_value(result.headers.get("last-modified")))
    return FetchedFeed(url, result.status, result.body, fmt, validators)
