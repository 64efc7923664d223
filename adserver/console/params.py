"""Report parameters from a query string, checked one by one with a clear message for each.

The API and the dashboard share these rules; a bad value raises :class:`BadParameter`, which names
the parameter (the API answers it as a 400 with JSON, the dashboard shows it on the page).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from adserver.console.report import (
    DEFAULT_CLICK_WINDOW,
    DEFAULT_VIEW_WINDOW,
    GROUPS,
    MAX_DAYS,
    MAX_HOUR_DAYS,
    MAX_WINDOW,
    METRICS,
    ReportRequest,
)

FORMATS = ("json", "csv")
SORTABLE = ("key", *METRICS)
API_PARAMS = frozenset({"advertiser", "from", "to", "group_by", "format", "click_window", "view_window",
                        "compare", "sort", "order", "conversions"})
DASHBOARD_PARAMS = frozenset({"from", "to", "group_by", "click_window", "view_window", "sort", "order",
                              "conversions"})
# Which orders conversions count: every order (pixels and the conversion API), or only those the store
# sent through the conversion API with its token (a page can fire any purchase pixel).
CONVERSIONS = ("all", "verified")
_DURATION = re.compile(r"^([0-9]{1,4})([dh]?)\Z")
EARLIEST = date(2000, 1, 1)


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Options:
    """Everything a report page or API call asked for, checked."""

    request: ReportRequest
    sort: str
    descending: bool
    format: str = "json"
    compare: bool = False


def _single(args: Mapping, name: str) -> str | None:
    values = args.getlist(name) if hasattr(args, "getlist") else [args[name]] if name in args else []
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0] if values else None


def parse_date(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value)
        if not re.match(r"^\d{4}-\d{2}-\d{2}\Z", value):
            raise ValueError
    except ValueError:
        raise BadParameter(name, f"must be a date as YYYY-MM-DD, got {value[:40]!r}") from None
    if not EARLIEST <= day <= date(2100, 1, 1):
        raise BadParameter(name, f"must be between {EARLIEST} and 2100-01-01")
    return day


def parse_window(value: str, name: str) -> int:
    """``30d``, ``12h`` or a number of days; 0 disables that kind of attribution."""
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise BadParameter(name, f"must be a duration like 30d or 24h, got {value[:40]!r}")
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86400)
    if seconds > MAX_WINDOW:
        raise BadParameter(name, "must be at most 90 days")
    return seconds


def format_window(seconds: int) -> str:
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds // 3600}h"


def parse(args: Mapping, advertiser: str, timezone: str, *, allowed: frozenset[str] = API_PARAMS,
          today: date | None = None) -> Options:
    """Check the parameters of a report on ``advertiser`` (whose time zone is ``timezone``)."""
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise BadParameter(unknown[0], f"unknown parameter (known: {', '.join(sorted(allowed))})")
    today = today or datetime.now(ZoneInfo(timezone)).date()
    raw_to, raw_from = _single(args, "to"), _single(args, "from")
    end = parse_date(raw_to, "to") if raw_to else today
    start = parse_date(raw_from, "from") if raw_from else end - timedelta(days=6)
    if start > end:
        raise BadParameter("from", f"must not be after to ({start} > {end})")
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise BadParameter("from", f"the range is {days} days; at most {MAX_DAYS}")
    group_by = _single(args, "group_by") or "day"
    if group_by not in GROUPS:
        raise BadParameter("group_by", f"must be one of {', '.join(GROUPS)}, got {group_by[:40]!r}")
    if group_by == "hour" and days > MAX_HOUR_DAYS:
        raise BadParameter("group_by", f"hour needs a range of at most {MAX_HOUR_DAYS} days (this one is {days})")
    fmt = _single(args, "format") or "json"
    if fmt not in FORMATS:
        raise BadParameter("format", f"must be json or csv, got {fmt[:40]!r}")
    raw = _single(args, "click_window")
    click_window = parse_window(raw, "click_window") if raw else DEFAULT_CLICK_WINDOW
    raw = _single(args, "view_window")
    view_window = parse_window(raw, "view_window") if raw else DEFAULT_VIEW_WINDOW
    sort = _single(args, "sort") or ("key" if group_by in ("day", "hour") else "impressions")
    if sort not in SORTABLE:
        raise BadParameter("sort", f"must be one of {', '.join(SORTABLE)}")
    order = _single(args, "order") or ("asc" if sort == "key" else "desc")
    if order not in ("asc", "desc"):
        raise BadParameter("order", "must be asc or desc")
    compare = (_single(args, "compare") or "0").lower()
    if compare not in ("0", "1", "true", "false"):
        raise BadParameter("compare", "must be 1 or 0")
    conversions = _single(args, "conversions") or "all"
    if conversions not in CONVERSIONS:
        raise BadParameter("conversions", f"must be all or verified, got {conversions[:40]!r}")
    request = ReportRequest(advertiser, start, end, group_by, timezone, click_window, view_window,
                            verified_only=conversions == "verified")
    return Options(request, sort, order == "desc", fmt, compare in ("1", "true"))
