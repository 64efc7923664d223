"""fetch-feed on a schedule: conditional requests (ETag / Last-Modified per advertiser and URL), the safe
fetcher's rules, and validators kept only for feeds that were imported."""

from __future__ import annotations

import configparser
import gzip
from pathlib import Path

import pytest

from adserver.catalog.feed_sources import Validators, _header_value, load_validators
from adserver.catalog.storage import catalog_version_key, load_products
from tests.adserver.conftest import feed_bytes, product

ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = pytest.mark.settings_env(ADSERVER_FETCH_ALLOW_LOOPBACK="1")


class Feed:
    """A store's feed URL answering conditional requests as a web server does."""

    def __init__(self, server, path: str = "/feed.csv") -> None:
        self.server, self.path = server, path
        self.set(feed_bytes([product("F1"), product("F2")]), etag='"v1"', modified="Mon, 01 Dec 2025 10:00:00 GMT")
        server.routes[path] = self.answer

    def set(self, body: bytes, etag: str | None = None, modified: str | None = None) -> None:
        self.body, self.etag, self.modified = body, etag, modified

    def answer(self, req) -> None:
        unchanged = ((self.etag and req.headers.get("If-None-Match") == self.etag)
                     or (not self.etag and self.modified and req.headers.get("If-Modified-Since") == self.modified))
        req.send_response(304 if unchanged else 200)
        if self.etag:
            req.send_header("ETag", self.etag)
        if self.modified:
            req.send_header("Last-Modified", self.modified)
        body = b"" if unchanged else self.body
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    @property
    def url(self) -> str:
        return self.server.url(self.path)

    def sent(self) -> dict[str, str]:
        """Headers of the last request."""
        return self.server.requests[-1][1]


@pytest.fixture
def shop(create_advertiser) -> str:
    create_advertiser("shop-f")
    return "shop-f"


def skus(ch, advertiser: str = "shop-f") -> list[str]:
    return sorted(load_products(ch, advertiser))


@LOOPBACK
def test_an_unchanged_feed_is_not_imported_again(runner, shop, ch, redis_client, local_server):
    feed = Feed(local_server)
    code, out = runner("fetch-feed", shop, feed.url)
    assert code == 0 and "imported 2 products" in out, out
    assert "if-none-match" not in feed.sent()
    assert load_validators(ch, shop, feed.url) == Validators('"v1"', "Mon, 01 Dec 2025 10:00:00 GMT")
    version = redis_client.get(catalog_version_key(shop))
    rows = ch.execute("SELECT count() FROM products")[0][0]

    code, out = runner("fetch-feed", shop, feed.url)
    assert code == 0 and "not modified" in out and "imported" not in out.replace("nothing imported", ""), out
    assert feed.sent()["if-none-match"] == '"v1"'
    assert feed.sent()["if-modified-since"] == "Mon, 01 Dec 2025 10:00:00 GMT"
    assert redis_client.get(catalog_version_key(shop)) == version
    assert ch.execute("SELECT count() FROM products")[0][0] == rows

    feed.set(feed_bytes([product("F1"), product("F2"), product("F3")]), etag='"v2"')
    code, out = runner("fetch-feed", shop, feed.url)
    assert code == 0 and "imported 3 products" in out, out
    assert load_validators(ch, shop, feed.url) == Validators('"v2"', "")
    assert skus(ch) == ["F1", "F2", "F3"]


@LOOPBACK
def test_last_modified_alone_and_unconditional_runs(runner, shop, ch, local_server):
    feed = Feed(local_server)
    feed.set(feed.body, etag=None, modified="Tue, 02 Dec 2025 08:00:00 GMT")
    assert runner("fetch-feed", shop, feed.url)[0] == 0
    code, out = runner("fetch-feed", shop, feed.url)
    assert "not modified" in out and feed.sent()["if-modified-since"] == "Tue, 02 Dec 2025 08:00:00 GMT"
    code, out = runner("fetch-feed", shop, feed.url, "--unconditional")
    assert code == 0 and "imported 2 products" in out
    assert "if-modified-since" not in feed.sent() and "if-none-match" not in feed.sent()


@LOOPBACK
def test_validators_belong_to_one_advertiser_and_url(runner, shop, create_advertiser, ch, local_server):
    create_advertiser("shop-g")
    feed = Feed(local_server)
    other = Feed(local_server, "/other.csv")
    assert runner("fetch-feed", shop, feed.url)[0] == 0
    code, out = runner("fetch-feed", "shop-g", feed.url)
    assert code == 0 and "imported 2 products" in out and "if-none-match" not in feed.sent()
    code, out = runner("fetch-feed", shop, other.url)
    assert code == 0 and "imported 2 products" in out and "if-none-match" not in other.sent()


@LOOPBACK
def test_a_refused_feed_is_fetched_and_checked_again(runner, shop, ch, local_server):
    """Validators are kept only once a feed was imported: a feed the drop guard refused is not
    mistaken for "not modified" on the next run."""
    feed = Feed(local_server)
    feed.set(feed_bytes([product(f"F{i}") for i in range(10)]), etag='"ten"')
    assert runner("fetch-feed", shop, feed.url, "--full")[0] == 0
    feed.set(feed_bytes([product("F0")]), etag='"cut"')
    code, out = runner("fetch-feed", shop, feed.url, "--full")
    assert code == 1 and "would remove 9 of the 10" in out
    assert load_validators(ch, shop, feed.url).etag == '"ten"'
    code, out = runner("fetch-feed", shop, feed.url, "--full")
    assert code == 1 and "would remove 9" in out and feed.sent()["if-none-match"] == '"ten"'
    code, out = runner("fetch-feed", shop, feed.url, "--full", "--force")
    assert code == 0 and "removed 9" in out
    assert load_validators(ch, shop, feed.url).etag == '"cut"' and skus(ch) == ["F0"]


@LOOPBACK
def test_compressed_merchant_xml_from_a_url(runner, shop, ch, local_server):
    xml = (ROOT / "docs" / "examples" / "merchant-feed.xml").read_bytes()
    local_server.body("/feed.xml.gz", gzip.compress(xml), "application/gzip")
    code, out = runner("fetch-feed", shop, local_server.url("/feed.xml.gz"))
    assert code == 0 and "imported 4 products, rejected 2" in out, out
    assert skus(ch) == ["RUN-100", "RUN-101", "TEA-001", "TEA-002"]


def test_loopback_and_private_addresses_are_refused_on_a_server(runner, shop, ch, local_server):
    feed = Feed(local_server)
    code, out = runner("fetch-feed", shop, feed.url)
    assert code == 1 and "error (private_address)" in out
    code, out = runner("fetch-feed", shop, "http://169.254.169.254/latest/meta-data/")
    assert code == 1 and "error (private_address)" in out
    assert local_server.requests == [] and skus(ch) == []


@LOOPBACK
def test_redirects_stay_on_the_url_host_or_the_landing_domains(runner, shop, ch, local_server):
    Feed(local_server)
    local_server.redirect("/moved", "/feed.csv")
    local_server.redirect("/away", f"http://localhost:{local_server.port}/feed.csv")
    code, out = runner("fetch-feed", shop, local_server.url("/moved"))
    assert code == 0 and "imported 2 products" in out, out
    code, out = runner("fetch-feed", shop, local_server.url("/away"), "--unconditional")
    assert code == 1 and "error (domain)" in out


@pytest.mark.parametrize("url", ["", "not a url", "javascript:alert(1)", "http://", "http://[::1", "x" * 5000])
def test_garbage_urls_and_advertisers_get_clear_errors(runner, shop, ch, url):
    code, out = runner("fetch-feed", shop, url)
    assert code == 1 and out.startswith("error (") and "could not fetch the feed" in out
    code, out = runner("fetch-feed", "no-such-shop", "https://shop.example/feed.csv")
    assert code == 1 and "error (unknown_advertiser)" in out
    code, out = runner("fetch-feed", "../../etc", "https://shop.example/feed.csv")
    assert code == 1 and "error (unknown_advertiser)" in out
    assert skus(ch) == []


@pytest.mark.parametrize(("value", "kept"), [
    ('"v1"', '"v1"'), ('W/"abc-123"', 'W/"abc-123"'), ("  spaced  ", "spaced"), (None, ""),
    ('"a"\r\nX-Evil: 1', ""), ('"é"', ""), ('"' + "x" * 600 + '"', ""),
])
def test_only_sane_validators_are_kept(value, kept):
    assert _header_value(value) == kept


def test_the_systemd_units_run_fetch_feed_on_a_timer():
    service = configparser.ConfigParser(interpolation=None, strict=False)
    service.read(ROOT / "deploy" / "systemd" / "adserver-feed@.service")
    assert "fetch-feed %i" in service["Service"]["ExecStart"]
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["User"] == "adserver"
    timer = configparser.ConfigParser(interpolation=None, strict=False)
    timer.read(ROOT / "deploy" / "systemd" / "adserver-feed@.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
