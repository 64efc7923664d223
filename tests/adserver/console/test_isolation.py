"""Tenant isolation: a marketer or token of advertiser A never reads advertiser B, whatever the page,
parameter or link."""

from __future__ import annotations

import pytest

from tests.adserver.console.conftest import at, login, seed

DAY = "from=2026-03-10&to=2026-03-10"


@pytest.fixture
def both_seeded(ch, tenants):
    seed(ch, "shop-a", at(), placement="a-only-placement")
    seed(ch, "shop-b", at(), placement="b-only-placement", clicks=7)
    return tenants


@pytest.mark.parametrize("path", [
    "/reports/shop-b", f"/reports/shop-b?{DAY}", f"/reports/shop-b?{DAY}&group_by=placement",
    "/reports/shop-b/report.csv", f"/reports/shop-b/report.csv?{DAY}&group_by=sku",
    "/reports/no-such-shop", "/reports/no-such-shop/report.csv",
])
def test_a_marketer_gets_404_for_another_advertisers_pages(client, both_seeded, path):
    assert login(client, "alice@a.example").status_code == 302
    response = client.get(path)
    assert response.status_code == 404
    assert "b-only-placement" not in response.get_data(as_text=True)


def test_the_marketers_own_pages_show_only_their_data(client, both_seeded):
    login(client, "alice@a.example")
    page = client.get(f"/reports/shop-a?{DAY}&group_by=placement").get_data(as_text=True)
    assert "a-only-placement" in page and "b-only-placement" not in page and "Shop B" not in page
    csv_body = client.get(f"/reports/shop-a/report.csv?{DAY}&group_by=placement").get_data(as_text=True)
    assert "a-only-placement" in csv_body and "b-only-placement" not in csv_body


def test_unknown_parameters_cannot_smuggle_another_advertiser(client, both_seeded):
    login(client, "alice@a.example")
    for query in (f"{DAY}&advertiser=shop-b", f"{DAY}&a=shop-b"):
        assert client.get("/reports/shop-a?" + query).status_code == 400
        assert client.get("/reports/shop-a/report.csv?" + query).status_code == 400


def test_a_member_of_both_sees_both_and_a_removed_membership_takes_effect_at_once(client, both_seeded, ch):
    from adserver.console.accounts import set_memberships

    login(client, "carol@agency.example")
    index = client.get("/reports/")
    assert index.status_code == 200
    assert "/reports/shop-a" in index.get_data(as_text=True) and "/reports/shop-b" in index.get_data(as_text=True)
    assert client.get(f"/reports/shop-b?{DAY}").status_code == 200
    set_memberships(ch, "carol@agency.example", ["shop-b"], remove=True)
    assert client.get(f"/reports/shop-b?{DAY}").status_code == 404
    assert client.get(f"/reports/shop-b/report.csv?{DAY}").status_code == 404
    assert client.get(f"/reports/shop-a?{DAY}").status_code == 200


def test_a_disabled_user_loses_access_with_a_live_session(client, both_seeded, ch):
    from adserver.console.accounts import disable_user

    login(client, "alice@a.example")
    assert client.get(f"/reports/shop-a?{DAY}").status_code == 200
    disable_user(ch, "alice@a.example")
    response = client.get(f"/reports/shop-a?{DAY}")  # the session ended: back to signing in
    assert response.status_code == 302 and "/reports/login" in response.headers["Location"]


def test_a_session_cookie_cannot_be_forged(client, both_seeded):
    client.set_cookie("adserver_session", "eyJ1c2VyIjoiYWxpY2VAYS5leGFtcGxlIn0.forged.signature")
    assert client.get(f"/reports/shop-a?{DAY}").status_code == 302


@pytest.mark.parametrize("query", [
    f"advertiser=shop-b&{DAY}", f"advertiser=shop-b&{DAY}&format=csv", f"advertiser=shop-b&{DAY}&group_by=sku",
    f"advertiser=shop-b&{DAY}&compare=1", "advertiser=shop-b",
])
def test_a_token_gets_403_for_another_advertiser(client, both_seeded, query):
    response = client.get("/api/v1/reports?" + query, headers={"Authorization": f"Bearer {both_seeded['shop-a']}"})
    assert response.status_code == 403
    assert response.get_json()["parameter"] == "advertiser"
    assert "b-only" not in response.get_data(as_text=True)


def test_a_token_without_advertiser_reads_its_own(client, both_seeded):
    body = client.get(f"/api/v1/reports?{DAY}&group_by=placement",
                      headers={"Authorization": f"Bearer {both_seeded['shop-b']}"}).get_json()
    assert body["advertiser"] == "shop-b" and [r["key"] for r in body["rows"]] == ["b-only-placement"]


def test_the_advertiser_parameter_once_only(client, both_seeded):
    response = client.get(f"/api/v1/reports?advertiser=shop-a&advertiser=shop-b&{DAY}",
                          headers={"Authorization": f"Bearer {both_seeded['shop-a']}"})
    assert response.status_code == 400


def test_missing_forged_and_revoked_tokens_get_401(client, both_seeded, ch):
    from adserver.catalog.tokens import revoke_token

    url = f"/api/v1/reports?advertiser=shop-a&{DAY}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer ads_" + "x" * 43}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Basic {both_seeded['shop-a']}"}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Bearer {both_seeded['shop-a']}"}).status_code == 200
    revoke_token(ch, both_seeded["shop-a"])
    response = client.get(url, headers={"Authorization": f"Bearer {both_seeded['shop-a']}"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_session_does_not_open_the_api(client, both_seeded):
    login(client, "alice@a.example")
    assert client.get(f"/api/v1/reports?advertiser=shop-a&{DAY}").status_code == 401
