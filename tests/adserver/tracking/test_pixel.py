"""The store side on real servers: the pixel, its debug twin, the visitor cookie, the tag and opt-out.

The pixel must answer the same tiny GIF whatever it is sent, store every valid hit in ``events``
and every invalid one in ``bad_events`` with its reason, and never trust a cookie it did not sign.
Each test runs on a single Redis server (one stream partition) and on the Redis Cluster with four
partitions (``ADSERVER_STREAM_PARTITIONS=4``), with the same expectations.
"""

from __future__ import annotations

import struct
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import parse_cookie
from werkzeug.test import Client

from adserver.tracking.pixel import _PixelHeaders, check_hit, query_pairs, request_cookies
from adserver.tracking.traffic import classify
from adserver.tracking.views import GIF
from tests.adserver.conftest import uid_from_cookie
from tests.adserver.redis_modes import MODES, drain_all, stream_length
from tests.adserver.tracking.test_privacy import form_token
from tracker.events import Hit, Invalid
from tracker.identity import VisitorIds

LONG_URL = "https://store.example/" + "a" * 2978  # 3000 characters

# (query string, reason code stored in bad_events). Every one must still get the GIF.
INVALID_HITS = [
    pytest.param("", "missing_advertiser", id="no-params"),
    pytest.param("a=demo&e=view_everything&sku=D1001", "invalid_event", id="unknown-event"),
    pytest.param("a=De%20mo!&e=view_item&sku=D1001", "invalid_advertiser", id="bad-advertiser-chars"),
    pytest.param("a=" + "a" * 65 + "&e=view_item&sku=D1001", "invalid_advertiser", id="advertiser-65-chars"),
    pytest.param("a=nosuchshop&e=view_item&sku=D1001", "unknown_advertiser", id="unregistered-advertiser"),
    pytest.param("a=demo&e=view_item&sku=" + ",".join(f"S{i}" for i in range(51)), "too_many_skus", id="51-skus"),
    pytest.param("a=demo&e=view_item&sku=%3Cscript%3Ealert(1)%3C/script%3E", "invalid_sku", id="sku-script"),
    pytest.param("a=demo&e=view_item&sku=D10%2001", "invalid_sku", id="sku-space"),
    pytest.param("a=demo&e=view_item&sku=%22D1001%22", "invalid_sku", id="sku-quotes"),
    pytest.param("a=demo&e=view_item&sku=,,,", "invalid_sku", id="sku-commas-only"),
    pytest.param("a=demo&e=view_item&sku=" + "S" * 101, "invalid_sku", id="sku-101-chars"),
    pytest.param("a=demo&e=view_item", "missing_sku", id="view-item-without-sku"),
    pytest.param("a=demo&e=purchase&sku=D1001&value=10&currency=CNY", "missing_order", id="purchase-without-order"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=-5&currency=CNY", "invalid_value", id="value-negative"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=1e5&currency=CNY", "invalid_value", id="value-exponent"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=NaN&currency=CNY", "invalid_value", id="value-nan"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=12.34567&currency=CNY", "invalid_value",
                 id="value-5-decimals"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=12.50", "missing_currency", id="value-no-currency"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=12.50&currency=XXX", "invalid_currency",
                 id="currency-XXX"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=12.50&currency=usd", "invalid_currency",
                 id="currency-lowercase"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=12.50&currency=EURO", "invalid_currency",
                 id="currency-4-letters"),
    pytest.param("a=demo&e=view_item&sku=D1001&url=javascript:alert(1)", "invalid_url", id="url-javascript"),
    pytest.param("a=demo&e=view_item&sku=D1001&url=https://store.example/a%20b", "invalid_url", id="url-spaces"),
    pytest.param("a=demo&e=view_item&sku=D1001&url=" + LONG_URL, "url_too_long", id="url-3000-chars"),
    pytest.param("a=demo&e=view_item&sku=%ff%fe", "invalid_encoding", id="invalid-utf8-sku"),
    pytest.param("a=demo&e=view_item&sku=D1001&url=https://store.example/%ff%fe", "invalid_encoding",
                 id="invalid-utf8-url"),
    pytest.param("a=demo&e=view_item&sku=D1001%0d%0a", "invalid_sku", id="crlf-sku"),
    pytest.param("a=demo&e=view_item&sku=D1001&url=https://store.example/%0d%0aSet-Cookie:x=1", "invalid_url",
                 id="crlf-url"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1%0d%0a&value=1&currency=CNY", "invalid_order",
                 id="crlf-order"),
    pytest.param("a=demo&e=view_item&sku=D1001&sku=D1002", "duplicate_parameter", id="repeated-sku"),
    pytest.param("a=demo&a=other&e=view_item&sku=D1001", "duplicate_parameter", id="repeated-advertiser"),
    # A lone LF at the end: a pattern ending in `$` (not `\Z`) would let it through as part of the value.
    pytest.param("a=demo&e=view_item&sku=D1001%0a", "invalid_sku", id="lf-sku"),
    pytest.param("a=demo%0a&e=view_item&sku=D1001", "invalid_advertiser", id="lf-advertiser"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=10%0a&currency=CNY", "invalid_value", id="lf-value"),
    pytest.param("a=demo&e=purchase&sku=D1001&order=O1&value=10&currency=CNY%0a", "invalid_currency",
                 id="lf-currency"),
]


def assert_gif(response) -> None:
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    body = response.get_data()
    assert len(body) <= 43
    assert gif_size(body) == (1, 1)
    assert "no-store" in response.headers.get("Cache-Control", "")


def set_cookies(response) -> dict[str, dict]:
    """The response's Set-Cookie headers as ``{name: {"value": .., attribute: ..}}``."""
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            attrs = {k: v for k, v in morsel.items() if v}
            attrs["flags"] = {part.strip().lower() for part in header.split(";")}
            cookies[name] = {"value": morsel.value, **attrs}
    return cookies


def with_cookie_header(app) -> Client:
    """A client that sends the ``Cookie`` header it is given: Flask's test client replaces that header
    with its own cookie jar (and drops it while the jar is empty)."""
    return Client(app, use_cookies=False)


def pytest_generate_tests(metafunc):
    if "redis_mode" in metafunc.fixturenames:
        metafunc.parametrize("redis_mode", MODES, indirect=True)


@pytest.fixture
def writer(writers):
    return writers


def drain(writers) -> int:
    return drain_all(writers)


def all_keys(redis_client, pattern: str) -> set[bytes]:
    """Keys matching ``pattern`` on every node."""
    return set(redis_client.scan_iter(match=pattern, count=1000))


def gif_size(data: bytes) -> tuple[int, int]:
    """Walk a GIF's blocks (header, screen, colour table, extensions, image, trailer); its size if well formed."""
    assert data[:6] in (b"GIF87a", b"GIF89a"), data[:6]
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)

    def skip_sub_blocks(pos: int) -> int:
        while data[pos]:
            pos += data[pos] + 1
        return pos + 1

    images = 0
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif data[pos] == 0x2C:  # image descriptor, optional local table, LZW min size, sub-blocks
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)
            images += 1
        else:
            raise AssertionError(f"unexpected GIF block {data[pos]:#x} at {pos}")
    assert pos == len(data) - 1, "bytes after the GIF trailer"
    assert images == 1
    return width, height


def test_the_gif_constant_is_a_transparent_1x1_image():
    assert gif_size(GIF) == (1, 1)
    gce = GIF.index(b"\x21\xf9\x04")  # graphic control extension
    assert GIF[gce + 3] & 1, "transparency flag not set"
    with pytest.raises((AssertionError, IndexError)):
        gif_size(GIF[:-1])  # the checker itself notices a truncated image


@pytest.mark.parametrize("query, reason", INVALID_HITS)
def test_invalid_hit_gets_the_gif_and_is_stored_with_its_reason(client, demo_loaded, writer, ch, query, reason):
    response = client.get("/px.gif?" + query)
    assert_gif(response)

    drain(writer)
    assert ch.execute("SELECT count() FROM events")[0][0] == 0
    rows = ch.execute("SELECT reason, raw, errors FROM bad_events")
    assert len(rows) == 1
    stored_reason, raw, errors = rows[0]
    assert stored_reason == reason, errors
    assert raw == query
    assert errors[0].startswith(reason + ":")


@pytest.mark.parametrize("query, reason", INVALID_HITS)
def test_debug_names_the_reason_of_a_bad_hit_and_records_nothing(client, demo_loaded, redis_client, settings,
                                                                 query, reason):
    response = client.get("/px/debug?" + query)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["ok"] is False
    assert reason in [e["code"] for e in body["errors"]]
    assert all(e["message"] for e in body["errors"])
    assert stream_length(redis_client, settings) == 0
    assert "uid" not in set_cookies(response)


def test_debug_lists_every_problem_of_a_hit(client, demo_loaded):
    body = client.get("/px/debug?a=demo&e=purchase&sku=%3Cx%3E&value=-1&currency=usd").get_json()
    codes = {e["code"] for e in body["errors"]}
    assert {"invalid_sku", "missing_order", "invalid_value", "invalid_currency"} <= codes


def test_debug_accepts_a_good_hit_and_records_nothing(client, demo_loaded, redis_client, settings):
    body = client.get("/px/debug?a=demo&e=purchase&sku=D1001,D1002&order=O-7&value=129.90&currency=CNY").get_json()
    assert body["ok"] is True
    assert body["errors"] == []
    assert body["event"]["skus"] == ["D1001", "D1002"]
    assert body["event"]["value"] == pytest.approx(129.90)
    assert stream_length(redis_client, settings) == 0


@pytest.mark.parametrize("query, expected", [
    pytest.param("a=demo&e=view_home", {"event": "view_home", "skus": [], "order_id": "", "value": 0.0,
                                        "currency": ""}, id="view_home"),
    pytest.param("a=demo&e=view_item&sku=D1004&url=https://store.example/p/D1004",
                 {"event": "view_item", "skus": ["D1004"], "url": "https://store.example/p/D1004"}, id="view_item"),
    pytest.param("a=demo&e=add_to_cart&sku=D1004,D1010,D1004", {"event": "add_to_cart", "skus": ["D1004", "D1010"]},
                 id="add_to_cart-dedup"),
    pytest.param("a=demo&e=purchase&sku=D1001,D1002&order=O-2024-001&value=129.9&currency=CNY&_=123",
                 {"event": "purchase", "skus": ["D1001", "D1002"], "order_id": "O-2024-001", "value": 129.9,
                  "currency": "CNY"}, id="purchase"),
    pytest.param("a=demo&e=view_item&sku=%E8%8C%B6-1", {"event": "view_item", "skus": ["茶-1"]}, id="utf8-sku"),
])
def test_valid_hit_is_stored_in_events_under_the_cookie_uid(client, demo_loaded, writer, ch, query, expected):
    response = client.get("/px.gif?" + query)
    assert_gif(response)
    uid = uid_from_cookie(set_cookies(response)["uid"]["value"])

    drain(writer)
    assert ch.execute("SELECT count() FROM bad_events")[0][0] == 0
    columns = ("advertiser", "event", "uid", "sku", "skus", "order_id", "value", "currency", "url", "addressable")
    rows = ch.execute(f"SELECT {', '.join(columns)} FROM events")
    assert len(rows) == 1
    row = dict(zip(columns, rows[0]))
    assert row["advertiser"] == "demo"
    assert row["uid"] == uid
    assert row["addressable"] == 1
    assert row["sku"] == (expected["skus"][0] if expected["skus"] else "")
    for name, value in expected.items():
        assert row[name] == value, name


def test_uid_cookie_attributes_on_first_hit(client, demo_loaded):
    response = client.get("/px.gif?a=demo&e=view_home")
    assert_gif(response)
    cookie = set_cookies(response)["uid"]
    assert cookie["value"]
    assert "secure" in cookie["flags"]
    assert "httponly" in cookie["flags"]
    assert cookie["samesite"].lower() == "none"
    assert cookie["path"] == "/"
    max_age = timedelta(seconds=int(cookie["max-age"]))
    assert timedelta(days=390) <= max_age <= timedelta(days=400)


def test_uid_is_random_per_visitor(app, demo_loaded):
    uids = {set_cookies(app.test_client().get("/px.gif?a=demo&e=view_home"))["uid"]["value"] for _ in range(5)}
    assert len(uids) == 5


def test_valid_cookie_keeps_its_uid(client, demo_loaded, writer, ch):
    first = set_cookies(client.get("/px.gif?a=demo&e=view_item&sku=D1001"))["uid"]["value"]
    again = client.get("/px.gif?a=demo&e=view_item&sku=D1002")
    assert set_cookies(again)["uid"]["value"] == first  # re-set with a fresh lifetime, same id
    drain(writer)
    assert ch.execute("SELECT DISTINCT uid FROM events") == [(uid_from_cookie(first),)]


def _change_char(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


def _tampered_cookies(valid: str) -> dict[str, str]:
    uid, _, mac = valid.partition(".")
    return {
        "id-first-char": f"{_change_char(uid, 0)}.{mac}",
        "id-middle-char": f"{_change_char(uid, 10)}.{mac}",
        "mac-first-char": f"{uid}.{_change_char(mac, 0)}",
        "mac-middle-char": f"{uid}.{_change_char(mac, 7)}",
        "other-secret": VisitorIds(["some-other-secret-key-0123456789"]).cookie_value(uid),
        "garbage": "not-a-cookie",
        "5000-chars": "A" * 5000,
        "id-only": uid,
        "swapped-halves": f"{mac}.{uid}",
    }


@pytest.mark.parametrize("kind", ["id-first-char", "id-middle-char", "mac-first-char", "mac-middle-char",
                                  "other-secret", "garbage", "5000-chars", "id-only", "swapped-halves"])
def test_tampered_cookie_is_replaced_and_never_stored(app, demo_loaded, writer, ch, kind):
    valid = set_cookies(app.test_client().get("/px.gif?a=demo&e=view_home"))["uid"]["value"]
    tampered = _tampered_cookies(valid)[kind]
    assert tampered != valid

    response = with_cookie_header(app).get("/px.gif?a=demo&e=view_item&sku=D1001",
                                           headers={"Cookie": f"uid={tampered}"})
    assert_gif(response)
    fresh = set_cookies(response)["uid"]["value"]
    assert fresh not in (tampered, valid)
    new_uid = uid_from_cookie(fresh)
    assert new_uid not in (uid_from_cookie(valid), uid_from_cookie(tampered))
    assert app.extensions["adserver"].ids.verify(fresh) == new_uid

    drain(writer)
    assert ch.execute("SELECT uid FROM events WHERE event = 'view_item'") == [(new_uid,)]
    assert ch.execute("SELECT uid FROM events WHERE event = 'view_home'") == [(uid_from_cookie(valid),)]


@pytest.mark.parametrize("privacy", [
    pytest.param({"cookie": "optout=1"}, id="optout-cookie"),
    pytest.param({"headers": {"Sec-GPC": "1"}}, id="gpc-header"),
])
def test_opted_out_visitor_gets_the_gif_but_is_not_tracked(app, demo_loaded, redis_client, settings, privacy):
    client = app.test_client()
    if "cookie" in privacy:
        client.set_cookie("optout", "1")
    before = all_keys(redis_client, "p:*"), all_keys(redis_client, "pop:*")
    for query in ("a=demo&e=view_item&sku=D1001", "a=demo&e=view_home", "a=nosuchshop&e=bogus"):
        response = client.get("/px.gif?" + query, headers=privacy.get("headers", {}))
        assert_gif(response)
        assert "uid" not in set_cookies(response)
    assert stream_length(redis_client, settings) == 0
    assert (all_keys(redis_client, "p:*"), all_keys(redis_client, "pop:*")) == before  # nothing added


def test_opted_out_visitor_with_an_old_cookie_is_not_tracked(app, demo_loaded, redis_client, settings):
    client = app.test_client()
    client.get("/px.gif?a=demo&e=view_home")
    before = stream_length(redis_client, settings)
    assert before == 1
    response = client.get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"Sec-GPC": "1"})
    assert_gif(response)
    assert "uid" not in set_cookies(response)
    assert stream_length(redis_client, settings) == before


def test_tag_js_is_served_as_javascript(client):
    response = client.get("/tag.js")
    assert response.status_code == 200
    assert response.mimetype in ("application/javascript", "text/javascript")
    body = response.get_data(as_text=True)
    assert "/px.gif" in body
    assert "adserver" in body
    assert "<html" not in body.lower()


def test_optout_page_is_html_with_a_post_form(client):
    response = client.get("/optout")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<form method="post"' in page
    assert "optout" not in set_cookies(response)


def test_post_optout_sets_the_cookie_and_deletes_the_profile(app, demo_loaded, redis_client):
    client = app.test_client()
    for sku in ("D1004", "D1010"):
        client.get(f"/px.gif?a=demo&e=view_item&sku={sku}")
    client.get("/px.gif?a=demo&e=purchase&sku=D1021&order=O1&value=10&currency=CNY")
    cookie = client.get_cookie("uid").value
    uid = uid_from_cookie(cookie)
    prefix = app.extensions["adserver"].stream.prefix(uid)
    profile_keys = {k.decode() for k in all_keys(redis_client, f"{prefix}:*")}
    assert profile_keys == {f"{prefix}:adv", f"{prefix}:rv:demo", f"{prefix}:bought:demo", f"{prefix}:advbuy"}
    assert client.get("/ad.json?p=demo-feed&size=300x250").get_json()["path"] == "personalised"

    response = client.post("/optout", data={"csrf_token": form_token(client)})  # the page's own form
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    cookies = set_cookies(response)
    assert cookies["optout"]["value"] == "1"
    assert "secure" in cookies["optout"]["flags"]
    assert int(cookies["optout"]["max-age"]) >= 365 * 86400
    assert cookies["uid"]["value"] == ""  # the id cookie is deleted
    assert all_keys(redis_client, f"{prefix}:*") == set()

    ad = client.get("/ad.json?p=demo-feed&size=300x250").get_json()
    assert ad["path"] == "fallback"
    assert ad["addressable"] is False
    assert ad["products"]
    # Even a browser that kept the old id cookie (but lost the opt-out cookie) has no profile left.
    stale = with_cookie_header(app).get("/ad.json?p=demo-feed&size=300x250", headers={"Cookie": f"uid={cookie}"})
    assert stale.get_json()["path"] == "fallback"


def test_post_optout_without_a_cookie_still_opts_out(client, demo_loaded):
    response = client.post("/optout", data={"csrf_token": form_token(client)})  # the page's own form
    assert response.status_code == 200
    assert set_cookies(response)["optout"]["value"] == "1"
    assert client.get_cookie("optout").value == "1"
    response = client.get("/px.gif?a=demo&e=view_home")
    assert_gif(response)
    assert "uid" not in set_cookies(response)


def test_bad_events_keep_the_raw_request_and_every_error(client, demo_loaded, writer, ch):
    query = "a=demo&e=purchase&sku=%3Cb%3E&value=abc"
    client.get("/px.gif?" + query)
    drain(writer)
    rows = ch.execute("SELECT advertiser, event, reason, errors, raw, uid FROM bad_events")
    assert len(rows) == 1
    advertiser, event, reason, errors, raw, uid = rows[0]
    assert (advertiser, event, reason, raw) == ("demo", "purchase", "invalid_sku", query)
    assert [e.split(":", 1)[0] for e in errors] == ["invalid_sku", "missing_order", "invalid_value",
                                                   "missing_currency"]
    assert uid == uid_from_cookie(client.get_cookie("uid").value)


# --- The WSGI layer in front of Flask (``adserver.tracking.pixel``) ---------------------------------

def test_head_gets_the_headers_of_a_get_without_the_body(client, demo_loaded):
    response = client.head("/px.gif?a=demo&e=view_home")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Content-Length"] == "43"  # the GIF a GET would get
    assert response.headers["Cache-Control"] == "no-store, max-age=0"
    assert response.get_data() == b""
    assert set_cookies(response)["uid"]["value"]


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_are_not_allowed(client, method):
    response = getattr(client, method)("/px.gif?a=demo&e=view_home")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


@pytest.mark.parametrize("path", ["/px.gif/", "/px.gifx", "/PX.GIF", "/px.gif/../", "/px"])
def test_only_the_exact_path_is_the_pixel(client, path):
    response = client.get(path + "?a=demo&e=view_home")
    assert response.status_code == 404
    assert "uid" not in set_cookies(response)


def test_the_uid_is_found_among_other_cookies(app, demo_loaded):
    first = set_cookies(app.test_client().get("/px.gif?a=demo&e=view_home"))["uid"]["value"]
    header = f"theme=dark; uid={first}; _ga=GA1.2.3"
    response = with_cookie_header(app).get("/px.gif?a=demo&e=view_item&sku=D1001", headers={"Cookie": header})
    assert_gif(response)
    assert set_cookies(response)["uid"]["value"] == first


def test_an_error_inside_still_answers_the_gif(app, demo_loaded, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.extensions["adserver"], "record", broken)
    response = app.test_client().get("/px.gif?a=demo&e=view_home")
    assert_gif(response)
    assert response.get_data() == GIF
    assert "pixel hit not recorded" in caplog.text


def test_check_hit_reads_the_raw_query_string():
    hit = check_hit(b"a=demo&e=view_item&sku=D1%2CD2&url=https%3A%2F%2Fs.example%2Fp%3Fx%3D1%262&cb=1&cb=2", None)
    assert isinstance(hit, Hit)
    assert (hit.advertiser, hit.event, hit.skus) == ("demo", "view_item", ["D1", "D2"])
    assert hit.url == "https://s.example/p?x=1&2"  # percent-decoded once; a repeated cache-buster is fine
    assert check_hit(b"a=demo&e=view_item&sku=D+1", None).errors[0].startswith("invalid_sku")  # "+" is a space
    bad = check_hit(b"a=demo&e=view_item&sku=%ff&sku=D2&a=x", None)
    assert isinstance(bad, Invalid)
    assert bad.errors[0].startswith("invalid_encoding")
    assert bad.errors[1] == "duplicate_parameter: a, sku given more than once"


@pytest.mark.parametrize("header", [
    "", "uid=abc.DEF-_9", "uid=", "uid", "=x", " uid=abc", "uid=abc ", "uid=a b", 'uid="quoted"', "uid=a;uid=b",
    "theme=dark; uid=x", "uid=x; optout=1", "optout=1", "uid=%41", "uid=é".encode().decode("latin-1"), "UID=abc", "uid=a=b", "u-id=abc",
])
def test_the_pixel_reads_cookies_as_werkzeug_does(header):
    environ = {"HTTP_COOKIE": header} if header else {}
    assert dict(request_cookies(environ)) == dict(parse_cookie(environ).items())


def test_a_cookie_header_that_is_not_utf8_still_gives_the_uid(app, demo_loaded):
    first = set_cookies(app.test_client().get("/px.gif?a=demo&e=view_home"))["uid"]["value"]
    assert request_cookies({"HTTP_COOKIE": f"theme=\xe9\xff; uid={first}"})["uid"] == first  # bytes E9 FF
    response = with_cookie_header(app).get("/px.gif?a=demo&e=view_item&sku=D1001",
                                           headers={"Cookie": f"theme=\xe9\xff; uid={first}"})
    assert_gif(response)
    assert set_cookies(response)["uid"]["value"] == first  # the visitor kept, the hit recorded under it


def test_the_pixel_reads_headers_as_werkzeug_does():
    environ = {"HTTP_USER_AGENT": "Mozilla/5.0", "HTTP_SEC_GPC": " 1 ", "CONTENT_TYPE": "text/plain",
               "HTTP_X_MOZ": "prefetch", "HTTP_DNT": ""}
    ours, theirs = _PixelHeaders(environ), EnvironHeaders(environ)
    for name in ("User-Agent", "user-agent", "Sec-GPC", "DNT", "Content-Type", "X-Moz", "Purpose", "Sec-Purpose",
                 "Content-Length", "X_Moz"):
        for _ in range(2):  # the second time from the names already made
            assert ours.get(name) == theirs.get(name), name
            assert ours.get(name, "none") == theirs.get(name, "none"), name
    assert ours.get("Content-Length", type=int) is None and ours.get("DNT", 7, type=int) == 7
    assert classify(ours, None) == classify(theirs, None) == "prefetch"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["a", "e", "=", "&", "+", "%", "%2", "%41", "%e9", "%C3%A9", "%zz", "é", "字", " ", "&&",
                                 "sku", "x=y"]), max_size=20).map("".join))
def test_the_pixel_parses_a_query_as_parse_qsl_does(raw):
    assert query_pairs(raw) == parse_qsl(raw, keep_blank_values=True, errors="werkzeug.url_quote")
