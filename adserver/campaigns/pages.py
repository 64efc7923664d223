"""``/reports/campaigns``: marketers list, create, edit, pause and resume their campaigns.

Same rules as the report pages: a signed-in session, every POST carries the session's CSRF token,
and an advertiser or campaign the user is not a member of answers 404, exactly like one that does
not exist (a 403 would tell that it exists). A change is visible to this process's ad decisions at
once (the registry is reloaded) and to other processes within their 30-second reload.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from adserver.campaigns.admin import (
    DEFAULT_START,
    EDITABLE,
    CampaignInvalid,
    form_values,
    from_form,
    get_campaign,
    list_campaigns,
    owner,
    reload_registry,
    save_checked,
    spent_share,
    spent_today,
)
from adserver.campaigns.campaign import CAMPAIGN_RE, FAR_FUTURE, Campaign
from adserver.console import accounts, auth
from adserver.console.views import (
    AdvertiserInfo,
    current_user,
    load_advertiser,
    login_redirect,
    member_advertiser,
    money,
    pct,
)
from adserver.services import services

bp = Blueprint("campaigns", __name__, url_prefix="/reports", template_folder="templates")
bp.after_request(auth.secure_headers)

LABELS = {
    "id": "Campaign id", "name": "Name", "status": "Status", "pricing": "Pricing", "price": "Price",
    "daily_budget": "Daily budget", "start_date": "Start date", "end_date": "End date",
    "audience_days": "Audience (days since last interest)", "exclude_buyers_days": "Exclude buyers of the last … days",
    "cap_per_day": "Impressions per visitor and day", "min_gap_seconds": "Minimum gap between impressions (s)",
    "hide_days": "Days a \u201cnot interested\u201d lasts",
    "logo_url": "Logo URL", "brand_color": "Brand colour", "text_color": "Text colour",
}
HINTS = {
    "price": "per click (CPC) or per 1000 impressions (CPM)", "daily_budget": "0: no limit",
    "start_date": "empty: from now", "end_date": "empty: no end", "exclude_buyers_days": "0: keep buyers",
    "cap_per_day": "0: no cap", "min_gap_seconds": "0: none", "brand_color": "like #1a2b3c",
    "hide_days": "a reader who dismissed a product or the store does not see it again for this long (1-365)",
}


def _advertiser_arg() -> str:
    values = request.args.getlist("advertiser")
    if len(values) != 1:
        abort(400, description="Give exactly one advertiser: /reports/campaigns?advertiser=<id>")
    return values[0]


def _own_campaign(campaign_id: str) -> tuple[str, AdvertiserInfo, list[str], Campaign]:
    """The signed-in user's campaign, or 404 (not found and not theirs look the same)."""
    user = current_user()
    if user is None:
        abort(login_redirect())
    ch = services().ch
    memberships = accounts.user_advertisers(ch, user)
    campaign = get_campaign(ch, campaign_id, set(memberships)) if CAMPAIGN_RE.match(campaign_id) else None
    info = load_advertiser(ch, campaign.advertiser) if campaign else None
    if campaign is None or info is None:
        abort(404)
    return user, info, memberships, campaign


def _fields(values: dict[str, str], errors: dict[str, str]) -> list[dict]:
    return [{"name": name, "kind": kind, "label": LABELS[name], "hint": HINTS.get(name, ""),
             "value": values.get(name, ""), "error": errors.get(name, "")} for name, kind in EDITABLE]


def _list_page(user: str, info: AdvertiserInfo, memberships: list[str], *, form: dict[str, str] | None = None,
               errors: dict[str, str] | None = None, status: int = 200, saved: str = "") -> Response:
    ch = services().ch
    campaigns = list_campaigns(ch, info.id)
    spent = spent_today(campaigns, info.timezone)
    currency = services().settings.currency
    rows = []
    for c in campaigns:
        share = spent_share(c, spent[c.id])
        rows.append({
            "campaign": c, "price": money(c.price, currency),
            "budget": money(c.daily_budget, currency) if c.daily_budget > 0 else "no limit",
            "spent": money(spent[c.id], currency), "share": pct(share, 1),
            "dates": f"{'start' if c.start_date == DEFAULT_START else c.start_date} → "
                     f"{'no end' if c.end_date == FAR_FUTURE else c.end_date}",
            "caps": _caps(c),
        })
    errors = errors or {}
    values = form if form is not None else form_values(Campaign("", info.id))
    page = render_template(
        "reports/campaigns.html", user=user, info=info, memberships=memberships, rows=rows, currency=currency,
        new_id=values.get("id", ""), id_error=errors.get("id", ""), fields=_fields(values, errors),
        errors=errors, saved=saved if any(c.id == saved for c in campaigns) else "", editing=None,
    )
    return Response(page, status=status)


def _caps(c: Campaign) -> str:
    parts = [f"audience {c.audience_days} d"]
    if c.cap_per_day:
        parts.append(f"{c.cap_per_day}/visitor/day")
    if c.min_gap_seconds:
        parts.append(f"gap {c.min_gap_seconds} s")
    if c.exclude_buyers_days:
        parts.append(f"no buyers of {c.exclude_buyers_days} d")
    return ", ".join(parts)


@bp.get("/campaigns")
def campaigns():
    user, info, memberships = member_advertiser(_advertiser_arg())
    return _list_page(user, info, memberships, saved=request.args.get("saved", ""))


@bp.post("/campaigns")
def campaign_create():
    auth.check_csrf()
    user, info, memberships = member_advertiser(_advertiser_arg())
    ch = services().ch
    submitted = {k: request.form.get(k, "")[:2100] for k in ("id", *(n for n, _ in EDITABLE))}
    campaign_id = submitted["id"].strip()
    try:
        campaign = from_form(submitted, Campaign(campaign_id, info.id))
        if CAMPAIGN_RE.match(campaign_id) and owner(ch, campaign_id) is not None:
            # Ids are shared by all advertisers: the same answer whoever holds it.
            raise CampaignInvalid([("id", f"campaign id {campaign_id!r} is taken; choose another one")])
        save_checked(ch, campaign)
    except CampaignInvalid as exc:
        return _list_page(user, info, memberships, form=submitted, errors=exc.by_field(), status=400)
    reload_registry()
    return redirect(url_for("campaigns.campaigns", advertiser=info.id, saved=campaign.id), code=303)


@bp.get("/campaigns/<campaign_id>")
def campaign_edit(campaign_id: str):
    user, info, memberships, campaign = _own_campaign(campaign_id)
    return _edit_page(user, info, memberships, campaign, form_values(campaign), {})


def _edit_page(user: str, info: AdvertiserInfo, memberships: list[str], campaign: Campaign,
               values: dict[str, str], errors: dict[str, str], status: int = 200) -> Response:
    page = render_template(
        "reports/campaigns.html", user=user, info=info, memberships=memberships, rows=None,
        currency=services().settings.currency, fields=_fields(values, errors), errors=errors, editing=campaign,
        saved="", new_id="", id_error="",
    )
    return Response(page, status=status)


@bp.post("/campaigns/<campaign_id>")
def campaign_update(campaign_id: str):
    auth.check_csrf()
    user, info, memberships, current = _own_campaign(campaign_id)
    submitted = {n: request.form.get(n, "")[:2100] for n, _ in EDITABLE}
    try:
        campaign = save_checked(services().ch, from_form(submitted, current))
    except CampaignInvalid as exc:
        return _edit_page(user, info, memberships, current, submitted, exc.by_field(), status=400)
    reload_registry()
    return redirect(url_for("campaigns.campaigns", advertiser=info.id, saved=campaign.id), code=303)


def _set_status(campaign_id: str, status: str) -> Response:
    auth.check_csrf()
    _user, info, _memberships, current = _own_campaign(campaign_id)
    if current.status != status:
        try:
            save_checked(services().ch, replace(current, status=status))
        except CampaignInvalid as exc:  # stored before today's rules: say what to fix
            abort(400, description=f"Edit the campaign first: {exc}")
        reload_registry()
    return redirect(url_for("campaigns.campaigns", advertiser=info.id, saved=current.id), code=303)


@bp.post("/campaigns/<campaign_id>/pause")
def campaign_pause(campaign_id: str):
    return _set_status(campaign_id, "paused")


@bp.post("/campaigns/<campaign_id>/resume")
def campaign_resume(campaign_id: str):
    return _set_status(campaign_id, "active")
