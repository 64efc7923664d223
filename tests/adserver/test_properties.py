"""Property-based tests over the public parameters: whatever arrives, the answer is well-formed,
never a 500, never a header split, never markup from the input, and nothing accepted is lost."""

from __future__ import annotations

import string
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adserver.catalog.product import validate_row

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text from the whole of Unicode (surrogates excluded: they cannot be sent), with control characters,
# quotes, angle brackets and percent signs over-represented.
nasty = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                                   st.sampled_from(list("<>\"'`&%;,\r\n\t\x00 =?#/\\"))), max_size=300)
param_names = st.sampled_from(["a", "e", "sku", "order", "value", "currency", "url", "ref", "cb", "x"])
events = st.sampled_from(["view_home", "view_list", "view_item", "add_to_cart", "view_cart", "purchase"])


def _no_split_headers(response) -> None:
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value, (name, value)


@PROPERTY
@given(params=st.dictionaries(param_names, nasty, max_size=8), demo_event=st.booleans(), event=events)
def test_pixel_always_answers_the_gif_and_records_exactly_once(client, demo_loaded, settings, redis_client,
                                                                params, demo_event, event):
    if demo_event:
        params = {**params, "a": "demo", "e": event}
    before = redis_client.xlen(settings.stream_key)
    response = client.get("/px.gif?" + urlencode(params))
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert len(response.data) == 43 and "no-store" in response.headers["Cache-Control"]
    _no_split_headers(response)
    # Every hit from a trackable browser is either an event or a rejected hit: never dropped silently.
    assert redis_client.xlen(settings.stream_key) == before + 1
    debug = client.get("/px/debug?" + urlencode(params))
    assert debug.status_code == 200 and isinstance(debug.get_json()["ok"], bool)


@PROPERTY
@given(placement=st.one_of(nasty, st.just("demo-feed")), size=st.one_of(nasty, st.sampled_from(
    ["300x250", "728x90", "160x600", "320x50", "responsive", "0x0", "99999x1"])), fmt=st.sampled_from(["/ad", "/ad.json"]))
def test_ad_never_fails_and_never_reflects_input(client, demo_loaded, placement, size, fmt):
    response = client.get(fmt + "?" + urlencode({"p": placement, "size": size}))
    assert response.status_code in (200, 400)
    _no_split_headers(response)
    body = response.get_data(as_text=True)
    if fmt == "/ad" and response.status_code == 200:
        assert "<script" not in body.lower()
        assert "script-src" not in response.headers["Content-Security-Policy"]
    if "<" in placement or "<" in size:
        assert (placement not in body or "<" not in placement) and (size not in body or "<" not in size)


@PROPERTY
@given(token=st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=0, max_size=400))
def test_arbitrary_click_tokens_never_redirect(client, demo_loaded, token):
    response = client.get("/c/" + token)
    assert response.status_code in (400, 404)
    assert "Location" not in response.headers


@PROPERTY
@given(position=st.integers(min_value=0, max_value=400), flip=st.integers(min_value=1, max_value=255))
def test_altered_click_tokens_never_redirect(client, demo_loaded, position, flip):
    from tracker.signing import b64decode, b64encode

    client.get("/px.gif?a=demo&e=view_item&sku=D1001")
    url = client.get("/ad.json?p=demo-feed&size=300x250").get_json()["products"][0]["click_url"]
    raw = bytearray(b64decode(url.rsplit("/c/", 1)[1]))
    raw[position % len(raw)] ^= flip
    response = client.get("/c/" + b64encode(bytes(raw)))
    assert response.status_code == 400 and "Location" not in response.headers


feed_fields = st.sampled_from(["id", "title", "description", "link", "image_link", "price", "sale_price", "currency",
                               "availability", "product_type", "brand", "item_group_id", "other"])


@settings(max_examples=400, deadline=None)
@given(row=st.dictionaries(feed_fields, st.one_of(nasty, st.integers(), st.floats(), st.none()), max_size=13))
def test_feed_rows_are_either_clean_products_or_reported(row):
    product, errors = validate_row(row, 7, default_currency="CNY")
    assert (product is None) == bool(errors)
    for error in errors:
        assert error.row == 7 and error.field and error.reason
    if product is not None:
        assert product.link.startswith(("http://", "https://")) and product.price > 0
        for text in (product.title, product.description, product.brand, product.product_type):
            assert "<" not in text or ">" not in text.split("<", 1)[1]  # no tag survives
            assert not any(c in text for c in "\r\n\x00")


@PROPERTY
@given(email=nasty, password=nasty, csrf=st.booleans())
def test_login_never_fails_on_hostile_input(client, demo_loaded, email, password, csrf):
    page = client.get("/reports/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0] if csrf else "x"
    response = client.post("/reports/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code in (200, 302, 400, 401, 403, 429)
    _no_split_headers(response)
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/reports")


@PROPERTY
@given(params=st.dictionaries(st.sampled_from(["advertiser", "from", "to", "group_by", "format", "compare",
                                               "click_window", "view_window"]), nasty, max_size=8))
def test_report_api_answers_400_not_500(client, demo_loaded, runner, params):
    token = runner("create-token", "demo")[1].strip().splitlines()[-1]
    response = client.get("/api/v1/reports?" + urlencode(params), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 400, 403, 404)
    _no_split_headers(response)


@PROPERTY
@given(nonce=st.one_of(nasty, st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=64)),
       placement=st.one_of(nasty, st.sampled_from(["demo-feed", "demo-banner"])), method=st.sampled_from(["GET", "POST"]),
       advertiser=st.one_of(nasty, st.just("demo")))
def test_viewable_beacon_always_answers_and_never_fails(client, demo_loaded, nonce, placement, method, advertiser):
    response = client.open("/px/viewable?" + urlencode({"p": placement, "r": nonce, "a": advertiser}), method=method)
    assert response.status_code == 200 and response.mimetype == "image/gif" and len(response.data) == 43
    assert "no-store" in response.headers["Cache-Control"]
    _no_split_headers(response)


@PROPERTY
@given(nonce=nasty, size=st.sampled_from(["300x250", "320x50", "responsive"]))
def test_ad_request_nonce_never_breaks_the_unit(client, demo_loaded, nonce, size):
    response = client.get("/ad.json?" + urlencode({"p": "demo-feed", "size": size, "r": nonce}))
    assert response.status_code == 200
    body = response.get_json()
    assert body["products"] and len(body["impression_id"]) == 16 and body["impression_id"] != nonce
    _no_split_headers(response)
