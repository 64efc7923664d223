"""Feed upload over HTTP with an advertiser token, fetch from a store's URL, and API tokens."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.adserver.conftest import feed_bytes, product


@pytest.fixture
def shop(create_advertiser) -> str:
    create_advertiser("shop-a")
    create_advertiser("shop-b")
    return "shop-a"


def _token(runner, advertiser: str) -> str:
    code, out = runner("create-token", advertiser)
    assert code == 0, out
    return out.strip().splitlines()[-1]


def _skus(ch, advertiser: str) -> list[str]:
    rows = ch.execute("SELECT sku FROM products FINAL WHERE advertiser = %(a)s AND deleted = 0 ORDER BY sku",
                      {"a": advertiser})
    return [r[0] for r in rows]


def test_token_is_printed_last_and_stored_only_hashed(runner, shop, ch):
    token = _token(runner, shop)
    assert token.startswith("ads_") and len(token) == 47
    stored = ch.execute("SELECT token_hash, advertiser FROM api_tokens")
    assert len(stored) == 1 and stored[0][1] == shop and token not in stored[0][0]


def test_upload_with_token_imports_and_reports(client, runner, shop, ch):
    token = _token(runner, shop)
    rows = [product("A1", "青瓷茶杯 Celadon Cup"), product("A2", price="abc"), product("A3")]
    resp = client.put(f"/api/v1/feeds/{shop}?format=csv", data=feed_bytes(rows),
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    assert report["accepted"] == 2 and report["rejected"] == 1
    assert report["errors"] == [{"row": 3, "field": "price", "reason": report["errors"][0]["reason"]}]
    assert _skus(ch, shop) == ["A1", "A3"]
    # A full feed without A1 removes it.
    resp = client.put(f"/api/v1/feeds/{shop}?full=1", data=feed_bytes([product("A3")], "json"),
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.get_json()["removed"] == 1
    assert _skus(ch, shop) == ["A3"]


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer ads_" + "x" * 43, "Basic abc", "Bearer ads_short",
                                    "Bearer " + "ads_" + "y" * 5000])
def test_upload_without_a_valid_token_is_refused(client, shop, ch, header):
    headers = {"Authorization": header} if header is not None else {}
    resp = client.put(f"/api/v1/feeds/{shop}", data=feed_bytes([product("A1")]), headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "unauthorized"
    assert _skus(ch, shop) == []


def test_token_of_another_advertiser_is_forbidden(client, runner, shop, ch):
    token_b = _token(runner, "shop-b")
    resp = client.put(f"/api/v1/feeds/{shop}", data=feed_bytes([product("A1")]),
                      headers={"Authorization": f"Bearer {token_b}"})
    assert resp.status_code == 403
    assert _skus(ch, shop) == []


def test_revoked_token_stops_working(client, runner, shop):
    token = _token(runner, shop)
    code, out = runner("revoke-token", stdin=token + "\n")
    assert code == 0, out
    resp = client.put(f"/api/v1/feeds/{shop}", data=feed_bytes([product("A1")]),
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


@pytest.mark.parametrize(("body", "query", "code"), [
    (b"", "", "empty_feed"),
    (b"{broken json", "?format=json", "feed_error"),
    (b"name,price\nx,1\n", "?format=csv", "feed_error"),
    (b"id,title\n", "?format=yaml", "bad_format"),
    (b"id,title\n", "?format=xml", "feed_error"),
])
def test_bad_uploads_get_clear_400s_and_keep_the_catalog(client, runner, shop, ch, body, query, code):
    token = _token(runner, shop)
    ok = client.put(f"/api/v1/feeds/{shop}", data=feed_bytes([product("K1")]),
                    headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    resp = client.put(f"/api/v1/feeds/{shop}{query}", data=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400
    assert resp.get_json()["error"] == code and resp.get_json()["message"]
    assert _skus(ch, shop) == ["K1"]


def test_upload_to_an_invalid_advertiser_path(client):
    resp = client.put("/api/v1/feeds/BAD..ID", data=b"x", headers={"Authorization": "Bearer x"})
    assert resp.status_code == 404


class _FeedHandler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, ctype, body = self.routes.get(self.path, (404, "text/plain", b"nope"))
        self.send_response(status)
        if status in (301, 302):
            self.send_header("Location", body.decode())
            body = b""
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def feed_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.settings_env(ADSERVER_FETCH_ALLOW_LOOPBACK="1")
def test_fetch_feed_from_the_store_url(runner, shop, ch, feed_server):
    _FeedHandler.routes = {
        "/feed.json": (200, "application/json", feed_bytes([product("F1", "跑鞋 Running Shoe"), product("F2")], "json")),
        "/moved": (302, "text/plain", b"/feed.json"),
        "/evil": (302, "text/plain", b"file:///etc/passwd"),
        "/ftp": (302, "text/plain", b"ftp://127.0.0.1/feed.csv"),
    }
    code, out = runner("fetch-feed", shop, f"{feed_server}/moved")
    assert code == 0, out
    assert "imported 2 products" in out
    assert _skus(ch, shop) == ["F1", "F2"]
    code, out = runner("fetch-feed", shop, f"{feed_server}/evil")
    assert code == 1 and "error (scheme): could not fetch the feed" in out and "root:" not in out
    code, out = runner("fetch-feed", shop, f"{feed_server}/ftp")
    assert code == 1 and "error (scheme)" in out
    code, out = runner("fetch-feed", shop, f"{feed_server}/missing")
    assert code == 1 and "error (http_status): could not fetch" in out
    code, out = runner("fetch-feed", shop, "file:///etc/passwd")
    assert code == 1 and "only http and https" in out
    assert _skus(ch, shop) == ["F1", "F2"]
