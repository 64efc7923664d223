"""The marketers' dashboard: ``/reports`` (sign in, pick an advertiser, read and download reports).

Every page checks the signed-in user's memberships in ClickHouse: an advertiser the user is not a
member of answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from adserver.console import accounts, auth, chart, export
from adserver.console.params import DASHBOARD_PARAMS, BadParameter, Options, format_window, parse
from adserver.console.prices import get_price
from adserver.console.report import COLUMNS, Report, Row, has_campaigns, run_report, sort_rows
from adserver.demo.reports import DEMO_EMAIL
from adserver.services import services
from adserver.tracking.address import client_ip

log = logging.getLogger(__name__)
bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates",
               static_folder="static", static_url_path="/static")
SYMBOLS = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$", "TWD": "NT$"}
GROUP_LABELS = {"day": "Day", "hour": "Hour", "placement": "Placement", "sku": "Product", "reason": "Reason",
                "campaign": "Campaign"}
COST_BASIS_TEXT = {
    "charged": "Cost is what your campaigns were charged (valid impressions and clicks).",
    "price": "Cost is estimated from the price set for this advertiser (set-price), not charged spend.",
}


@dataclass(frozen=True)
class AdvertiserInfo:
    id: str
    name: str
    currency: str
    timezone: str


def load_advertiser(ch, advertiser: str) -> AdvertiserInfo | None:
    rows = ch.execute("SELECT id, name, currency, timezone FROM advertisers FINAL WHERE id = %(a)s AND deleted = 0",
                      {"a": advertiser})
    return AdvertiserInfo(*rows[0]) if rows else None


@bp.after_request
def _headers(response: Response) -> Response:
    return auth.secure_headers(response)


@bp.app_template_global()
def csrf_token() -> str:
    return auth.csrf_token()


def current_user() -> str | None:
    user = auth.session_user()
    return None if user is not None and _demo_marketer_barred(user) else user


def _demo_marketer_barred(email: str) -> bool:
    """The demo marketer's password is published: without the demo (``ADSERVER_DEMO``) it has no
    access, even if an earlier ``demo --reports`` created it in this database."""
    return email == DEMO_EMAIL and not services().settings.demo


def login_redirect() -> Response:
    return redirect(url_for("reports.login_page", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/reports") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("reports.index")


@bp.get("/login")
def login_page():
    return render_template("reports/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_submit():
    auth.check_csrf()
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")[: accounts.MAX_PASSWORD + 1]
    target = request.form.get("next", "")
    ip = client_ip()
    throttle = accounts.LoginThrottle(services().redis)
    try:
        wait = math.ceil(throttle.attempt(email, ip))  # counted (as a failure) before the password is checked
    except Exception:  # noqa: BLE001 - without the counters, refuse rather than allow unlimited guessing
        log.exception("login throttle unavailable")
        return _login_error("Signing in is unavailable for a moment. Try again shortly.", 503, target)
    if wait:
        later = f"{wait} seconds" if wait < 120 else f"{math.ceil(wait / 60)} minutes"
        response = _login_error(f"Too many failed attempts. Try again in {later}.", 429, target)
        response.headers["Retry-After"] = str(wait)
        return response
    user = accounts.authenticate(services().ch, email, password)
    if user is not None and _demo_marketer_barred(user.email):
        user = None
    if user is None:
        return _login_error("Wrong e-mail or password.", 401, target)
    try:
        throttle.success(email, ip)
    except Exception:  # noqa: BLE001 - the counters expire by themselves
        log.exception("login counter not cleared")
    auth.login(user.email)
    return redirect(_safe_next(target))


def _login_error(message: str, status: int, target: str) -> Response:
    response = Response(render_template("reports/login.html", next=target, error=message), status=status)
    return response


@bp.post("/logout")
def logout():
    auth.check_csrf()
    auth.logout()
    return redirect(url_for("reports.login_page"))


@bp.get("/")
def index():
    user = current_user()
    if user is None:
        return login_redirect()
    ch = services().ch
    advertisers = [a for a in (load_advertiser(ch, i) for i in accounts.user_advertisers(ch, user)) if a]
    if len(advertisers) == 1:
        return redirect(url_for("reports.dashboard", advertiser=advertisers[0].id))
    return render_template("reports/index.html", user=user, advertisers=advertisers)


def member_advertiser(advertiser: str) -> tuple[str, AdvertiserInfo, list[str]]:
    user = current_user()
    if user is None:
        abort(login_redirect())
    ch = services().ch
    memberships = accounts.user_advertisers(ch, user)
    if advertiser not in memberships:
        abort(404)
    info = load_advertiser(ch, advertiser)
    if info is None:
        abort(404)
    return user, info, memberships


def _report(info: AdvertiserInfo, options: Options) -> Report:
    ch = services().ch
    price = get_price(ch, info.id)
    report = run_report(ch, options.request, price)
    report.rows = sort_rows(report.rows, options.sort, options.descending)
    return report


@bp.get("/<advertiser>")
def dashboard(advertiser: str):
    user, info, memberships = member_advertiser(advertiser)
    try:
        options = parse(request.args, info.id, info.timezone, allowed=DASHBOARD_PARAMS)
    except BadParameter as exc:
        page = render_template("reports/dashboard.html", error=exc, info=info, user=user, memberships=memberships,
                               form=_form_values(request.args), groups=GROUP_LABELS)
        return Response(page, status=400)
    ch = services().ch
    report = _report(info, options)
    campaigns = report.cost_basis == "charged" or has_campaigns(ch, info.id)
    previous = run_report(ch, options.request.previous(), report.price, with_rows=False, campaigns=campaigns)
    request_ = options.request
    spend_currency = services().settings.currency
    series_group = "hour" if request_.days <= 2 or request_.group_by == "hour" else "day"
    if request_.group_by == series_group:
        series_rows = sorted(report.rows, key=lambda r: r.key)
    else:
        series_rows = run_report(ch, replace(request_, group_by=series_group), report.price,
                                 campaigns=campaigns).rows
    svg = chart.render([chart.Point(r.key, r.key[5:] if series_group == "day" else r.key[5:13] + "h",
                                    r.ctr, r.conversions or 0) for r in series_rows],
                       title=f"CTR and conversions per {series_group}, {request_.start} to {request_.end}")
    return render_template(
        "reports/dashboard.html", error=None, info=info, user=user, memberships=memberships, report=report,
        options=options, chart=svg, kpis=_kpis(report.totals, previous.totals, info.currency, report.cost_basis, spend_currency),
        cost_basis=COST_BASIS_TEXT.get(report.cost_basis or "", ""),
        headers=_headers_for(options), rows=[_cells(r, info.currency, spend_currency) for r in report.rows],
        totals=_cells(report.totals, info.currency, spend_currency), form=_form_values(request.args, options),
        invalid=invalid_text(report.totals),
        groups=GROUP_LABELS, product_level=report.product_level,
        csv_url=url_for("reports.export_csv", advertiser=info.id, **_query(options)),
    )


@bp.get("/<advertiser>/report.csv")
def export_csv(advertiser: str):
    _user, info, _memberships = member_advertiser(advertiser)
    try:
        options = parse(request.args, info.id, info.timezone, allowed=DASHBOARD_PARAMS)
    except BadParameter as exc:
        return Response(f"Bad request: {exc}\n", status=400, mimetype="text/plain")
    report = _report(info, options)
    response = Response(export.to_csv(report, report.rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename(report)}"'
    return response


def _query(options: Options, **override) -> dict:
    r = options.request
    values = {"from": r.start.isoformat(), "to": r.end.isoformat(), "group_by": r.group_by,
              "click_window": format_window(r.click_window), "view_window": format_window(r.view_window),
              "sort": options.sort, "order": "desc" if options.descending else "asc",
              "conversions": "verified" if r.verified_only else "all"}
    values.update(override)
    return values


def _form_values(args, options: Options | None = None) -> dict:
    if options is not None:
        return _query(options)
    return {k: args.get(k, "") for k in ("from", "to", "group_by", "click_window", "view_window", "conversions")}


def _headers_for(options: Options) -> list[dict]:
    out = []
    for name, label in (("key", GROUP_LABELS[options.request.group_by]), *COLUMNS):
        active = options.sort == name
        descending = not options.descending if active else name != "key"
        out.append({
            "name": name, "label": label, "active": active,
            "arrow": ("▼" if options.descending else "▲") if active else "",
            "url": "?" + urlencode(_query(options, sort=name, order="desc" if descending else "asc")),
        })
    return out


def money(value: float | None, currency: str) -> str:
    if value is None:
        return "—"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _cells(row: Row, currency: str, spend_currency: str) -> dict:
    """A row as shown: revenue in the store's currency, spend in the exchange currency (and cost in
    the one it was computed in)."""
    cost_currency = spend_currency if row.spend is not None and row.cost == row.spend else currency
    return {
        "key": row.key, "impressions": count(row.impressions), "clicks": count(row.clicks), "ctr": pct(row.ctr),
        "hides": count(row.hides), "hide_rate": pct(row.hide_rate),
        "visitors": count(row.visitors), "addressable_share": pct(row.addressable_share, 1),
        "conversions": count(row.conversions), "post_click_conversions": count(row.post_click_conversions),
        "post_view_conversions": count(row.post_view_conversions), "revenue": money(row.revenue, currency),
        "spend": money(row.spend, spend_currency), "cost": money(row.cost, cost_currency), "roas": "—" if row.roas is None else f"{row.roas:,.2f}×",
    }


def invalid_text(row: Row) -> str:
    """Invalid traffic of a row, apart from the valid counts: "N impressions (x.x%), M clicks (y.y%)"."""
    return (f"{count(row.invalid_impressions)} impressions ({pct(row.invalid_impression_share, 1)}), "
            f"{count(row.invalid_clicks)} clicks ({pct(row.invalid_click_share, 1)})")


def _change(now: float | None, before: float | None) -> tuple[str, str]:
    if now is None or before is None:
        return "", ""
    if before == 0:
        return ("new", "up") if now else ("", "")
    change = (now - before) / before
    return f"{'+' if change >= 0 else '−'}{abs(change) * 100:.1f}%", "up" if change >= 0 else "down"


def _kpis(now: Row, before: Row, currency: str, basis: str | None, spend_currency: str) -> list[dict]:
    items = [
        ("Impressions", count(now.impressions), now.impressions, before.impressions),
        ("Clicks", count(now.clicks), now.clicks, before.clicks),
        ("CTR", pct(now.ctr), now.ctr, before.ctr),
        ("Negative feedback rate", pct(now.hide_rate), now.hide_rate, before.hide_rate),
        ("Visitors reached", count(now.visitors), now.visitors, before.visitors),
        ("Addressable share", pct(now.addressable_share, 1), now.addressable_share, before.addressable_share),
        *([("Consent share (GDPR)", pct(now.consent_share, 1), now.consent_share, before.consent_share)]
          if now.gdpr_impressions or before.gdpr_impressions else []),
        ("Conversions", count(now.conversions), now.conversions, before.conversions),
        ("Revenue", money(now.revenue, currency), now.revenue, before.revenue),
    ]
    if basis == "charged":
        items.append(("Spend", money(now.spend, spend_currency), now.spend, before.spend))
    if basis is not None:
        items += [("Cost" if basis == "charged" else "Cost (from price)",
                   money(now.cost, spend_currency if basis == "charged" else currency), now.cost, before.cost),
                  ("ROAS", "—" if now.roas is None else f"{now.roas:,.2f}×", now.roas, before.roas)]
    out = []
    for label, text, value, previous in items:
        delta, direction = _change(value, previous)
        out.append({"label": label, "value": text, "delta": delta, "direction": direction})
    return out

