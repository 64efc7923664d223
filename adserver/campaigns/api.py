"""``/api/v1/campaigns``: an advertiser's API token lists, creates, updates, pauses and resumes its
campaigns.

Tokens work exactly as for ``/api/v1/reports``: ``Authorization: Bearer <token>``, one advertiser
per token; asking for another advertiser answers 403, and a campaign of another advertiser answers
404 like a campaign that does not exist. ``PUT /api/v1/campaigns/<id>`` creates the campaign
(``advertiser`` required, the token's) or changes the fields given, keeping the others. Errors are
``400 {"error": "bad_request", "parameter": <first field>, "message": ..., "errors": [{"field",
"message"}]}``.
"""

from __future__ import annotations

import json
from dataclasses import replace

from flask import Blueprint, Response, jsonify, request

from adserver.campaigns.admin import (
    CampaignInvalid,
    as_json,
    from_json,
    get_campaign,
    list_campaigns,
    owner,
    reload_registry,
    save_checked,
    spent_today,
)
from adserver.campaigns.campaign import CAMPAIGN_RE, Campaign
from adserver.catalog.tokens import bearer_token, token_advertiser
from adserver.console.api import api_error, api_headers
from adserver.console.views import load_advertiser
from adserver.services import services
from tracker.events import ADVERTISER_RE

bp = Blueprint("campaigns_api", __name__, url_prefix="/api/v1")
bp.after_request(api_headers)

MAX_BODY = 64 * 1024


def _invalid(exc: CampaignInvalid) -> Response:
    response = jsonify({"error": "bad_request", "parameter": exc.errors[0][0], "message": str(exc),
                        "errors": [{"field": f, "message": m} for f, m in exc.errors]})
    response.status_code = 400
    return response


def _owner_or_401() -> str | Response:
    advertiser = token_advertiser(services().ch, bearer_token(request))
    if advertiser is None:
        return api_error(401, "unauthorized", "send a valid API token: Authorization: Bearer <token>")
    return advertiser


def _body(campaign: Campaign, status: int = 200) -> Response:
    timezone = services().registry.timezone_of(campaign.advertiser)
    info = load_advertiser(services().ch, campaign.advertiser)
    if info is not None:
        timezone = info.timezone
    response = jsonify(as_json(campaign, spent_today([campaign], timezone)[campaign.id],
                               services().settings.currency))
    response.status_code = status
    return response


@bp.get("/campaigns")
def campaigns_list() -> Response:
    token_owner = _owner_or_401()
    if isinstance(token_owner, Response):
        return token_owner
    unknown = sorted(set(request.args) - {"advertiser"})
    if unknown:
        return api_error(400, "bad_request", "unknown parameter (known: advertiser)", unknown[0])
    advertisers = request.args.getlist("advertiser")
    if len(advertisers) > 1:
        return api_error(400, "bad_request", "given more than once", "advertiser")
    advertiser = advertisers[0] if advertisers else token_owner
    if not ADVERTISER_RE.match(advertiser):
        return api_error(400, "bad_request", "must be an advertiser id", "advertiser")
    if advertiser != token_owner:
        return api_error(403, "forbidden", "this token does not give access to that advertiser", "advertiser")
    ch = services().ch
    info = load_advertiser(ch, advertiser)
    if info is None:
        return api_error(404, "not_found", "no such advertiser", "advertiser")
    campaigns = list_campaigns(ch, advertiser)
    spent = spent_today(campaigns, info.timezone)
    currency = services().settings.currency
    return jsonify({"advertiser": advertiser, "currency": currency, "timezone": info.timezone,
                    "campaigns": [as_json(c, spent[c.id], currency) for c in campaigns]})


def _own(token_owner: str, campaign_id: str) -> Campaign | None:
    if not CAMPAIGN_RE.match(campaign_id):
        return None
    return get_campaign(services().ch, campaign_id, {token_owner})


@bp.put("/campaigns/<campaign_id>")
def campaign_put(campaign_id: str) -> Response:
    token_owner = _owner_or_401()
    if isinstance(token_owner, Response):
        return token_owner
    if not CAMPAIGN_RE.match(campaign_id):
        return api_error(400, "bad_request", "campaign id must be 1-64 lowercase letters, digits, '_' or '-'", "id")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return api_error(413, "too_large", f"the body must be at most {MAX_BODY} bytes")
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        return api_error(400, "bad_request", f"the body is not valid JSON: {exc}", "body")
    if not isinstance(body, dict):
        return api_error(400, "bad_request", "the body must be a JSON object", "body")
    if "id" in body and body["id"] != campaign_id:
        return api_error(400, "bad_request", "must be the id of the URL (ids cannot be changed)", "id")
    ch = services().ch
    current = _own(token_owner, campaign_id)
    if current is None and owner(ch, campaign_id) is not None:
        return api_error(404, "not_found", "no such campaign")  # another advertiser's: as if it did not exist
    advertiser = body.get("advertiser")
    if current is None:
        if advertiser is None:
            return api_error(400, "bad_request", "required to create a campaign", "advertiser")
        if not isinstance(advertiser, str) or not ADVERTISER_RE.match(advertiser):
            return api_error(400, "bad_request", "must be an advertiser id", "advertiser")
        if advertiser != token_owner:
            return api_error(403, "forbidden", "this token does not give access to that advertiser", "advertiser")
        base = Campaign(campaign_id, advertiser)
    else:
        if advertiser is not None and advertiser != current.advertiser:
            return api_error(400, "bad_request", "a campaign cannot move to another advertiser", "advertiser")
        base = current
    try:
        campaign = save_checked(ch, from_json(body, base))
    except CampaignInvalid as exc:
        return _invalid(exc)
    reload_registry()
    return _body(campaign, 200 if current else 201)


def _set_status(campaign_id: str, status: str) -> Response:
    token_owner = _owner_or_401()
    if isinstance(token_owner, Response):
        return token_owner
    current = _own(token_owner, campaign_id)
    if current is None:
        return api_error(404, "not_found", "no such campaign")
    if current.status != status:
        try:
            current = save_checked(services().ch, replace(current, status=status))
        except CampaignInvalid as exc:
            return _invalid(exc)
        reload_registry()
    return _body(current)


@bp.post("/campaigns/<campaign_id>/pause")
def campaign_pause_api(campaign_id: str) -> Response:
    return _set_status(campaign_id, "paused")


@bp.post("/campaigns/<campaign_id>/resume")
def campaign_resume_api(campaign_id: str) -> Response:
    return _set_status(campaign_id, "active")
