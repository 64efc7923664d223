"""The conversion API on real servers: ``POST /api/v1/conversions/<advertiser>`` stores verified
orders with the advertiser's token, reports bad orders one by one while storing the good ones, stores
each order id once, refuses bad tokens, oversized and hostile bodies, and takes back the click id the
click redirect put on the landing URL (only if we issued it, for that advertiser)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from adserver.catalog.registry import save_advertiser
from adserver.catalog.tokens import create_token, revoke_token
from adserver.serving.click_ids import CLICK_ID_PARAM
from adserver.tracking.orders import FIELDS, MAX_BODY_BYTES, MAX_ORDERS, REQUIRED
from tests.adserver.conftest import visitor_uid
from tracker.signing import b64decode, b64encode

CHROME = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                        "Chrome/126.0 Safari/537.36"}


@pytest.fixture
def tokens(ch) -> dict[str, str]:
    save_advertiser(ch, "shop-a", "Shop A", "CNY", "Asia/Shanghai")
    save_advertiser(ch, "shop-b", "Shop B", "EUR", "Europe/Paris")
    return {"shop-a": create_token(ch, "shop-a"), "shop-b": create_token(ch, "shop-b")}


def order(order_id: str, value=129.9, currency: str = "CNY", skus=("A1",), **extra) -> dict:
    return {"order_id": order_id, "value": value, "currency": currency, "skus": list(skus), **extra}


def post(client, advertiser: str, body, token: str | None):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post(f"/api/v1/conversions/{advertiser}", data=data, headers=headers,
                       content_type="application/json")


def stored(ch, advertiser: str = "shop-a") -> dict[str, tuple]:
    """Verified purchases of ``advertiser``: order id -> (value, currency, skus, uid, impression id)."""
    rows = ch.execute("SELECT order_id, value, currency, skus, uid, impression_id, verified, ts FROM events "
                      "WHERE advertiser = %(a)s AND event = 'purchase' ORDER BY order_id", {"a": advertiser})
    assert all(r[6] == 1 for r in rows)
    assert len({r[0] for r in rows}) == len(rows), "an order id stored twice"
    return {r[0]: r[1:6] for r in rows}


def errors_by_index(body: dict) -> dict[int, set[tuple[str, str]]]:
    out: dict[int, set[tuple[str, str]]] = {}
    for e in body["errors"]:
        out.setdefault(e["index"], set()).add((e["field"], e["reason"]))
    return out


def test_a_batch_is_stored_as_verified_purchases(client, ch, tokens):
    ts = int(time.time()) - 3600
    iso = datetime.fromtimestamp(ts - 60, timezone(timedelta(hours=8))).isoformat()  # ISO 8601 with an offset
    batch = {"orders": [order("A-1001", 129.9, skus=["A1", "B2"], ts=ts), order("A-1002", "59.50", "USD"),
                        order("A-1003", 0, ts=iso)]}
    response = post(client, "shop-a", batch, tokens["shop-a"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["accepted"], body["duplicates"], body["rejected"], body["errors"]) == (3, 0, 0, [])
    assert [(o["index"], o["order_id"], o["status"]) for o in body["orders"]] == [
        (0, "A-1001", "accepted"), (1, "A-1002", "accepted"), (2, "A-1003", "accepted")]
    rows = stored(ch)
    assert rows["A-1001"] == (129.9, "CNY", ["A1", "B2"], "", "")
    assert rows["A-1002"][:2] == (59.5, "USD")
    times = dict(ch.execute("SELECT order_id, toUInt32(ts) FROM events WHERE order_id IN ('A-1001', 'A-1003')"))
    assert times == {"A-1001": ts, "A-1003": ts - 60}
    assert response.headers["Cache-Control"] == "no-store"


def test_bad_orders_are_reported_with_reasons_and_good_ones_stored(client, ch, tokens):
    now = int(time.time())
    batch = {"orders": [
        order("ok-1"),
        order("neg", -5),
        order("cur", currency="XYZ"),
        {"order_id": "noskus", "value": 1, "currency": "CNY"},
        order("extra", coupon="FREE"),
        order("bool", True),
        order("big", 1e15),
        order("ms", ts=now * 1000),
        order("old", ts=now - 200 * 86400),
        order("bad'quote"),
        order("sku", skus=["has space"]),
        order("clk", click_id="not-a-click-id"),
        "not an object",
        order("ok-2", "12.5"),
    ]}
    response = post(client, "shop-a", batch, tokens["shop-a"])
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["rejected"]) == (2, 12)
    assert errors_by_index(body) == {
        1: {("value", "negative")}, 2: {("currency", "unknown_currency")}, 3: {("skus", "missing")},
        4: {("coupon", "unknown_field")}, 5: {("value", "not_a_number")}, 6: {("value", "too_large")},
        7: {("ts", "in_the_future")}, 8: {("ts", "too_old")}, 9: {("order_id", "invalid")},
        10: {("skus", "invalid_sku")}, 11: {("click_id", "invalid_click_id")}, 12: {("", "not_an_object")},
    }
    assert next(e for e in body["errors"] if e["index"] == 1)["order_id"] == "neg"
    assert all(e["message"] for e in body["errors"])
    assert [o["status"] for o in body["orders"]] == ["accepted", *["rejected"] * 12, "accepted"]
    assert set(stored(ch)) == {"ok-1", "ok-2"}


def test_a_batch_without_any_valid_order_is_a_400_that_lists_every_problem(client, ch, tokens):
    response = post(client, "shop-a", {"orders": [order("a", -1), order("b", currency="cny")]}, tokens["shop-a"])
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "no_valid_order" and body["rejected"] == 2
    assert errors_by_index(body) == {0: {("value", "negative")}, 1: {("currency", "unknown_currency")}}
    assert stored(ch) == {}


def test_resending_a_batch_stores_each_order_once(client, ch, tokens):
    batch = {"orders": [order("R-1", 10), order("R-2", 20), order("R-1", 99)]}  # R-1 twice: the first counts
    first = post(client, "shop-a", batch, tokens["shop-a"]).get_json()
    assert [o["status"] for o in first["orders"]] == ["accepted", "accepted", "duplicate"]
    again = post(client, "shop-a", batch, tokens["shop-a"])
    assert again.status_code == 200
    body = again.get_json()
    assert (body["accepted"], body["duplicates"]) == (0, 3)
    assert [o["status"] for o in body["orders"]] == ["duplicate"] * 3
    assert {k: v[0] for k, v in stored(ch).items()} == {"R-1": 10.0, "R-2": 20.0}
    # the same order id of another advertiser is another order
    assert post(client, "shop-b", {"orders": [order("R-1", currency="EUR")]}, tokens["shop-b"]).get_json()[
        "accepted"] == 1


def test_concurrent_identical_batches_store_each_order_once(app, ch, tokens):
    batch = {"orders": [order(f"C-{i}", i) for i in range(40)]}
    answers: list[dict] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(post(client, "shop-a", batch, tokens["shop-a"]).get_json())

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and sum(a["accepted"] for a in answers) == 40
    assert len(stored(ch)) == 40


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ads_" + "x" * 43, "Basic dXNlcjpwYXNz", "Bearer ' OR 1=1 --", "bearer  ",
])
def test_a_missing_or_wrong_token_is_401(client, ch, tokens, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.post("/api/v1/conversions/shop-a", data=json.dumps({"orders": [order("T-1")]}),
                           headers=headers, content_type="application/json")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(ch) == {}


def test_a_revoked_token_is_401(client, ch, tokens):
    assert revoke_token(ch, tokens["shop-a"])
    assert post(client, "shop-a", {"orders": [order("T-1")]}, tokens["shop-a"]).status_code == 401
    assert stored(ch) == {}


def test_another_advertisers_token_is_403(client, ch, tokens):
    response = post(client, "shop-a", {"orders": [order("T-1")]}, tokens["shop-b"])
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    assert stored(ch) == {} and stored(ch, "shop-b") == {}


@pytest.mark.parametrize("advertiser", ["BAD..ID", "a" * 65, "shop-a%00"])
def test_a_malformed_advertiser_is_404(client, ch, tokens, advertiser):
    assert post(client, advertiser, {"orders": [order("T-1")]}, tokens["shop-a"]).status_code == 404


def test_oversized_batches_are_refused_and_nothing_is_stored(client, ch, tokens):
    too_many = {"orders": [order(f"N-{i}") for i in range(MAX_ORDERS + 1)]}
    response = post(client, "shop-a", too_many, tokens["shop-a"])
    assert response.status_code == 413 and response.get_json()["error"] == "too_many_orders"
    padding = "x" * (MAX_BODY_BYTES + 1)
    response = post(client, "shop-a", '{"orders": [], "pad": "' + padding + '"}', tokens["shop-a"])
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert stored(ch) == {}


def test_a_full_batch_of_orders_fits(client, ch, tokens):
    batch = {"orders": [order(f"F-{i:04d}", i, skus=[f"SKU-{i}", f"SKU-{i + 1}"]) for i in range(MAX_ORDERS)]}
    data = json.dumps(batch)
    assert len(data) > 64 * 1024
    response = post(client, "shop-a", data, tokens["shop-a"])
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.get_json()["accepted"] == MAX_ORDERS
    assert len(stored(ch)) == MAX_ORDERS


@pytest.mark.parametrize("body, status, code", [
    (b"", 400, "empty_body"),
    (b"order_id=1&value=2", 400, "bad_json"),
    (b"\xff\xfe{not utf-8", 400, "bad_json"),
    (b'{"orders": [', 400, "bad_json"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "bad_json"),
    (b'{"orders": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "bad_json"),
    (b"NaN", 400, "bad_batch"),
    (b'[{"order_id": "x"}]', 400, "bad_batch"),
    (b'{"orders": {"order_id": "x"}}', 400, "bad_batch"),
    (b'{"orders": [], "extra": 1}', 400, "bad_batch"),
    (b'{"orders": []}', 400, "empty_batch"),
])
def test_hostile_bodies_are_refused_whole(client, ch, tokens, body, status, code):
    response = post(client, "shop-a", body, tokens["shop-a"])
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == code
    assert stored(ch) == {}


def test_hostile_values_are_reported_per_order(client, ch, tokens):
    raw = ('{"orders": ['
           '{"order_id": "nan", "value": NaN, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "inf", "value": -Infinity, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "huge", "value": 1' + "0" * 5000 + ', "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "tiny", "value": 1e-999999999, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "hugets", "value": 1, "currency": "CNY", "skus": ["A"], "ts": 1e999999},'
           '{"order_id": "\\ud800", "value": 1, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "' + "x" * 101 + '", "value": 1, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": "many", "value": 1, "currency": "CNY", "skus": ' + json.dumps([f"S{i}" for i in range(51)]) + '},'
           '{"order_id": "<script>", "value": 1, "currency": "CNY", "skus": ["A"]},'
           '{"order_id": 12345, "value": 7, "currency": "CNY", "skus": ["A"]}'
           ']}')
    response = post(client, "shop-a", raw, tokens["shop-a"])
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert errors_by_index(body) == {
        0: {("value", "not_finite")}, 1: {("value", "not_finite")}, 2: {("value", "too_large")},
        4: {("ts", "in_the_future")}, 5: {("order_id", "invalid")}, 6: {("order_id", "invalid")},
        7: {("skus", "too_many")}, 8: {("order_id", "invalid")},
    }
    assert stored(ch) == {"tiny": (0.0, "CNY", ["A"], "", ""), "12345": (7.0, "CNY", ["A"], "", "")}


def test_sql_looking_order_ids_are_stored_as_data(client, ch, tokens):
    ids = ["1 OR 1=1; DROP TABLE events --", "x); SELECT * FROM api_tokens; --", "%(a)s", "{advertiser}"]
    response = post(client, "shop-a", {"orders": [order(i) for i in ids] + [order("x' OR '1'='1")]},
                    tokens["shop-a"])
    assert response.status_code == 200
    assert errors_by_index(response.get_json()) == {4: {("order_id", "invalid")}}
    assert set(stored(ch)) == set(ids)
    assert post(client, "shop-a", {"orders": [order(i) for i in ids]}, tokens["shop-a"]).get_json()["duplicates"] == 4


def click_through(client) -> tuple[str, str, str]:
    """A visitor views a product, gets an ad and clicks it: (uid, impression id, click id)."""
    client.get("/px.gif?a=demo&e=view_item&sku=D1004", headers=CHROME)
    ad = client.get("/ad.json?p=demo-feed&size=300x250", headers=CHROME).get_json()
    response = client.get(urlsplit(ad["products"][0]["click_url"]).path, headers=CHROME)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["utm_source"] == ["adserver"]
    return visitor_uid(client), ad["impression_id"], query[CLICK_ID_PARAM][0]


def test_the_click_redirect_carries_a_click_id_the_api_accepts(client, ch, demo_loaded):
    uid, impression_id, click_id = click_through(client)
    assert uid not in click_id and b64decode(uid) not in b64decode(click_id)  # the visitor id is not readable
    token = create_token(ch, "demo")
    response = post(client, "demo", {"orders": [order("D-1", 88, skus=["D1004"], click_id=click_id)]}, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["accepted"] == 1
    value, currency, skus, stored_uid, stored_impression = stored(ch, "demo")["D-1"]
    assert (stored_uid, stored_impression) == (uid, impression_id)
    _, _, second = click_through(client)
    assert second != click_id  # every click id is new, even for the same visitor


def test_forged_and_foreign_click_ids_are_rejected(app, client, ch, demo_loaded):
    _, impression_id, click_id = click_through(client)
    raw = b64decode(click_id)
    flipped = [b64encode(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]) for i in range(len(raw))]
    foreign = app.extensions["adserver"].click_ids.issue("outdoor", impression_id, time.time(), None)
    forged = [*flipped, foreign, click_id[:-4], click_id + "AAAA", "", "A" * 71, 12345, ["x"], {"a": 1}]
    token = create_token(ch, "demo")
    batch = {"orders": [order(f"F-{n}", click_id=c) for n, c in enumerate(forged)]}
    response = post(client, "demo", batch, token)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert errors_by_index(response.get_json()) == {n: {("click_id", "invalid_click_id")} for n in range(len(forged))}
    assert stored(ch, "demo") == {}


def test_without_redis_nothing_is_stored_and_the_store_is_told_to_resend(tmp_path, ch, tokens, clickhouse_url):
    from adserver import create_app
    from tests.adserver.test_redis_faults import _free_port
    from tests.conftest import server_settings

    app = create_app(server_settings(tmp_path / "var", f"redis://127.0.0.1:{_free_port()}/0", clickhouse_url))
    try:
        response = post(app.test_client(), "shop-a", {"orders": [order("Z-1")]}, tokens["shop-a"])
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.get_json()["error"] == "unavailable"
        assert stored(ch) == {}
    finally:
        app.extensions["adserver"].close()


def test_the_openapi_document_describes_the_conversion_api(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    operation = doc["paths"]["/api/v1/conversions/{advertiser}"]["post"]
    assert {"200", "400", "401", "403", "413", "503"} <= set(operation["responses"])
    order_schema = doc["components"]["schemas"]["ConversionOrder"]
    assert set(order_schema["properties"]) == set(FIELDS) and set(order_schema["required"]) == set(REQUIRED)
    assert doc["components"]["schemas"]["ConversionBatch"]["properties"]["orders"]["maxItems"] == MAX_ORDERS
