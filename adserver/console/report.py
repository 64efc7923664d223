"""A report: parameters in, rows and totals with every metric out.

Metrics (docs/reports.md): impressions, clicks, CTR, negative feedback (readers' "not interested"
answers, and their rate: hides / impressions; not per reason), unique visitors reached, addressable share,
conversions (post-click + post-view) and revenue attributed with the request's windows (of every
order, or of verified orders only: those the store sent through the conversion API), spend
(what campaigns were charged), cost and ROAS. Cost is the spend when the advertiser buys through
campaigns (``cost_basis = "charged"``), else estimated from the price set with ``set-price``
(``"price"``), else unknown. Conversions are attributed to placements, products and reasons, not
to campaigns (touches do not carry their campaign), so campaign rows have none. Impressions, clicks and everything derived from them count
valid traffic only; invalid impressions and clicks (bots, prefetches, link previewers, click
floods: adserver/tracking/traffic.py) and their share of all traffic are reported apart. So is consent under
GDPR (IAB TCF): the impressions whose request said GDPR applies, and the share of those whose consent string
allowed personalised ads. Day and hour keys are in the advertiser's time zone; every
day (or hour) of the range gets a row, even without traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from adserver.console import attribution, queries
from adserver.console.prices import Price
from tracker.clickhouse import ClickHouse

GROUPS = ("day", "hour", "placement", "sku", "reason", "campaign")
NO_ATTRIBUTION = frozenset({"campaign"})  # breakdowns whose rows carry no conversions
DEFAULT_CLICK_WINDOW = 30 * 86400
DEFAULT_VIEW_WINDOW = 86400
MAX_WINDOW = 90 * 86400
MAX_DAYS = 731
MAX_HOUR_DAYS = 92

# Columns of a row, in display / CSV order: (name, label).
COLUMNS = (
    ("impressions", "Impressions"),
    ("clicks", "Clicks"),
    ("ctr", "CTR"),
    ("hides", "Not interested"),
    ("hide_rate", "Negative feedback rate"),
    ("visitors", "Visitors reached"),
    ("addressable_share", "Addressable share"),
    ("conversions", "Conversions"),
    ("post_click_conversions", "Post-click"),
    ("post_view_conversions", "Post-view"),
    ("revenue", "Revenue"),
    ("spend", "Spend"),
    ("cost", "Cost"),
    ("roas", "ROAS"),
)
METRICS = tuple(name for name, _ in COLUMNS)
# Invalid traffic, shown apart from the table (after the columns above in CSV and JSON). Counted
# for ads (totals, days, hours, placements); null for products and reasons.
INVALID_COLUMNS = (
    ("invalid_impressions", "Invalid impressions"),
    ("invalid_impression_share", "Invalid impression share"),
    ("invalid_clicks", "Invalid clicks"),
    ("invalid_click_share", "Invalid click share"),
)
INVALID_METRICS = tuple(name for name, _ in INVALID_COLUMNS)
# Consent under GDPR (after the invalid traffic in CSV and JSON), for ads; null for products and reasons.
CONSENT_COLUMNS = (
    ("gdpr_impressions", "GDPR impressions"),
    ("consent_share", "Consent share"),
)
CONSENT_METRICS = tuple(name for name, _ in CONSENT_COLUMNS)


@dataclass(frozen=True)
class ReportRequest:
    advertiser: str
    start: date  # first day, in the advertiser's time zone
    end: date  # last day, inclusive
    group_by: str = "day"
    timezone: str = "UTC"
    click_window: int = DEFAULT_CLICK_WINDOW  # seconds
    view_window: int = DEFAULT_VIEW_WINDOW  # seconds
    verified_only: bool = False  # conversions: only orders the store sent through the conversion API

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[int, int]:
        """``[start, end)`` in unix seconds: local midnights, floored to whole UTC hours.

        The pre-aggregated tables hold UTC hours, so a zone with a non-whole-hour offset (India,
        Nepal, ...) has its days start at the UTC hour boundary just before local midnight.
        """
        zone = ZoneInfo(self.timezone)
        start = datetime.combine(self.start, datetime.min.time(), zone).timestamp()
        end = datetime.combine(self.end + timedelta(days=1), datetime.min.time(), zone).timestamp()
        return int(start) // 3600 * 3600, int(end) // 3600 * 3600

    def previous(self) -> ReportRequest:
        """The period of the same length just before this one."""
        length = timedelta(days=self.days)
        return replace(self, start=self.start - length, end=self.end - length)


@dataclass
class Row:
    key: str
    impressions: int = 0
    clicks: int = 0
    visitors: int | None = None
    addressable: int = 0
    share: float = 0.0
    conversions: int | None = 0  # None: not attributed for this breakdown (campaigns)
    post_click_conversions: int | None = 0
    post_view_conversions: int | None = 0
    revenue: float | None = 0.0
    spend: float | None = 0.0  # charged to campaigns; None: not known per product or reason
    cost: float | None = None
    invalid_impressions: int | None = 0
    invalid_clicks: int | None = 0
    gdpr_impressions: int | None = 0  # impressions where GDPR applied; None: not counted (products, reasons)
    consented_impressions: int | None = 0  # of those, with consent to personalised ads
    hides: int | None = 0  # "not interested" answers; None: not counted per reason

    @property
    def hide_rate(self) -> float | None:
        """Negative feedback: "not interested" answers / impressions."""
        return self.hides / self.impressions if self.impressions and self.hides is not None else None

    @property
    def consent_share(self) -> float | None:
        """Impressions with consent / impressions where GDPR applied (none where it never applied)."""
        if not self.gdpr_impressions or self.consented_impressions is None:
            return None
        return self.consented_impressions / self.gdpr_impressions

    @property
    def invalid_impression_share(self) -> float | None:
        """Invalid impressions / all impressions (valid + invalid)."""
        return _share(self.invalid_impressions, self.impressions)

    @property
    def invalid_click_share(self) -> float | None:
        return _share(self.invalid_clicks, self.clicks)

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def addressable_share(self) -> float | None:
        return self.addressable / self.impressions if self.impressions else None

    @property
    def roas(self) -> float | None:
        return self.revenue / self.cost if self.cost and self.revenue is not None else None

    def value(self, name: str):
        return self.key if name == "key" else getattr(self, name)

    def as_dict(self) -> dict:
        out = {"key": self.key}
        for name in METRICS + INVALID_METRICS + CONSENT_METRICS:
            value = getattr(self, name)
            out[name] = round(value, 6) if isinstance(value, float) else value
        return out


@dataclass
class Report:
    request: ReportRequest
    rows: list[Row]
    totals: Row
    price: Price | None = None
    product_level: bool = False
    cost_basis: str | None = None  # "charged" (campaign spend), "price" (set-price) or None (no cost)
    previous: Report | None = field(default=None, repr=False)


def _share(invalid: int | None, valid: int) -> float | None:
    if invalid is None or not invalid + valid:
        return None
    return invalid / (invalid + valid)


def _cost(price: Price | None, clicks: int, impressions: float) -> float | None:
    if price is None:
        return None
    if price.model == "cpc":
        return round(clicks * price.amount, 6)
    return round(impressions * price.amount / 1000.0, 6)


def _keys(request: ReportRequest, start: int, end: int) -> list[str]:
    """Every day or hour of the range, as the queries spell them."""
    if request.group_by == "day":
        return [(request.start + timedelta(days=i)).isoformat() for i in range(request.days)]
    if request.group_by == "hour":
        zone = ZoneInfo(request.timezone)
        keys = (datetime.fromtimestamp(t, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
                for t in range(start, end, 3600))
        return list(dict.fromkeys(keys))  # a repeated hour (end of summer time) is one key, as in SQL
    return []


def has_campaigns(ch: ClickHouse, advertiser: str) -> bool:
    """Whether the advertiser ever had a campaign (any version, removed ones too): then what its
    campaigns were charged is its cost, in every period, rather than an estimate from a price."""
    return bool(ch.execute("SELECT count() FROM campaigns WHERE advertiser = %(a)s", {"a": advertiser})[0][0])


def cost_basis(spend: float | None, campaigns: bool, price: Price | None) -> str | None:
    """``charged`` when the advertiser buys through campaigns (or was charged anything in the
    period), else ``price`` when a price is set, else None."""
    if campaigns or (spend or 0) > 0:
        return "charged"
    return "price" if price is not None else None


def run_report(ch: ClickHouse, request: ReportRequest, price: Price | None = None, source: str = "agg",
               with_rows: bool = True, campaigns: bool | None = None) -> Report:
    """Rows (``group_by``) and totals. ``with_rows=False`` computes the totals only. ``campaigns``:
    whether the advertiser buys through campaigns (looked up when not given)."""
    start, end = request.bounds()
    args = (ch, request.advertiser, start, end)
    total_stats = queries.ad_stats(*args, "total", request.timezone, source).get("total", queries.AdStats())
    if campaigns is None:
        campaigns = has_campaigns(ch, request.advertiser)
    basis = cost_basis(total_stats.spend, campaigns, price)
    windows = (request.click_window, request.view_window)
    rows: list[Row] = []
    total_conv = attribution.Conversions()
    product_level = request.group_by in queries.PRODUCT_LEVEL
    attributed = request.group_by not in NO_ATTRIBUTION
    if with_rows:
        stats = queries.ad_stats(*args, request.group_by, request.timezone, source)
        convs = (attribution.conversions(*args, request.group_by, request.timezone, *windows, source,
                                         verified=request.verified_only)
                 if attributed else {})
        keys = _keys(request, start, end)
        known = set(keys)
        keys += sorted((set(stats) | set(convs)) - known)
        for key in keys:
            row = _row(key, stats.get(key), convs.get(key), price, product_level, basis, attributed)
            rows.append(row)
        for conv in convs.values():
            _add(total_conv, conv)
    if not with_rows or not attributed:
        total_conv = attribution.conversions(*args, "total", request.timezone, *windows, source,
                                             verified=request.verified_only).get("total", attribution.Conversions())
    totals = _row("total", total_stats, total_conv, price, False, basis)
    return Report(request, rows, totals, price, product_level, cost_basis=basis)


def _add(total: attribution.Conversions, conv: attribution.Conversions) -> None:
    total.conversions += conv.conversions
    total.post_click += conv.post_click
    total.post_view += conv.post_view
    total.revenue += conv.revenue


def _row(key: str, stats: queries.AdStats | None, conv: attribution.Conversions | None, price: Price | None,
         product_level: bool, basis: str | None = "price", attributed: bool = True) -> Row:
    if stats is None:
        stats = queries.AdStats(visitors=None if product_level else 0)
        if product_level:
            stats.invalid_impressions = stats.invalid_clicks = stats.spend = None
            stats.gdpr_impressions = stats.consented_impressions = None
    conv = conv or attribution.Conversions()
    row = Row(key=key, impressions=stats.impressions, clicks=stats.clicks, visitors=stats.visitors,
              addressable=stats.addressable, share=stats.share, conversions=conv.conversions,
              post_click_conversions=conv.post_click, post_view_conversions=conv.post_view,
              revenue=round(conv.revenue, 6), invalid_impressions=stats.invalid_impressions,
              invalid_clicks=stats.invalid_clicks, spend=stats.spend, gdpr_impressions=stats.gdpr_impressions,
              consented_impressions=stats.consented_impressions, hides=stats.hides)
    if not attributed:
        row.conversions = row.post_click_conversions = row.post_view_conversions = row.revenue = None
    if basis == "charged":
        row.cost = stats.spend  # None per product or reason: spend is not split between products
    elif basis == "price":
        row.cost = _cost(price, stats.clicks, stats.share)
    return row


def sort_rows(rows: list[Row], column: str, descending: bool) -> list[Row]:
    """Sort by a column; rows without a value (``None``) always go last."""
    present = [r for r in rows if r.value(column) is not None]
    missing = [r for r in rows if r.value(column) is None]
    present.sort(key=lambda r: (r.value(column), r.key), reverse=descending)
    return present + missing
