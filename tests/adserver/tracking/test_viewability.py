"""The publisher tag ``/pub.js``, request nonces on ``/ad`` and the ``/px/viewable`` beacon, on real servers.

A viewable event is only worth something if it names the same impression as the ad it was shown in,
so these tests follow one nonce from ``/ad.json`` to ClickHouse; and since the beacon URL is public,
hostile input must never break the answer nor store anything.
"""

from __future__ import annotations

import secrets

import pytest
import redis

from adserver.serving.pubjs import PUB_JS
from adserver.tracking.viewability import NONCE_RE, impression_id_for, valid_nonce
from adserver.tracking.views import GIF
from tests.adserver.test_redis_faults import fault_app, own_redis  # noqa: F401 - fixtures
from tests.conftest import SECRET, drain
from tests.waiting import wait_for
from tracker.writer import BatchWriter

NONCE = "q8xN3v0Yb1sWm2Kp7LzA9cDe"  # what pub.js sends: 18 random bytes, base64url
OTHER = "Zz9-_aBcDeFgHiJkLmNoPqRs"


@pytest.fixture
def demo(demo_loaded, app) -> None:
    app.extensions["adserver"].registry.reload()


def ad_json(client, query: str) -> dict:
    response = client.get("/ad.json?p=demo-feed&size=300x250" + query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def beacon(client, query: str, method: str = "GET", **kwargs):
    response = client.open("/px/viewable?" + query, method=method, **kwargs)
    assert response.status_code == 200
    assert response.data == GIF and response.mimetype == "image/gif"
    assert "no-store" in response.headers["Cache-Control"]
    assert "Set-Cookie" not in response.headers
    return response


def events(ch, event: str) -> list[tuple]:
    return ch.execute("SELECT impression_id, placement, advertiser, uid, addressable FROM events "
                      "WHERE event = %(e)s ORDER BY ts", {"e": event})


def test_pub_js_is_served_small_cacheable_and_from_any_origin(client):
    response = client.get("/pub.js")
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert "max-age=3600" in response.headers["Cache-Control"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers
    body = response.get_data(as_text=True)
    assert len(response.data) < 8 * 1024
    assert body == PUB_JS.read_text(encoding="utf-8")
    for needle in ("ins.adserver-slot", "IntersectionObserver", "MutationObserver", "getRandomValues",
                   "/px/viewable", "allow-popups-to-escape-sandbox", "visibilityState"):
        assert needle in body, needle


def test_impression_id_is_an_hmac_of_the_nonce_with_the_newest_key():
    first = impression_id_for([SECRET], NONCE)
    assert first == impression_id_for([SECRET, "older-key"], NONCE)  # newest key only
    assert first == impression_id_for([SECRET.encode()], NONCE)  # bytes keys work alike
    assert first != impression_id_for(["another-key", SECRET], NONCE)
    assert first != impression_id_for([SECRET], OTHER)
    assert len(first) == 16 and NONCE_RE.match(first)


@pytest.mark.parametrize("value", [None, "", "short", "a" * 15, "a" * 65, "a+b/c=" * 4, "ä" * 20,
                                   NONCE + "\n", NONCE + "\r\nX: 1", f"{NONCE} ", 42])
def test_malformed_nonces_are_not_nonces(value):
    assert valid_nonce(value) is None


def test_ad_with_a_nonce_has_a_deterministic_impression_id(client, demo, writer, ch):
    first = ad_json(client, f"&r={NONCE}")
    again = ad_json(client, f"&r={NONCE}")
    other = ad_json(client, f"&r={OTHER}")
    assert first["impression_id"] == again["impression_id"] == impression_id_for([SECRET], NONCE)
    assert other["impression_id"] == impression_id_for([SECRET], OTHER)
    assert first["products"]  # the decision itself is unchanged
    html = client.get(f"/ad?p=demo-feed&size=300x250&r={NONCE}")
    assert html.status_code == 200 and "Content-Security-Policy" in html.headers
    drain(writer)
    ids = [row[0] for row in events(ch, "impression")]
    assert ids.count(first["impression_id"]) == 3 and other["impression_id"] in ids


@pytest.mark.parametrize("bad", ["short", "a" * 65, "%0d%0aSet-Cookie:%20x=1", "%E4%BD%A0" * 20, "a%2Bb%2Fc%3D" * 4])
def test_ad_ignores_an_invalid_nonce(client, demo, bad):
    first, second = ad_json(client, f"&r={bad}"), ad_json(client, f"&r={bad}")
    assert first["products"]
    assert first["impression_id"] != second["impression_id"]  # random ids, as without r
    assert len(first["impression_id"]) == 16


def test_viewable_is_recorded_once_per_nonce_with_the_impressions_id(client, demo, writer, ch, redis_client):
    shown = ad_json(client, f"&r={NONCE}")
    beacon(client, f"p=demo-feed&r={NONCE}")
    beacon(client, f"p=demo-feed&r={NONCE}", method="POST")  # sendBeacon posts; a repeat is ignored
    beacon(client, f"p=demo-feed&r={NONCE}&a=demo")
    beacon(client, f"p=demo-sidebar&r={OTHER}&a=demo", method="POST")
    drain(writer)
    rows = events(ch, "viewable")
    assert rows == [(shown["impression_id"], "demo-feed", "", "", 0),
                    (impression_id_for([SECRET], OTHER), "demo-sidebar", "demo", "", 0)]
    assert 0 < redis_client.ttl("vw:{%s}" % shown["impression_id"]) <= 3600  # a beacon comes within the hour
    counters = app_counters(client)
    assert counters.get("viewable") == 2 and counters.get("viewable_duplicate") == 2


def app_counters(client) -> dict[str, int]:
    return client.application.extensions["adserver"].stream.counters()


def test_viewable_of_an_opted_out_or_gpc_visitor_carries_no_uid(client, demo, writer, ch):
    client.get("/px.gif?a=demo&e=view_item&sku=D1001")  # the visitor has a uid cookie
    assert client.get_cookie("uid") is not None
    beacon(client, f"p=demo-feed&r={NONCE}", headers={"Sec-GPC": "1"})
    client.set_cookie("optout", "1")
    beacon(client, f"p=demo-feed&r={OTHER}")
    drain(writer)
    assert [(r[3], r[4]) for r in events(ch, "viewable")] == [("", 0), ("", 0)]


HOSTILE = [
    "",  # nothing
    f"r={NONCE}",  # missing p
    "p=demo-feed",  # missing r
    "p=demo-feed&r=short",
    "p=demo-feed&r=" + "a" * 65,  # overlong
    "p=demo-feed&r=" + "A" * 10000,
    "p=demo-feed&r=a%2Bb%2Fc%3Da%2Bb%2Fc%3Da%2Bb%2Fc%3D",  # standard base64, not base64url
    f"p=demo-feed&r={NONCE}%0d%0aSet-Cookie:%20x=1",  # CR/LF
    f"p=demo-feed%0a&r={NONCE}",
    "p=demo-feed&r=" + "%E4%BD%A0" * 20,  # unicode
    f"p=%E5%B9%BF%E5%91%8A&r={NONCE}",
    f"p=Demo-Feed&r={NONCE}",
    f"p={'x' * 65}&r={NONCE}",
    f"p=demo-feed&r=%ff%fe{NONCE}",  # not UTF-8
]


def test_hostile_beacons_answer_the_gif_and_store_nothing(client, demo, writer, ch):
    for query in HOSTILE:
        beacon(client, query)
        beacon(client, query, method="POST")
    beacon(client, f"p=demo-feed&r={NONCE}&a=%3Cscript%3E")  # a bad advertiser is dropped, not the event
    drain(writer)
    assert [r[2] for r in events(ch, "viewable")] == [""]
    assert ch.execute("SELECT count() FROM bad_events")[0][0] == 0
    assert app_counters(client).get("viewable_rejected") == 2 * len(HOSTILE)


def test_each_beacon_leaves_at_most_one_short_lived_key(client, demo, redis_client):
    nonces = [secrets.token_urlsafe(18) for _ in range(20)]
    for nonce in nonces + nonces[:5]:
        beacon(client, f"p=demo-feed&r={nonce}")
    for query in HOSTILE:
        beacon(client, query)
    keys = list(redis_client.scan_iter("vw:*"))
    assert sorted(keys) == sorted(("vw:{%s}" % impression_id_for([SECRET], n)).encode() for n in nonces)
    assert all(0 < redis_client.ttl(k) <= 3600 for k in keys)


def test_viewable_is_recorded_with_redis_down(fault_app, own_redis, ch):  # noqa: F811 - imported fixtures
    """No de-duplication without Redis, but no lost beacon either: it waits in the spool."""
    client = fault_app.test_client()
    services = fault_app.extensions["adserver"]
    own_redis.stop()
    beacon(client, f"p=demo-feed&r={NONCE}")
    assert services.spool.pending_records() == 1
    own_redis.start()
    wait_for(lambda: services.spool.pending_records() == 0, 20, "the spool replayed")
    settings = services.settings
    writer = BatchWriter(redis.Redis.from_url(settings.redis_url, socket_timeout=5), ch, settings.stream_key,
                         "viewable-writer", batch_seconds=0.05)
    writer.ensure_group()
    drain(writer)
    assert [r[0] for r in events(ch, "viewable")] == [impression_id_for([SECRET], NONCE)]
