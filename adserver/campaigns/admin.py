"""Campaign management for marketers: what the ``/reports/campaigns`` pages and the
``/api/v1/campaigns`` API share.

Campaign ids are one namespace for every advertiser (the ``campaigns`` table is keyed by id), so
every change first looks up who owns the id: a campaign of an advertiser the caller may not manage
is treated exactly like one that does not exist. Values are checked field by field here (types,
dates, numbers) and then by :func:`adserver.campaigns.campaign.save_campaign` (ranges, colours, URLs); both
kinds of problems come back as ``(field, message)`` pairs, so the form can show each next to its
input and the API can name the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from typing import Any

from adserver.campaigns.campaign import FAR_FUTURE, Campaign, save_campaign
from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.schema import CAMPAIGNS_COLUMNS

DEFAULT_START = Campaign("x", "x").start_date
# Editable fields, in form order: (name, kind). ``id`` is chosen at creation; ``advertiser`` never changes.
EDITABLE = (
    ("name", "str"), ("status", "str"), ("pricing", "str"), ("price", "float"), ("daily_budget", "float"),
    ("start_date", "date"), ("end_date", "date"), ("audience_days", "int"), ("exclude_buyers_days", "int"),
    ("cap_per_day", "int"), ("min_gap_seconds", "int"), ("hide_days", "int"), ("logo_url", "str"),
    ("brand_color", "str"), ("text_color", "str"),
)
KINDS = dict(EDITABLE)
EMPTY_INT = {"hide_days": Campaign("x", "x").hide_days}  # what an empty number field means, when not 0
# How save_campaign's messages start, mapped to the field they are about ("pricing" before "price").
_MESSAGE_FIELDS = (
    ("campaign id", "id"), ("advertiser id", "advertiser"), ("status", "status"), ("pricing", "pricing"),
    ("price", "price"), ("daily budget", "daily_budget"), ("end date", "end_date"),
    ("audience days", "audience_days"), ("exclude buyers days", "exclude_buyers_days"),
    ("cap per day", "cap_per_day"), ("min gap", "min_gap_seconds"), ("hide days", "hide_days"),
    ("brand color", "brand_color"),
    ("text color", "text_color"), ("logo url", "logo_url"),
)


class CampaignInvalid(ValueError):
    """Problems with the submitted values, each as ``(field, message)``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors

    def by_field(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, message in self.errors:
            out[name] = f"{out[name]}; {message}" if name in out else message
        return out


def _field_of(message: str) -> str:
    return next((name for prefix, name in _MESSAGE_FIELDS if message.startswith(prefix)), "campaign")


def save_checked(ch: ClickHouse, campaign: Campaign) -> Campaign:
    """``save_campaign``, its validation problems raised as :class:`CampaignInvalid` per field."""
    try:
        return save_campaign(ch, campaign)
    except AdServerError as exc:
        raise CampaignInvalid([(_field_of(m), m) for m in str(exc.args[0] if exc.args else exc).split("; ")]) from None


@dataclass(frozen=True)
class Ownership:
    advertiser: str
    deleted: bool


def owner(ch: ClickHouse, campaign_id: str) -> Ownership | None:
    """Who the newest version of ``campaign_id`` belongs to (removed campaigns too), or None."""
    rows = ch.execute("SELECT advertiser, deleted FROM campaigns FINAL WHERE id = %(id)s", {"id": campaign_id})
    return Ownership(rows[0][0], bool(rows[0][1])) if rows else None


def _campaign(row: tuple) -> Campaign:
    r = row
    return Campaign(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]), float(r[8]), int(r[9]), int(r[10]),
                    int(r[11]), int(r[12]), r[13], r[14], r[15], int(r[17]))


def get_campaign(ch: ClickHouse, campaign_id: str, advertisers: frozenset[str] | set[str]) -> Campaign | None:
    """The campaign if it exists, is not removed and belongs to one of ``advertisers``; else None
    (the caller answers 404 either way, so another advertiser's campaign looks like no campaign)."""
    rows = ch.execute("SELECT " + ", ".join(CAMPAIGNS_COLUMNS[:17]) + ", hide_days FROM campaigns FINAL "
                      "WHERE id = %(id)s", {"id": campaign_id})
    if not rows or rows[0][16] or rows[0][1] not in advertisers:
        return None
    return _campaign(rows[0])


def list_campaigns(ch: ClickHouse, advertiser: str) -> list[Campaign]:
    """The advertiser's campaigns (not removed), by id."""
    rows = ch.execute("SELECT " + ", ".join(CAMPAIGNS_COLUMNS[:17]) + ", hide_days FROM campaigns FINAL WHERE id IN "
                      "(SELECT id FROM campaigns WHERE advertiser = %(a)s) ORDER BY id", {"a": advertiser})
    return [_campaign(r) for r in rows if r[1] == advertiser and not r[16]]


# --- Values from a form (strings) ----------------------------------------------------------------

def _parse(name: str, kind: str, raw: str) -> Any:
    raw = raw.strip()
    if kind == "str":
        return raw
    if kind == "date":
        if not raw:
            return DEFAULT_START if name == "start_date" else FAR_FUTURE
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ValueError("must be a date as YYYY-MM-DD") from None
    if kind == "int":
        try:
            return int(raw) if raw else EMPTY_INT.get(name, 0)
        except ValueError:
            raise ValueError("must be a whole number") from None
    try:
        value = float(raw or "0")
    except ValueError:
        raise ValueError("must be a number, like 0.60") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def from_form(form: Mapping[str, str], base: Campaign) -> Campaign:
    """``base`` with the fields the form sent; unparsable values raise :class:`CampaignInvalid`."""
    changes: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for name, kind in EDITABLE:
        if name not in form:
            continue
        try:
            changes[name] = _parse(name, kind, form[name])
        except ValueError as exc:
            errors.append((name, f"{name.replace('_', ' ')} {exc}"))
    if errors:
        raise CampaignInvalid(errors)
    return replace(base, **changes)


def form_values(campaign: Campaign) -> dict[str, str]:
    """A campaign as the form shows it (no dates for "from the start" and "no end")."""
    out = {}
    for f in fields(Campaign):
        value = getattr(campaign, f.name)
        if f.name == "start_date" and value == DEFAULT_START or f.name == "end_date" and value == FAR_FUTURE:
            value = ""
        elif isinstance(value, float):
            value = f"{value:g}" if abs(value) < 1e15 else repr(value)
        out[f.name] = str(value)
    return out


# --- Values from JSON ----------------------------------------------------------------------------

def from_json(body: Any, base: Campaign) -> Campaign:
    """``base`` with the fields of a JSON object; wrong types and unknown fields raise
    :class:`CampaignInvalid` (``id`` and ``advertiser`` are checked by the caller)."""
    if not isinstance(body, dict):
        raise CampaignInvalid([("body", "must be a JSON object")])
    changes: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for name, value in body.items():
        if name in ("id", "advertiser"):
            continue
        kind = KINDS.get(name)
        if kind is None:
            errors.append((str(name)[:64], f"unknown field (known: id, advertiser, {', '.join(KINDS)})"))
        elif kind == "str":
            if isinstance(value, str):
                changes[name] = value
            else:
                errors.append((name, "must be a string"))
        elif kind == "date":
            if value is None:
                changes[name] = DEFAULT_START if name == "start_date" else FAR_FUTURE
            elif isinstance(value, str):
                try:
                    changes[name] = _parse(name, "date", value)
                except ValueError as exc:
                    errors.append((name, str(exc)))
            else:
                errors.append((name, "must be a date as YYYY-MM-DD, or null"))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            errors.append((name, "must be a number"))
        elif kind == "int":
            if isinstance(value, float) and not value.is_integer():
                errors.append((name, "must be a whole number"))
            else:
                changes[name] = int(value)
        elif not math.isfinite(value):
            errors.append((name, "must be a finite number"))
        else:
            changes[name] = float(value)
    if errors:
        raise CampaignInvalid(errors)
    return replace(base, **changes)


def as_json(campaign: Campaign, spent: float | None, currency: str) -> dict:
    """A campaign for the API, with today's spend (None when the counters cannot be read)."""
    out = asdict(campaign)
    out["start_date"] = campaign.start_date.isoformat()
    out["end_date"] = None if campaign.end_date == FAR_FUTURE else campaign.end_date.isoformat()
    out["currency"] = currency
    out["spent_today"] = spent
    out["budget_used_today"] = spent_share(campaign, spent)
    return out


def spent_share(campaign: Campaign, spent: float | None) -> float | None:
    """Today's spend as a fraction of the daily budget (None without a budget or a known spend)."""
    if spent is None or campaign.daily_budget <= 0:
        return None
    return round(spent / campaign.daily_budget, 6)


def spent_today(campaigns: list[Campaign], timezone: str) -> dict[str, float | None]:
    """Today's spend of each campaign (the advertiser's local day) from the budget counters in
    Redis; None for every campaign when Redis cannot be read (the page still shows the rest)."""
    import redis

    from adserver.services import services

    try:
        budgets = services().budgets
        return {c.id: budgets.spent(c.id, timezone) for c in campaigns}
    except (redis.RedisError, OSError):
        return {c.id: None for c in campaigns}


def reload_registry() -> None:
    """Make this process's ad decisions see a change at once (others reload within 30 s)."""
    from adserver.services import services

    services().registry.reload()
