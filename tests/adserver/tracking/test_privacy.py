"""Privacy: forgetting a visitor everywhere, and Do Not Track."""

from __future__ import annotations

import time

from tests.conftest import drain


def _uid(client) -> str:
    return client.get_cookie("uid").value.split(".")[0]


def test_forget_deletes_profile_and_events(client, demo_loaded, writer, ch, redis_client):
    client.get("/px.gif?a=demo&e=view_item&sku=D1001")
    client.get("/px.gif?a=demo&e=view_item&sku=D1002")
    client.get("/ad.json?p=demo-feed&size=300x250")
    uid = _uid(client)
    other = client.application.test_client()
    other.get("/px.gif?a=demo&e=view_item&sku=D1004")
    drain(writer)
    assert redis_client.keys("p:{%s}*" % uid)

    response = client.post("/privacy/forget")
    assert response.status_code == 200
    body = response.get_json()
    assert body["visitor_known"] is True
    # The advertiser index, the recently-viewed list, and the frequency state the impression left
    # (overall and today's counts).
    assert body["profile_keys_removed"] == 4
    assert body["rows_scheduled_for_deletion"]["events"] == 3  # two views and one impression
    assert "uid=;" in response.headers["Set-Cookie"]
    assert redis_client.keys("p:{%s}*" % uid) == []
    deadline = time.monotonic() + 20
    while ch.execute("SELECT count() FROM events WHERE uid = %(u)s", {"u": uid})[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ch.execute("SELECT count() FROM events WHERE uid = %(u)s", {"u": uid})[0][0] == 0
    assert ch.execute("SELECT count() FROM events WHERE uid = %(u)s", {"u": _uid(other)})[0][0] == 1


def test_forget_without_a_valid_cookie_removes_nothing(client, demo_loaded, ch):
    assert client.post("/privacy/forget").get_json() == {
        "visitor_known": False, "profile_keys_removed": 0, "rows_scheduled_for_deletion": {}}
    client.set_cookie("uid", "forged.cookie")
    assert client.post("/privacy/forget").get_json()["visitor_known"] is False
    assert client.get("/privacy/forget").status_code == 405


def test_do_not_track_visitors_are_not_tracked(client, demo_loaded, settings, redis_client):
    response = client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"DNT": "1"})
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert "Set-Cookie" not in response.headers
    assert redis_client.xlen(settings.stream_key) == 0
    ad = client.get("/ad.json?p=demo-feed&size=300x250", headers={"DNT": "1"}).get_json()
    assert ad["path"] == "fallback" and ad["addressable"] is False
