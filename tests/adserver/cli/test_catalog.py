"""Catalog commands: advertisers, placements, feeds from files, API tokens (feed contents and the
fetch-feed URL rules: tests/adserver/catalog)."""

from __future__ import annotations

import pytest

from tests.adserver.conftest import feed_bytes, product


def test_create_advertiser_prints_what_it_stored(runner, ch):
    code, out = runner("create-advertiser", "shop-a", "--name", "Shop A", "--currency", "EUR",
                       "--timezone", "Asia/Tokyo")
    assert code == 0, out
    assert out.splitlines()[0] == "advertiser shop-a (Shop A, EUR, Asia/Tokyo)"
    assert out.splitlines()[1].startswith("landing domains: none (")
    assert ch.execute("SELECT name, currency, timezone FROM advertisers FINAL WHERE id = 'shop-a'") == [
        ("Shop A", "EUR", "Asia/Tokyo")]
    code, out = runner("create-advertiser", "shop-b")
    assert out.splitlines()[0] == "advertiser shop-b (shop-b, CNY, UTC)"


@pytest.mark.parametrize("argv,message", [
    (("shop-a", "--timezone", "Mars/Olympus"), "time zone"),
    (("shop-a", "--currency", "DOGE"), "unknown currency 'DOGE'"),
    (("caf\udce9",), "error (invalid_advertiser)"),  # an argument that was not valid UTF-8
    (("../../etc",), "error (invalid_advertiser)"),
    (("",), "error (invalid_advertiser)"),
])
def test_create_advertiser_refuses_bad_values(runner, ch, argv, message):
    code, out = runner("create-advertiser", *argv)
    assert code == 1 and message in out, out
    assert ch.execute("SELECT count() FROM advertisers") == [(0,)]


def test_create_placement_takes_repeated_sizes_and_advertisers(runner, ch):
    runner("create-advertiser", "shop-a")
    runner("create-advertiser", "shop-b")
    code, out = runner("create-placement", "slot", "--site", "news.example", "--size", "300x250", "--size",
                       "728x90", "--advertiser", "shop-a", "--advertiser", "shop-b", "--floor", "1.5")
    assert code == 0, out
    assert out == "placement slot on news.example\n"
    row = ch.execute("SELECT site, sizes, advertisers, floor FROM placements FINAL WHERE id = 'slot'")
    assert row == [("news.example", ["300x250", "728x90"], ["shop-a", "shop-b"], 1.5)]
    code, out = runner("create-placement", "slot2", "--site", "news.example", "--floor", "-1")
    assert code == 1 and "floor must be between" in out


def test_import_feed_reports_rows_and_exit_status(runner, ch, tmp_path):
    runner("create-advertiser", "shop-a", "--domain", "shop.example")
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes([product("A1"), product("A2", price="free")]))
    code, out = runner("import-feed", "shop-a", str(path))
    assert code == 0, out
    assert "row 3: price:" in out
    assert out.splitlines()[-1] == "imported 1 products, rejected 1 rows/fields, removed 0"
    tsv = tmp_path / "feed.data"
    tsv.write_bytes(feed_bytes([product("A3")], "tsv"))
    code, out = runner("import-feed", "shop-a", str(tsv), "--format", "tsv", "--full", "--force")  # 1 of 1 removed
    assert code == 0, out
    assert out.splitlines()[-1] == "imported 1 products, rejected 0 rows/fields, removed 1"


def test_import_feed_of_a_non_utf8_file_rejects_its_rows(runner, ch, tmp_path):
    runner("create-advertiser", "shop-a", "--domain", "shop.example")
    path = tmp_path / "latin1.csv"
    path.write_bytes(feed_bytes([product("A1", title="Café crème")]).decode().encode("latin-1"))
    code, out = runner("import-feed", "shop-a", str(path))
    assert code == 1
    assert "row 2: title: invalid UTF-8" in out and "error (feed_error)" in out
    assert ch.execute("SELECT count() FROM products") == [(0,)]


def test_import_feed_needs_a_file(runner, ch, tmp_path):
    runner("create-advertiser", "shop-a")
    code, out = runner("import-feed", "shop-a", str(tmp_path))
    assert code == 2 and out == f"error: {tmp_path} is not a file\n"
    code, out = runner("import-feed", "shop-a")
    assert code == 2 and "Missing argument 'FILE'" in out


def test_create_token_prints_the_token_last_and_revoke_reads_stdin(runner, ch):
    runner("create-advertiser", "shop-a")
    code, out = runner("create-token", "shop-a", "--label", "feed uploads")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == "API token for shop-a (shown once, store it now):"
    token = lines[-1]
    assert len(token) >= 32 and " " not in token
    assert ch.execute("SELECT advertiser, label FROM api_tokens") == [("shop-a", "feed uploads")]
    assert runner("revoke-token", stdin=token + "\n") == (0, "token revoked\n")
    assert runner("revoke-token", stdin=token + "\n") == (1, "no such token\n")


@pytest.mark.parametrize("stdin", [None, "", "\n", "not-a-token\n"])
def test_revoke_token_refuses_missing_or_unknown_tokens(runner, ch, stdin):
    assert runner("revoke-token", stdin=stdin) == (1, "no such token\n")


def _domains(ch, advertiser: str) -> list[str]:
    return ch.execute("SELECT domains FROM advertisers FINAL WHERE id = %(a)s", {"a": advertiser})[0][0]


def test_create_advertiser_declares_landing_domains(runner, ch):
    code, out = runner("create-advertiser", "shop-a", "--domain", "Shop.Example", "--domain", "www.other.example.",
                       "--domain", "127.0.0.1", "--domain", "shop.example")
    assert code == 0, out
    assert _domains(ch, "shop-a") == ["127.0.0.1", "shop.example", "www.other.example"]
    assert "landing domains: 127.0.0.1, shop.example, www.other.example" in out


def test_create_advertiser_adds_domains_to_an_existing_advertiser_and_keeps_the_rest(runner, ch):
    code, out = runner("create-advertiser", "shop-a", "--name", "Shop A", "--currency", "EUR",
                       "--timezone", "Asia/Tokyo", "--domain", "shop.example")
    assert code == 0, out
    code, out = runner("create-advertiser", "shop-a", "--domain", "shop-cdn.example")
    assert code == 0, out
    assert ch.execute("SELECT name, currency, timezone, domains FROM advertisers FINAL WHERE id = 'shop-a'") == [
        ("Shop A", "EUR", "Asia/Tokyo", ["shop-cdn.example", "shop.example"])]
    code, out = runner("create-advertiser", "shop-a", "--remove-domain", "shop-cdn.example", "--name", "Shop A2")
    assert code == 0, out
    assert ch.execute("SELECT name, currency, timezone, domains FROM advertisers FINAL WHERE id = 'shop-a'") == [
        ("Shop A2", "EUR", "Asia/Tokyo", ["shop.example"])]
    code, out = runner("create-advertiser", "shop-a", "--remove-domain", "other.example")
    assert code == 1 and "error (invalid_domain): shop-a has no landing domain other.example" in out


def test_other_updates_keep_the_domains(ch):
    from adserver.catalog.registry import save_advertiser

    save_advertiser(ch, "shop-a", "Shop A", "CNY", domains=["shop.example"])
    save_advertiser(ch, "shop-a", "Shop A", "CNY", "Asia/Shanghai")  # as the demo's reports set the time zone
    assert _domains(ch, "shop-a") == ["shop.example"]


@pytest.mark.parametrize("domain", [
    "https://shop.example", "shop.example/p", "*.shop.example", "user@shop.example", "shop.example:8080", "",
    "com", "shop..example", "-shop.example", "shop-.example", "商店.example", "shop example", "1.2.3",
    "0x7f.0.0.1", "shop.example%2f", "x" * 300 + ".example",
])
def test_create_advertiser_refuses_bad_domains(runner, ch, domain):
    code, out = runner("create-advertiser", "shop-a", "--domain", domain)
    assert code == 1, out
    assert "error (invalid_domain)" in out and "domain" in out
    assert ch.execute("SELECT count() FROM advertisers") == [(0,)]
