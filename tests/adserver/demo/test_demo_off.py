"""Server mode has no demo unless ``ADSERVER_DEMO=1``: no ``/demo/...`` pages, and the demo marketer,
whose password the README publishes, cannot sign in even if an earlier ``demo --reports`` created it."""

from __future__ import annotations

import pytest

from adserver.console.accounts import save_user
from adserver.demo.reports import DEMO_EMAIL, DEMO_PASSWORD
from tests.adserver.console.conftest import login
from tracker.settings import load_settings

DEMO_PATHS = ("/demo/", "/demo/store", "/demo/store/p/D1001", "/demo/store/cart", "/demo/outdoor",
              "/demo/outdoor/p/T2001", "/demo/feed")


def test_server_mode_serves_no_demo_page(client, settings):
    assert not settings.demo
    for path in DEMO_PATHS:
        assert client.get(path).status_code == 404, path
    home = client.get("/").get_data(as_text=True)
    assert "/demo/" not in home


@pytest.mark.settings_env(ADSERVER_DEMO="1")
def test_the_demo_is_there_when_asked_for(client, settings):
    assert settings.demo
    assert client.get("/demo/store").status_code == 200
    assert client.get("/demo/feed").status_code == 200
    assert 'href="/demo/store"' in client.get("/").get_data(as_text=True)


def test_embedded_mode_has_the_demo_by_default(tmp_path):
    """``make run``: the demo as before, without setting anything."""
    assert load_settings({"ADSERVER_DATA_DIR": str(tmp_path)}).demo
    assert not load_settings({"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_DEMO": "0"}).demo


def test_the_demo_marketer_cannot_sign_in_without_the_demo(client, ch):
    save_user(ch, DEMO_EMAIL, DEMO_PASSWORD, ["demo"])  # left by a `demo --reports` of an earlier version
    response = login(client, DEMO_EMAIL, DEMO_PASSWORD)
    assert response.status_code == 401
    assert "Wrong e-mail or password." in response.get_data(as_text=True)
    assert client.get("/reports/").status_code == 302  # no session


@pytest.mark.settings_env(ADSERVER_DEMO="1")
def test_the_demo_marketer_signs_in_with_the_demo(client, ch):
    save_user(ch, DEMO_EMAIL, DEMO_PASSWORD, ["demo"])
    assert login(client, DEMO_EMAIL, DEMO_PASSWORD).status_code == 302
