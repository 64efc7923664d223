"""The /reports pages: sign-in, CSRF, throttling, security headers, the dashboard and its CSV."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET

import pytest

from tests.adserver.console.conftest import PASSWORD, at, csrf_of, insert, login, seed

RANGE = {"from": "2026-03-10", "to": "2026-03-10"}


@pytest.fixture
def signed_in(client, tenants):
    response = login(client, "alice@a.example")
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def test_login_page_and_redirects(client, tenants):
    assert client.get("/reports/").status_code == 302
    response = client.get("/reports/shop-a?from=2026-03-10")
    assert response.status_code == 302 and "/reports/login?next=" in response.headers["Location"]
    page = client.get("/reports/login")
    assert page.status_code == 200 and 'type="password"' in page.get_data(as_text=True)


def test_login_sets_a_hardened_session_cookie_and_opens_the_only_advertiser(client, tenants):
    response = login(client, "alice@a.example")
    assert response.status_code == 302 and response.headers["Location"].endswith("/reports/")
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and "adserver_session=" in v)
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert client.get("/reports/").headers["Location"].endswith("/reports/shop-a")


def test_login_redirects_only_inside_reports(client, tenants):
    page = client.get("/reports/login")
    data = {"email": "alice@a.example", "password": PASSWORD, "csrf_token": csrf_of(page.get_data(as_text=True))}
    for target, expected in (("/reports/shop-a?from=2026-03-10", "/reports/shop-a?from=2026-03-10"),
                             ("https://evil.example/", "/reports/"), ("//evil.example/reports", "/reports/")):
        response = client.post("/reports/login", data={**data, "next": target})
        assert response.headers["Location"].endswith(expected), target
        data["csrf_token"] = csrf_of(client.get("/reports/login").get_data(as_text=True))


def test_wrong_password_and_unknown_user_look_the_same(client, tenants):
    wrong = login(client, "alice@a.example", "not the password")
    unknown = login(client, "nobody@a.example", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail or password." in wrong.get_data(as_text=True)
    assert wrong.get_data(as_text=True) == unknown.get_data(as_text=True)


def test_posts_without_the_sessions_csrf_token_are_refused(client, tenants):
    no_token = client.post("/reports/login", data={"email": "alice@a.example", "password": PASSWORD})
    assert no_token.status_code == 400
    client.get("/reports/login")
    forged = client.post("/reports/login", data={"email": "alice@a.example", "password": PASSWORD,
                                                 "csrf_token": "x" * 43})
    assert forged.status_code == 400
    assert login(client, "alice@a.example").status_code == 302
    assert client.post("/reports/logout").status_code == 400  # still signed in
    token = csrf_of(client.get("/reports/shop-a?from=2026-03-10&to=2026-03-10").get_data(as_text=True))
    assert client.post("/reports/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/reports/shop-a").status_code == 302  # signed out


def test_the_csrf_token_changes_at_login(client, tenants):
    before = csrf_of(client.get("/reports/login").get_data(as_text=True))
    login(client, "alice@a.example")
    after = csrf_of(client.get("/reports/shop-a?from=2026-03-10&to=2026-03-10").get_data(as_text=True))
    assert before != after


def test_failures_slow_down_one_address_for_one_account(client, tenants, redis_client):
    statuses = [login(client, "alice@a.example", "bad password!", ip="198.51.100.1").status_code for _ in range(5)]
    assert 401 in statuses and statuses[-1] == 429
    slowed = login(client, "alice@a.example", PASSWORD, ip="198.51.100.1")  # not checked, even the right one
    assert slowed.status_code == 429 and 0 < int(slowed.headers["Retry-After"]) <= 900
    assert "Too many failed attempts" in slowed.get_data(as_text=True)
    assert login(client, "bob@b.example", ip="198.51.100.1").status_code == 302  # other accounts unaffected
    assert login(client, "alice@a.example", ip="198.51.100.2").status_code == 302  # the owner, elsewhere


def test_one_address_guessing_many_accounts_is_stopped(client, tenants):
    for i in range(20):
        assert login(client, f"user{i}@a.example", "bad password!", ip="198.51.100.9").status_code == 401
    assert login(client, "alice@a.example", ip="198.51.100.9").status_code == 429
    assert login(client, "alice@a.example", ip="198.51.100.10").status_code == 302


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy(client, tenants):
    for i in range(20):
        page = client.get("/reports/login", environ_base={"REMOTE_ADDR": "127.0.0.1"})
        client.post("/reports/login", data={"email": f"u{i}@a.example", "password": "bad password!",
                                            "csrf_token": csrf_of(page.get_data(as_text=True))},
                    headers={"X-Forwarded-For": "192.0.2.50"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    # the proxy (127.0.0.1) said the client is 192.0.2.50: that address is blocked, the proxy is not
    page = client.get("/reports/login")
    other = client.post("/reports/login", data={"email": "alice@a.example", "password": PASSWORD,
                                                "csrf_token": csrf_of(page.get_data(as_text=True))},
                        headers={"X-Forwarded-For": "192.0.2.51"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert other.status_code == 302
    page = client.get("/reports/login")
    spoofed = client.post("/reports/login", data={"email": "alice@a.example", "password": PASSWORD,
                                                  "csrf_token": csrf_of(page.get_data(as_text=True))},
                          headers={"X-Forwarded-For": "192.0.2.50"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert spoofed.status_code == 429


def test_pages_forbid_framing_and_scripts(signed_in):
    for path in ("/reports/login", "/reports/shop-a?from=2026-03-10&to=2026-03-10"):
        response = signed_in.get(path)
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
        assert "no-store" in response.headers["Cache-Control"]
        assert "<script" not in response.get_data(as_text=True)


def test_dashboard_shows_the_chart_the_table_and_the_totals(signed_in, ch):
    seed(ch, "shop-a", at(hours=-1), placement="feed")
    seed(ch, "shop-a", at(days=1), placement="side", clicks=5)
    response = signed_in.get("/reports/shop-a?from=2026-03-09&to=2026-03-11&group_by=placement")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    root = ET.fromstring(svg)  # well-formed
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}rect[@class='bar']")) == 3  # one per day
    one_day = signed_in.get("/reports/shop-a?from=2026-03-10&to=2026-03-10").get_data(as_text=True)
    assert one_day.count('class="bar"') == 24  # short ranges are drawn per hour
    assert root.find(f"{ns}polyline[@class='ctr-line']") is not None
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', page, re.S)
    by_key = {key: re.findall(r"<td>([^<]*)</td>", cells) for key, cells in rows}
    assert set(by_key) == {"feed", "side", "Total"}
    assert by_key["feed"][:3] == ["10", "2", "20.00%"] and by_key["side"][:3] == ["10", "5", "50.00%"]
    assert by_key["Total"][:3] == ["20", "7", "35.00%"]
    assert by_key["Total"][7] == "2"  # conversions
    assert "Shop A &lt;b&gt;&amp;&lt;/b&gt;" in page  # the advertiser's name is escaped


def test_table_sorts_by_any_column_both_ways(signed_in, ch):
    seed(ch, "shop-a", at(), placement="feed", clicks=1)
    seed(ch, "shop-a", at(), placement="side", clicks=4)
    base = "/reports/shop-a?from=2026-03-10&to=2026-03-10&group_by=placement"

    def order(query):
        page = signed_in.get(base + query).get_data(as_text=True)
        return [k for k in re.findall(r'<tr><th scope="row">([^<]+)</th>', page) if k != "Total"]

    assert order("&sort=clicks&order=desc") == ["side", "feed"]
    assert order("&sort=clicks&order=asc") == ["feed", "side"]
    assert order("&sort=key&order=desc") == ["side", "feed"]
    page = signed_in.get(base + "&sort=clicks&order=desc").get_data(as_text=True)
    assert 'aria-sort="descending"' in page and "sort=clicks&amp;order=asc" in page


def test_csv_download_is_what_the_table_shows(signed_in, ch):
    seed(ch, "shop-a", at(), placement="feed", clicks=1)
    seed(ch, "shop-a", at(), placement="side", clicks=4)
    query = "from=2026-03-10&to=2026-03-10&group_by=placement&sort=clicks&order=desc"
    page = signed_in.get("/reports/shop-a?" + query).get_data(as_text=True)
    link = re.search(r'href="([^"]*report\.csv[^"]*)"', page).group(1).replace("&amp;", "&")
    response = signed_in.get(link)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="report-shop-a-2026-03-10-2026-03-10-placement.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["placement"], r["impressions"], r["clicks"], r["ctr"]) for r in rows] == [
        ("side", "10", "4", "0.4"), ("feed", "10", "1", "0.1")]


def test_csv_cells_cannot_become_formulas(signed_in, ch):
    from tests.adserver.console.conftest import impression

    insert(ch, [impression(at(), "u1", ["=HYPERLINK(1)", "<b>x</b>"], ["popular", "popular"], "feed", "shop-a")])
    body = signed_in.get("/reports/shop-a/report.csv?from=2026-03-10&to=2026-03-10&group_by=sku").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in body and "\n=HYPERLINK" not in body
    page = signed_in.get("/reports/shop-a?from=2026-03-10&to=2026-03-10&group_by=sku").get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


@pytest.mark.parametrize("query, parameter", [
    ("from=2026-02-30", "from"), ("from=2026-03-10&to=2026-03-01", "from"), ("group_by=week", "group_by"),
    ("from=2020-01-01&to=2026-01-01", "from"), ("click_window=100d", "click_window"), ("sort=secret", "sort"),
    ("from=2026-01-01&to=2026-06-01&group_by=hour", "group_by"), ("evil=1", "evil"), ("to=2026-03-10&to=2026-03-11", "to"),
])
def test_bad_parameters_are_explained(signed_in, query, parameter):
    response = signed_in.get("/reports/shop-a?" + query)
    assert response.status_code == 400
    assert f"<code>{parameter}</code>" in response.get_data(as_text=True)
    assert signed_in.get("/reports/shop-a/report.csv?" + query).status_code == 400


def test_windows_change_the_conversions(signed_in, ch):
    from tests.adserver.console.conftest import click, purchase

    insert(ch, [click(at(days=-3), "u1", "A1", "recent", "feed", "shop-a"),
                purchase(at(), "u1", "o1", 10.0, ["A1"], "shop-a")])

    def conversions(query):
        rows = list(csv.DictReader(io.StringIO(signed_in.get(
            "/reports/shop-a/report.csv?from=2026-03-10&to=2026-03-10&group_by=placement&" + query
        ).get_data(as_text=True))))
        return sum(int(r["conversions"]) for r in rows)

    assert conversions("click_window=30d") == 1
    assert conversions("click_window=2d") == 0
    assert conversions("click_window=72h") == 1


def test_previous_period_comparison(signed_in, ch):
    seed(ch, "shop-a", at(days=-1), clicks=1)
    seed(ch, "shop-a", at(), clicks=4)
    page = signed_in.get("/reports/shop-a?from=2026-03-10&to=2026-03-10").get_data(as_text=True)
    assert re.search(r'Clicks</span><strong>4</strong>\s*<span class="delta up">\+300\.0%</span>', page)
