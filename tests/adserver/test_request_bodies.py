"""Request bodies: small everywhere, large only where a feed is uploaded.

A body declared larger than its route accepts is answered 413 before anything reads it (the test
bodies count what was read of them); the feed upload still takes a feed far larger than that.
"""

from __future__ import annotations

import io

import pytest

from adserver.catalog.upload import MAX_FEED_BYTES
from adserver.limits import DEFAULT_MAX_BODY
from tests.adserver.conftest import LargeBody, feed_bytes, product

BIG = 5 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("method, path, content_type", [
    ("POST", "/reports/login", FORM),
    ("POST", "/reports/logout", FORM),
    ("POST", "/privacy/forget", FORM),
    ("POST", "/optout", FORM),
    ("POST", "/px/viewable?p=demo-feed&r=abcdefghijklmnopqrstuv", "text/plain"),
    ("POST", "/reports/campaigns", FORM),
    ("PUT", "/api/v1/campaigns/c1", "application/json"),
    ("POST", "/api/v1/campaigns/c1/pause", "application/json"),
    ("GET", "/api/v1/reports?advertiser=shop", "application/json"),
    ("POST", "/ad.json?p=demo-feed&size=300x250", "application/json"),
])
def test_oversized_bodies_are_refused_before_being_read(client, method, path, content_type):
    body = LargeBody(BIG)
    response = client.open(path, method=method, input_stream=body, content_type=content_type)
    assert response.status_code == 413, response.get_data(as_text=True)[:300]
    assert body.consumed == 0
    if path.startswith("/api/"):
        assert response.get_json()["error"] == "too_large"
        assert f"{DEFAULT_MAX_BODY // 1024} KB" in response.get_json()["message"]
    else:
        page = response.get_data(as_text=True)
        assert response.mimetype == "text/html" and f"{DEFAULT_MAX_BODY // 1024} KB" in page


CHUNKED = {"headers": {"Transfer-Encoding": "chunked"}, "environ_overrides": {"wsgi.input_terminated": True}}


@pytest.mark.parametrize("path", ["/reports/login", "/privacy/forget", "/optout"])
def test_oversized_bodies_without_a_length_are_refused_once_past_the_limit(client, path):
    body = LargeBody(BIG)
    response = client.post(path, input_stream=body, content_type=FORM, **CHUNKED)
    assert response.status_code == 413
    assert body.consumed <= DEFAULT_MAX_BODY + 1


def test_a_small_form_without_a_length_is_read_whole(client):
    page = client.get("/reports/login")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    form = f"csrf_token={token}&email=nobody%40a.example&password=wrong+password".encode()
    response = client.post("/reports/login", input_stream=io.BytesIO(form), content_type=FORM, **CHUNKED)
    assert response.status_code == 401  # parsed: the CSRF token was read, the password checked


def test_a_login_form_just_over_the_limit_is_refused_and_one_under_it_is_read(client):
    response = client.post("/reports/login", input_stream=LargeBody(DEFAULT_MAX_BODY + 1), content_type=FORM)
    assert response.status_code == 413
    body = LargeBody(DEFAULT_MAX_BODY)
    response = client.post("/reports/login", input_stream=body, content_type=FORM)
    assert response.status_code == 400  # read, then refused for its missing CSRF token
    assert body.consumed == DEFAULT_MAX_BODY


def test_the_413_page_reflects_nothing_of_the_request(client):
    response = client.post("/optout?<script>=1", input_stream=LargeBody(BIG), content_type=FORM,
                           headers={"Accept": "text/html"})
    assert response.status_code == 413 and "<script>" not in response.get_data(as_text=True)


@pytest.fixture
def feed_token(runner, create_advertiser) -> str:
    create_advertiser("shop-a")
    code, out = runner("create-token", "shop-a")
    assert code == 0, out
    return out.strip().splitlines()[-1]


def test_the_feed_upload_takes_a_large_feed(client, feed_token, ch):
    rows = [product(f"B{i}", f"Celadon tea cup 青瓷茶杯 number {i} " * 4) for i in range(5000)]
    data = feed_bytes(rows)
    assert len(data) > 16 * DEFAULT_MAX_BODY
    response = client.put("/api/v1/feeds/shop-a", data=data, headers={"Authorization": f"Bearer {feed_token}"})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["accepted"] == 5000


def test_the_feed_upload_takes_a_large_feed_without_a_length(client, feed_token, ch):
    data = feed_bytes([product(f"B{i}", f"Celadon tea cup 青瓷茶杯 number {i} " * 4) for i in range(5000)])
    response = client.put("/api/v1/feeds/shop-a", input_stream=io.BytesIO(data), content_type="text/csv",
                          headers={"Authorization": f"Bearer {feed_token}", "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["accepted"] == 5000


def test_a_feed_without_a_length_is_refused_once_past_the_feed_limit(client, feed_token, ch):
    body = LargeBody(MAX_FEED_BYTES + 1)
    response = client.put("/api/v1/feeds/shop-a", input_stream=body, content_type="text/csv",
                          headers={"Authorization": f"Bearer {feed_token}", "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert ch.execute("SELECT count() FROM products") == [(0,)]


def test_a_feed_beyond_the_feed_limit_is_refused_unread(client, feed_token, ch):
    body = LargeBody(MAX_FEED_BYTES + 1)
    response = client.put("/api/v1/feeds/shop-a", input_stream=body, content_type="text/csv",
                          headers={"Authorization": f"Bearer {feed_token}"})
    assert response.status_code == 413
    assert body.consumed == 0
    assert response.get_json()["error"] == "too_large"
    assert ch.execute("SELECT count() FROM products") == [(0,)]
