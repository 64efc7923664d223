"""``GET /api/v1/reports``: report rows and totals as JSON or CSV, for an advertiser's API token.

Authentication is ``Authorization: Bearer <token>`` (tokens from ``python -m adserver
create-token``; stored hashed, revocable). A token only ever reads its own advertiser: another
advertiser in ``advertiser=`` answers 403. Bad parameters answer 400 with
``{"error": "bad_request", "parameter": ..., "message": ...}``. ``/api/v1/openapi.json`` describes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from adserver.api_errors import api_error as json_error
from adserver.catalog.tokens import bearer_token, token_advertiser
from adserver.console import export
from adserver.console.params import API_PARAMS, BadParameter, format_window, parse
from adserver.console.prices import get_price
from adserver.console.report import Report, has_campaigns, run_report, sort_rows
from adserver.console.views import load_advertiser
from adserver.services import services
from tracker.events import ADVERTISER_RE

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1")
OPENAPI = Path(__file__).with_name("openapi.json")


def api_error(status: int, error: str, message: str, parameter: str | None = None) -> Response:
    return json_error(status, error, message, realm="reports", parameter=parameter or None)


@bp.after_request
def api_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return response


def _totals(report: Report) -> dict:
    out = report.totals.as_dict()
    out.pop("key")
    return out


@bp.get("/reports")
def reports() -> Response:
    ch = services().ch
    owner = token_advertiser(ch, bearer_token(request))
    if owner is None:
        return api_error(401, "unauthorized", "send a valid API token: Authorization: Bearer <token>")
    advertisers = request.args.getlist("advertiser")
    if len(advertisers) > 1:
        return api_error(400, "bad_request", "given more than once", "advertiser")
    advertiser = advertisers[0] if advertisers else owner
    if not ADVERTISER_RE.match(advertiser):
        return api_error(400, "bad_request", "must be an advertiser id", "advertiser")
    if advertiser != owner:
        return api_error(403, "forbidden", "this token does not give access to that advertiser", "advertiser")
    info = load_advertiser(ch, advertiser)
    if info is None:
        return api_error(404, "not_found", "no such advertiser", "advertiser")
    try:
        options = parse(request.args, advertiser, info.timezone, allowed=API_PARAMS)
    except BadParameter as exc:
        return api_error(400, "bad_request", exc.message, exc.parameter)
    price = get_price(ch, advertiser)
    report = run_report(ch, options.request, price)
    rows = sort_rows(report.rows, options.sort, options.descending)
    if options.format == "csv":
        response = Response(export.to_csv(report, rows), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{export.filename(report)}"'
        return response
    r = options.request
    body = {
        "advertiser": advertiser, "currency": info.currency, "timezone": info.timezone,
        "from": r.start.isoformat(), "to": r.end.isoformat(), "group_by": r.group_by,
        "attribution": {"click_window": format_window(r.click_window), "view_window": format_window(r.view_window)},
        "conversions": "verified" if r.verified_only else "all",
        "price": {"model": price.model, "amount": price.amount} if price else None,
        "cost_basis": report.cost_basis, "spend_currency": services().settings.currency,
        "impressions_are": "products" if report.product_level else "ads",
        "totals": _totals(report),
        "rows": [row.as_dict() for row in rows],
    }
    if options.compare:
        previous = run_report(ch, r.previous(), price, with_rows=False,
                              campaigns=report.cost_basis == "charged" or has_campaigns(ch, advertiser))
        body["previous"] = {"from": previous.request.start.isoformat(), "to": previous.request.end.isoformat(),
                            "totals": _totals(previous)}
    return jsonify(body)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(json.loads(OPENAPI.read_text()), ensure_ascii=False, indent=1),
                    mimetype="application/json")
