"""Dashboard sessions: what a stolen or forged session cookie can still do.

- Sessions are signed with a key derived from ``ADSERVER_SECRET_KEY``: the key the repository once
  shipped as an example forged a session for any marketer, so no server starts with it.
- Each session carries its user's session generation, checked on every request: signing out or a
  new password ends every session of the user, in every web process, and after restarts.
"""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from adserver import create_app
from adserver.console import accounts, auth
from tests.adserver.console.conftest import PASSWORD, csrf_of, login
from tests.conftest import SECRET
from tracker.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[3]
OLD_EXAMPLE_KEY = "change-me-to-a-long-random-string"  # deploy/adserver.env.example, copied by deployments
DAY = "from=2026-03-10&to=2026-03-10"
CAMPAIGN_FORM = {"id": "b-forged", "name": "forged", "status": "active", "pricing": "cpc", "price": "9",
                 "daily_budget": "1000", "start_date": "", "end_date": "", "audience_days": "30",
                 "exclude_buyers_days": "0", "cap_per_day": "0", "min_gap_seconds": "0", "logo_url": "",
                 "brand_color": "", "text_color": ""}


def forge_session(key: str, email: str, **extra) -> str:
    """What an attacker who knows ``key`` does: sign a session cookie the way the server would."""
    attacker = Flask("attacker")
    auth.configure(attacker, (key,), cookie_secure=True)
    serializer = SecureCookieSessionInterface().get_signing_serializer(attacker)
    return serializer.dumps({"_permanent": True, "user": email, "since": int(time.time()),
                             "csrf_token": "forged-csrf", **extra})


def cookie_of(client) -> str:
    return client.get_cookie("adserver_session").value


def with_cookie(app, value: str):
    other = app.test_client()
    other.set_cookie("adserver_session", value)
    return other


# --- Item 1: the example key ------------------------------------------------------------------------

def test_a_session_forged_with_the_old_example_key_gets_nothing(app, client, tenants, ch, settings, monkeypatch):
    # A deployment that copied the example file: the server refuses to start with that key.
    env = {"ADSERVER_SECRET_KEY": OLD_EXAMPLE_KEY, "ADSERVER_REDIS_URL": settings.redis_url,
           "ADSERVER_CLICKHOUSE_URL": "clickhouse://127.0.0.1:9000/adserver", "ADSERVER_DATA_DIR": str(settings.data_dir)}
    with pytest.raises(SettingsError, match="^ADSERVER_SECRET_KEY is an example value published"):
        load_settings(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="^ADSERVER_SECRET_KEY"):
        create_app()
    with pytest.raises(SystemExit, match="^invalid settings: ADSERVER_SECRET_KEY is an example value"):
        runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    # A server that runs has another key: the forged session opens nothing, for any generation.
    for generation in (None, 0, accounts.session_generation(ch, "bob@b.example")):
        forged = forge_session(OLD_EXAMPLE_KEY, "bob@b.example",
                               **({} if generation is None else {auth.GENERATION_FIELD: generation}))
        attacker = with_cookie(app, forged)
        assert attacker.get(f"/reports/shop-b?{DAY}").status_code == 302
        response = attacker.post("/reports/campaigns?advertiser=shop-b",
                                 data={**CAMPAIGN_FORM, "csrf_token": "forged-csrf"})
        assert response.status_code in (302, 400)
    assert ch.execute("SELECT count() FROM campaigns") == [(0,)]


# --- Item 10: revocation ----------------------------------------------------------------------------

def test_signing_out_revokes_a_copied_session_cookie(app, client, tenants):
    assert login(client, "alice@a.example").status_code == 302
    stolen = cookie_of(client)
    assert with_cookie(app, stolen).get(f"/reports/shop-a?{DAY}").status_code == 200
    token = csrf_of(client.get("/reports/login").get_data(as_text=True))
    assert client.post("/reports/logout", data={"csrf_token": token}).status_code == 302
    assert with_cookie(app, stolen).get(f"/reports/shop-a?{DAY}").status_code == 302
    assert with_cookie(app, stolen).get("/reports/").status_code == 302
    # signing in again opens a new session
    assert login(client, "alice@a.example").status_code == 302
    assert client.get(f"/reports/shop-a?{DAY}").status_code == 200


def test_signing_out_ends_every_session_of_the_user_only(app, client, tenants):
    assert login(client, "alice@a.example").status_code == 302
    other_browser = app.test_client()
    assert login(other_browser, "alice@a.example", ip="198.51.100.4").status_code == 302
    carol = app.test_client()
    assert login(carol, "carol@agency.example", ip="198.51.100.5").status_code == 302
    token = csrf_of(client.get("/reports/login").get_data(as_text=True))
    client.post("/reports/logout", data={"csrf_token": token})
    assert other_browser.get(f"/reports/shop-a?{DAY}").status_code == 302
    assert carol.get(f"/reports/shop-a?{DAY}").status_code == 200


def test_a_new_password_revokes_sessions(app, client, tenants, ch):
    assert login(client, "alice@a.example").status_code == 302
    stolen = cookie_of(client)
    accounts.save_user(ch, "alice@a.example", "a brand new passphrase", ["shop-a"])  # create-user again
    assert with_cookie(app, stolen).get(f"/reports/shop-a?{DAY}").status_code == 302
    assert login(client, "alice@a.example", PASSWORD).status_code == 401
    assert login(client, "alice@a.example", "a brand new passphrase").status_code == 302


def test_revocation_holds_across_processes_and_restarts(app, client, tenants, settings, ch):
    """The generation lives in ClickHouse: another web process (another app, its own clients) sees a
    logout at once, and so does a process started afterwards."""
    assert login(client, "alice@a.example").status_code == 302
    stolen = cookie_of(client)
    second = create_app(settings)
    try:
        assert with_cookie(second, stolen).get(f"/reports/shop-a?{DAY}").status_code == 200
        token = csrf_of(client.get("/reports/login").get_data(as_text=True))
        client.post("/reports/logout", data={"csrf_token": token})
        assert with_cookie(second, stolen).get(f"/reports/shop-a?{DAY}").status_code == 302
    finally:
        second.extensions["adserver"].close()
    restarted = create_app(settings)
    try:
        assert with_cookie(restarted, stolen).get(f"/reports/shop-a?{DAY}").status_code == 302
    finally:
        restarted.extensions["adserver"].close()


def test_a_session_without_the_current_generation_is_refused(app, tenants, ch):
    """Signed with the server's own key but carrying no generation, or an old one (cookies issued
    before an upgrade or before a logout): the user signs in again."""
    current = accounts.session_generation(ch, "alice@a.example")
    assert with_cookie(app, forge_session(SECRET, "alice@a.example")).get("/reports/").status_code == 302
    for stale in (current - 1, current + 1, str(current), True):
        cookie = forge_session(SECRET, "alice@a.example", **{auth.GENERATION_FIELD: stale})
        assert with_cookie(app, cookie).get(f"/reports/shop-a?{DAY}").status_code == 302, stale
    valid = forge_session(SECRET, "alice@a.example", **{auth.GENERATION_FIELD: current})
    assert with_cookie(app, valid).get(f"/reports/shop-a?{DAY}").status_code == 200


def test_generations_only_grow(ch):
    email = "dave@d.example"
    assert accounts.session_generation(ch, email) == 0
    seen = [accounts.bump_session_generation(ch, email) for _ in range(3)]
    assert seen == sorted(set(seen)) and seen[0] > 0
    assert accounts.session_generation(ch, email) == seen[-1]
    assert accounts.session_generation(ch, "erin@d.example") == 0


def test_the_session_is_read_only_from_its_cookie_and_otherwise_empty(app):
    """Requests without the session cookie (ads, clicks) skip the signer; one with it is read as Flask
    reads it, and a cookie signed with another key is an empty session."""
    sessions = app.session_interface
    name = sessions.get_cookie_name(app)
    for cookie, expected in ((None, None), (forge_session(SECRET, "m@example.com"), "m@example.com"),
                             (forge_session(OLD_EXAMPLE_KEY, "m@example.com"), None)):
        headers = {"Cookie": f"{name}={cookie}"} if cookie else {}
        with app.test_request_context("/ad", headers=headers):
            from flask import request

            opened = sessions.open_session(app, request)
        assert opened is not None and opened.get("user") == expected and not opened.modified
