"""Advertisers and placements: who may send events, and which publisher slots exist.

Both live in ClickHouse (the durable store) and are cached in each process; the pixel and the ad
check them in memory. If the database cannot be reached, the last copy keeps being used, and a
process that never loaded one does not reject traffic because of our own outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adserver.campaigns.campaign import Campaign, load_campaigns
from adserver.catalog.landing import check_domain
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.events import ADVERTISER_RE, CURRENCIES, PLACEMENT_RE
from tracker.schema import (
    ADVERTISERS_COLUMNS,
    ADVERTISERS_DOMAINS_COLUMN,
    ADVERTISERS_TIMEZONE_COLUMN,
    PLACEMENTS_COLUMNS,
    PLACEMENTS_FLOOR_COLUMN,
)

# Names of report pages under /reports/: an advertiser with one of them could not reach its dashboard.
RESERVED_ADVERTISER_IDS = frozenset({"campaigns", "login", "logout", "openapi-json", "static", "api"})


@dataclass(frozen=True)
class Advertiser:
    id: str
    name: str
    currency: str
    timezone: str = "UTC"  # IANA name: reports' days and hours are the advertiser's
    domains: tuple[str, ...] = ()  # landing domains: product links must be on one of them or a subdomain


@dataclass(frozen=True)
class Placement:
    id: str
    site: str
    sizes: tuple[str, ...] = ()
    advertisers: tuple[str, ...] = field(default_factory=tuple)
    floor: float = 0.0  # lowest eCPM (exchange currency per thousand impressions) the slot accepts


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def check_timezone(timezone: str) -> str:
    """An IANA time zone name such as ``Asia/Shanghai``, or :class:`AdServerError`."""
    try:
        if not timezone or timezone != timezone.strip() or ".." in timezone:
            raise ValueError(timezone)
        ZoneInfo(timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise AdServerError(f"unknown time zone {timezone!r} (use an IANA name like Asia/Shanghai)",
                            "invalid_timezone") from None
    return timezone


def save_advertiser(ch: ClickHouse, advertiser_id: str, name: str = "", currency: str = "CNY",
                    timezone: str = "UTC", domains: Iterable[str] | None = None) -> Advertiser:
    """Store (a new version of) the advertiser. ``domains`` replaces its landing domains; None keeps
    those it has, so that updating its name or time zone cannot drop them."""
    if not ADVERTISER_RE.match(advertiser_id):
        raise AdServerError("advertiser id must be 1-64 lowercase letters, digits, '_' or '-'", "invalid_advertiser")
    if advertiser_id in RESERVED_ADVERTISER_IDS:
        raise AdServerError(f"advertiser id {advertiser_id!r} is reserved (it names a page of the reports)",
                            "invalid_advertiser")
    if currency not in CURRENCIES:
        raise AdServerError(f"unknown currency {currency!r}", "invalid_currency")
    check_timezone(timezone)
    if domains is None:
        current = get_advertiser(ch, advertiser_id)
        domains = current.domains if current else ()
    checked = tuple(sorted({check_domain(d) for d in domains}))
    name = (name or advertiser_id).strip()[:200]
    ch.insert("advertisers", (*ADVERTISERS_COLUMNS, ADVERTISERS_TIMEZONE_COLUMN, ADVERTISERS_DOMAINS_COLUMN),
              [(advertiser_id, name, currency, 0, time.time_ns(), _now(), timezone, list(checked))])
    return Advertiser(advertiser_id, name, currency, timezone, checked)


def get_advertiser(ch: ClickHouse, advertiser_id: str) -> Advertiser | None:
    rows = ch.execute("SELECT id, name, currency, timezone, domains FROM advertisers FINAL "
                      "WHERE id = %(a)s AND deleted = 0", {"a": advertiser_id})
    return Advertiser(*rows[0][:4], tuple(rows[0][4])) if rows else None


def save_placement(ch: ClickHouse, placement_id: str, site: str, sizes=(), advertisers=(),
                   floor: float = 0.0) -> Placement:
    if not PLACEMENT_RE.match(placement_id):
        raise AdServerError("placement id must be 1-64 lowercase letters, digits, '_' or '-'", "invalid_placement")
    bad = [a for a in advertisers if not ADVERTISER_RE.match(a)]
    if bad:
        raise AdServerError(f"invalid advertiser ids: {bad}", "invalid_advertiser")
    if not (0 <= floor <= 1_000_000) or floor != floor:
        raise AdServerError("floor must be between 0 and 1,000,000 (eCPM)", "invalid_floor")
    placement = Placement(placement_id, site.strip()[:200], tuple(sizes), tuple(advertisers), float(floor))
    ch.insert("placements", (*PLACEMENTS_COLUMNS, PLACEMENTS_FLOOR_COLUMN), [
        (placement.id, placement.site, list(placement.sizes), list(placement.advertisers), 0, time.time_ns(), _now(),
         placement.floor)
    ])
    return placement


class Registry:
    """The in-process copy of advertisers and placements, reloaded every ``ttl`` seconds."""

    def __init__(self, ch_factory, ttl: float = 30.0) -> None:
        self._ch = ch_factory
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._loaded = False
        self._healthy = True
        self._refreshing: threading.Thread | None = None
        self.advertisers: dict[str, Advertiser] = {}
        self.placements: dict[str, Placement] = {}
        self.campaigns: dict[str, Campaign] = {}
        self._by_advertiser: dict[str, tuple[Campaign, ...]] = {}

    def _load(self) -> None:
        """Read both tables; on failure keep the last copy (and remember the database is away)."""
        with self._lock:
            self._loaded_at = time.monotonic()
            try:
                ch = self._ch()
                advertisers = {
                    r[0]: Advertiser(r[0], r[1], r[2], r[3], tuple(r[4]))
                    for r in ch.execute(
                        "SELECT id, name, currency, timezone, domains FROM advertisers FINAL WHERE deleted = 0 "
                        "ORDER BY id"
                    )
                }
                placements = {
                    r[0]: Placement(r[0], r[1], tuple(r[2]), tuple(r[3]), float(r[4]))
                    for r in ch.execute(
                        "SELECT id, site, sizes, advertisers, floor FROM placements FINAL WHERE deleted = 0 ORDER BY id"
                    )
                }
                campaigns = load_campaigns(ch)
            except Exception:  # noqa: BLE001 - keep the last copy while the database is away
                self._healthy = False
                return
            by_advertiser: dict[str, list[Campaign]] = {}
            for campaign in campaigns.values():
                by_advertiser.setdefault(campaign.advertiser, []).append(campaign)
            self.advertisers, self.placements, self.campaigns = advertisers, placements, campaigns
            self._by_advertiser = {a: tuple(c) for a, c in by_advertiser.items()}
            self._loaded = self._healthy = True

    def _refresh(self) -> None:
        """Reload when stale. Only the very first load waits; later ones run in the background, so a
        request never waits for ClickHouse (which may be down) once the registry is known."""
        fresh = time.monotonic() - self._loaded_at < self.ttl
        if not self._loaded:
            if not fresh:
                self._load()
            else:
                with self._lock:  # another thread's first load is under way: use its result, not nothing
                    pass
            return
        if fresh:
            return
        with self._lock:
            if self._refreshing is not None and self._refreshing.is_alive():
                return
            self._loaded_at = time.monotonic()  # one background attempt per ttl
            self._refreshing = threading.Thread(target=self._load, name="registry-refresh", daemon=True)
            self._refreshing.start()

    def reload(self) -> None:
        self._load()

    def known_advertiser(self, advertiser_id: str) -> bool:
        """True if registered, or if the registry could never be loaded (do not drop real traffic)."""
        self._refresh()
        if advertiser_id in self.advertisers or not self._loaded:
            return True
        # A store registered a moment ago in another process: look again now, at most once per second,
        # and only while the database answers (otherwise this would stall the pixel).
        if self._healthy and time.monotonic() - self._loaded_at > 1.0:
            self._load()
        return advertiser_id in self.advertisers

    def landing_domains(self, advertiser_id: str, look_again: bool = False) -> tuple[str, ...] | None:
        """The advertiser's landing domains (none for an unknown one); None while nothing could be loaded.

        ``look_again`` reads the database now if this copy is over a second old and the database
        answers: a domain declared a moment ago in another process (at most one look per second).
        """
        self._refresh()
        if look_again and self._loaded and self._healthy and time.monotonic() - self._loaded_at > 1.0:
            self._load()
        if not self._loaded:
            return None
        advertiser = self.advertisers.get(advertiser_id)
        return advertiser.domains if advertiser else ()

    def placement(self, placement_id: str) -> Placement | None:
        self._refresh()
        placement = self.placements.get(placement_id)
        if placement is None and self._loaded and self._healthy and time.monotonic() - self._loaded_at > 1.0:
            self._load()  # registered a moment ago in another process (at most one look per second)
            placement = self.placements.get(placement_id)
        return placement

    @property
    def loaded(self) -> bool:
        """False until ClickHouse answered once: then nothing can be called unknown."""
        self._refresh()
        return self._loaded

    def campaigns_of(self, advertiser_id: str) -> tuple[Campaign, ...]:
        """The advertiser's campaigns (running or not: the auction says why one is not)."""
        return self._by_advertiser.get(advertiser_id, ())

    def timezone_of(self, advertiser_id: str) -> str:
        advertiser = self.advertisers.get(advertiser_id)
        return advertiser.timezone if advertiser else "UTC"

    def advertiser_ids(self) -> list[str]:
        self._refresh()
        return sorted(self.advertisers)
