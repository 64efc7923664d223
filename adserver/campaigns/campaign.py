"""Campaigns: what an advertiser buys, and the rules every ad decision checks before showing it.

A campaign carries its price (CPC or CPM, in the exchange currency of the settings, the one unit
every bid and floor is compared in), a daily budget paced through the advertiser's day, dates, the
audience it may reach (visitors who showed interest within ``audience_days``, minus recent buyers),
frequency caps, and how long a reader's "not interested" in one of its products or its store lasts
(``hide_days``). They live in ClickHouse, versioned like advertisers and placements, and every
process keeps a copy in memory (see ``registry.Registry``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from adserver.catalog.landing import url_problem
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.events import ADVERTISER_RE
from tracker.schema import CAMPAIGNS_COLUMNS

CAMPAIGN_RE = ADVERTISER_RE
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}\Z")
STATUSES = ("active", "paused")
PRICINGS = ("cpc", "cpm")
FAR_FUTURE = date(2105, 12, 31)  # the last day a ClickHouse Date holds on every version
MAX_PRICE = 1_000_000.0


@dataclass(frozen=True)
class Campaign:
    id: str
    advertiser: str
    name: str = ""
    status: str = "active"  # active | paused
    start_date: date = date(1970, 1, 2)
    end_date: date = FAR_FUTURE
    pricing: str = "cpc"  # cpc: price per click; cpm: price per thousand impressions
    price: float = 0.0
    daily_budget: float = 0.0  # 0: no budget limit
    audience_days: int = 30  # a visitor stays targetable this long after their last interest
    exclude_buyers_days: int = 0  # 0: buyers are not excluded (their bought products still are)
    cap_per_day: int = 0  # impressions per visitor and day; 0: no cap
    min_gap_seconds: int = 0  # between two impressions to the same visitor
    logo_url: str = ""
    brand_color: str = ""
    text_color: str = ""
    hide_days: int = 30  # a reader who answered "not interested" does not see the product (or store) this long

    def running_on(self, day: date) -> bool:
        """Active and within its dates on ``day`` (the advertiser's local date)."""
        return self.status == "active" and self.start_date <= day <= self.end_date

    def bid_per_impression(self, pctr: float) -> float:
        """Expected revenue of one impression: the eCPM divided by 1000."""
        return self.price * pctr if self.pricing == "cpc" else self.price / 1000.0

    def charge_per_impression(self) -> float:
        """What an impression itself costs (CPM); CPC campaigns are charged on the click."""
        return self.price / 1000.0 if self.pricing == "cpm" else 0.0


def _check(campaign: Campaign) -> None:
    problems = []
    if not CAMPAIGN_RE.match(campaign.id):
        problems.append("campaign id must be 1-64 lowercase letters, digits, '_' or '-'")
    if not ADVERTISER_RE.match(campaign.advertiser):
        problems.append("advertiser id must be 1-64 lowercase letters, digits, '_' or '-'")
    if campaign.status not in STATUSES:
        problems.append(f"status must be one of {', '.join(STATUSES)}")
    if campaign.pricing not in PRICINGS:
        problems.append(f"pricing must be one of {', '.join(PRICINGS)}")
    if not (0 < campaign.price <= MAX_PRICE):
        problems.append(f"price must be above 0 and at most {MAX_PRICE:,.0f}")
    if not (0 <= campaign.daily_budget <= 1e9):
        problems.append("daily budget must be between 0 (no limit) and 1e9")
    if campaign.end_date < campaign.start_date:
        problems.append("end date is before the start date")
    if not (1 <= campaign.audience_days <= 400):
        problems.append("audience days must be between 1 and 400")
    for name in ("exclude_buyers_days", "cap_per_day"):
        if not (0 <= getattr(campaign, name) <= 1000):
            problems.append(f"{name.replace('_', ' ')} must be between 0 and 1000")
    if not (0 <= campaign.min_gap_seconds <= 30 * 86400):
        problems.append("min gap must be between 0 and 30 days")
    if not (1 <= campaign.hide_days <= 365):
        problems.append("hide days must be between 1 and 365")
    for name in ("brand_color", "text_color"):
        value = getattr(campaign, name)
        if value and not COLOR_RE.match(value):
            problems.append(f"{name.replace('_', ' ')} must be a colour like #1a2b3c")
    if campaign.logo_url and (not campaign.logo_url.startswith(("https://", "http://", "/"))
                              or len(campaign.logo_url) > 2048 or any(c in campaign.logo_url for c in "\"'<> \\")):
        problems.append("logo url must be an http(s) URL or a path on this server, without quotes or spaces")
    elif campaign.logo_url.startswith("//"):
        problems.append("logo url must be an http(s) URL or a path on this server, not //host")
    elif campaign.logo_url.startswith(("https://", "http://")) and url_problem(campaign.logo_url):
        problems.append(f"logo url {url_problem(campaign.logo_url)}")
    if problems:
        raise AdServerError("; ".join(problems), "invalid_campaign")


def save_campaign(ch: ClickHouse, campaign: Campaign, deleted: bool = False) -> Campaign:
    """Validate and store a new version of the campaign."""
    _check(campaign)
    name = (campaign.name or campaign.id).strip()[:200]
    ch.insert("campaigns", CAMPAIGNS_COLUMNS, [(
        campaign.id, campaign.advertiser, name, campaign.status, campaign.start_date, campaign.end_date,
        campaign.pricing, float(campaign.price), float(campaign.daily_budget), campaign.audience_days,
        campaign.exclude_buyers_days, campaign.cap_per_day, campaign.min_gap_seconds, campaign.logo_url,
        campaign.brand_color, campaign.text_color, 1 if deleted else 0, time.time_ns(),
        datetime.now(UTC).replace(tzinfo=None), campaign.hide_days,
    )])
    return campaign


def load_campaigns(ch: ClickHouse) -> dict[str, Campaign]:
    """Every campaign not deleted, newest version of each."""
    rows = ch.execute(
        "SELECT " + ", ".join(CAMPAIGNS_COLUMNS[:16]) + ", hide_days FROM campaigns FINAL WHERE deleted = 0 ORDER BY id"
    )
    return {r[0]: Campaign(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]), float(r[8]), int(r[9]),
                           int(r[10]), int(r[11]), int(r[12]), r[13], r[14], r[15], int(r[16])) for r in rows}
