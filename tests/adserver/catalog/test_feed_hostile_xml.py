"""Hostile XML and gzip feeds: each is refused with a clear error, nothing is imported and nothing is read.

The classic payloads: an external entity reading /etc/passwd, an external DTD and a parameter entity
fetched from a URL (a server here counts the requests: there must be none), billion laughs, quadratic
blowup, and a gzip bomb. Through the CLI and the HTTP upload, the catalog stays as it was.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from adserver.catalog.inflate import MAX_INFLATED_BYTES, inflate
from adserver.catalog.storage import load_products
from tests.adserver.conftest import feed_bytes, product
from tracker.errors import FeedError

NS = 'xmlns:g="http://base.google.com/ns/1.0"'
PASSWD = Path("/etc/passwd").read_text().splitlines()[0]  # "root:x:0:0:..."


def _item(title: str) -> str:
    return (f"<item><g:id>X1</g:id><g:title>{title}</g:title><g:link>https://shop.example/p/X1</g:link>"
            "<g:price>1.00 CNY</g:price></item>")


def _rss(doctype: str, title: str) -> bytes:
    return f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0" {NS}><channel>{_item(title)}</channel></rss>'.encode()


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        body = b'<!ENTITY leak SYSTEM "file:///etc/passwd">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def dtd_server() -> Iterator[str]:
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes, made without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(inflated // len(block))]
    return b"".join(parts) + packer.flush()


def payloads(url: str) -> dict[str, bytes]:
    laughs = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
    return {
        "xxe_file": _rss('<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
        "external_dtd": _rss(f'<!DOCTYPE rss SYSTEM "{url}/evil.dtd">', "Title"),
        "parameter_entity": _rss(f'<!DOCTYPE rss [<!ENTITY % ext SYSTEM "{url}/evil.dtd"> %ext;]>', "&leak;"),
        "billion_laughs": _rss(f"<!DOCTYPE rss [{laughs}]>", "&lol9;"),
        "quadratic_blowup": _rss(f'<!DOCTYPE rss [<!ENTITY big "{"B" * 50_000}">]>', "&big;" * 20_000),
        "gzip_bomb": _gzip_bomb(MAX_INFLATED_BYTES + 8 * 1024 * 1024),
    }


NAMES = ["xxe_file", "external_dtd", "parameter_entity", "billion_laughs", "quadratic_blowup", "gzip_bomb"]


def _catalog(ch, advertiser: str) -> dict:
    return load_products(ch, advertiser)


@pytest.mark.parametrize("name", NAMES)
def test_hostile_feed_through_the_cli(name, runner, create_advertiser, import_feed, ch, dtd_server, tmp_path):
    create_advertiser("shop-h")
    code, out = import_feed("shop-h", [product("K1"), product("K2")])
    assert code == 0, out
    before = _catalog(ch, "shop-h")
    path = tmp_path / "feed.xml"
    path.write_bytes(payloads(dtd_server)[name])
    for extra in ([], ["--full"], ["--full", "--force"]):
        code, out = runner("import-feed", "shop-h", str(path), *extra)
        assert code == 1
        assert "nothing imported" in out
        assert ("gzip" in out or "inflates" in out) if name == "gzip_bomb" else "DTD" in out
        assert PASSWD not in out and "root:" not in out and "lol" not in out and "BBBB" not in out
    assert _Counter.hits == []
    assert _catalog(ch, "shop-h") == before


@pytest.mark.parametrize("name", NAMES)
def test_hostile_feed_through_the_http_upload(name, client, runner, create_advertiser, ch, dtd_server):
    create_advertiser("shop-h")
    code, out = runner("create-token", "shop-h")
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    assert client.put("/api/v1/feeds/shop-h", data=feed_bytes([product("K1")]), headers=headers).status_code == 200
    before = _catalog(ch, "shop-h")
    resp = client.put("/api/v1/feeds/shop-h?full=1", data=payloads(dtd_server)[name], headers=headers)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == ("feed_too_large" if name == "gzip_bomb" else "unsafe_xml") and body["message"]
    assert PASSWD not in resp.get_data(as_text=True)
    assert _Counter.hits == []
    assert _catalog(ch, "shop-h") == before


def test_a_gzip_bomb_is_refused_before_it_is_inflated_whole():
    """Inflating stops at the cap: memory holds about the cap, not the bomb's 64 MB."""
    bomb = _gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(FeedError, match="inflates to more than 1 MB"):
            inflate(bomb, limit=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


def test_inflate_leaves_plain_feeds_alone_and_takes_one_at_the_cap():
    data = feed_bytes([product("Z1")])
    assert inflate(data) is data
    exact = b"x" * 4096
    assert inflate(gzip.compress(exact), limit=4096) == exact
    with pytest.raises(FeedError, match="more than"):
        inflate(gzip.compress(exact + b"x"), limit=4096)
