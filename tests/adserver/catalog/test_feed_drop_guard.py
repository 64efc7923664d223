"""The drop guard: a full feed never empties a catalog by accident.

A full feed that would remove more than ADSERVER_FEED_MAX_DROP of the current products (a truncated
download, a failed export) is refused with a clear error and the catalog unchanged, unless --force.
"""

from __future__ import annotations

import gzip

import pytest

from adserver.catalog.storage import load_products
from tests.adserver.conftest import feed_bytes, product
from tracker.settings import SettingsError, load_settings

TEN = [product(f"P{i}") for i in range(10)]


def skus(ch, advertiser: str = "shop-d") -> list[str]:
    return sorted(load_products(ch, advertiser))


@pytest.fixture
def catalog(create_advertiser, import_feed, ch) -> list[str]:
    create_advertiser("shop-d")
    code, out = import_feed("shop-d", TEN)
    assert code == 0, out
    return skus(ch)


def test_a_full_feed_removing_most_products_is_refused(catalog, import_feed, ch):
    code, out = import_feed("shop-d", TEN[:4], full=True)
    assert code == 1
    assert "would remove 6 of the 10 products" in out and "ADSERVER_FEED_MAX_DROP" in out and "--force" in out
    assert skus(ch) == catalog


def test_up_to_the_share_is_allowed(catalog, import_feed, ch):
    code, out = import_feed("shop-d", TEN[:5], full=True)
    assert code == 0, out
    assert "removed 5" in out
    assert skus(ch) == sorted(p["id"] for p in TEN[:5])


def test_force_removes_them(catalog, runner, tmp_path, ch):
    path = tmp_path / "one.csv"
    path.write_bytes(feed_bytes(TEN[:1]))
    code, out = runner("import-feed", "shop-d", str(path), "--full", "--force")
    assert code == 0, out
    assert "removed 9" in out and skus(ch) == ["P0"]


def test_a_partial_feed_is_never_guarded(catalog, import_feed, ch):
    """Without --full nothing is removed, so a short feed is just an update."""
    code, out = import_feed("shop-d", TEN[:1])
    assert code == 0 and "removed 0" in out
    assert skus(ch) == catalog


def test_rejected_rows_do_not_count_as_removed(catalog, import_feed, ch):
    """A typo in most prices is reported, not taken for a truncated feed: those products stay."""
    rows = [product(p["id"], price="oops") for p in TEN[:8]] + TEN[8:]
    code, out = import_feed("shop-d", rows, full=True)
    assert code == 0, out
    assert "removed 0" in out and skus(ch) == catalog


@pytest.mark.parametrize("cut", ["csv", "gzip", "xml"])
def test_truncated_downloads_never_empty_the_catalog(catalog, runner, tmp_path, ch, cut):
    rows = [product(f"P{i}") for i in range(10)]
    if cut == "xml":
        items = "".join(f"<item><g:id>{r['id']}</g:id><g:title>{r['title']}</g:title><g:link>{r['link']}</g:link>"
                        f"<g:price>{r['price']} CNY</g:price></item>" for r in rows)
        whole = (f'<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>{items}'
                 "</channel></rss>").encode()
        data = whole[: len(whole) * 3 // 10]
    elif cut == "gzip":
        packed = gzip.compress(feed_bytes(rows))
        data = packed[: len(packed) * 3 // 10]
    else:
        whole = feed_bytes(rows)
        data = whole[: len(whole) * 3 // 10]
    path = tmp_path / "cut.feed"
    path.write_bytes(data)
    code, out = runner("import-feed", "shop-d", str(path), "--full")
    assert code == 1
    assert {"csv": "would remove", "gzip": "truncated", "xml": "does not parse"}[cut] in out
    assert skus(ch) == catalog


@pytest.mark.settings_env(ADSERVER_FEED_MAX_DROP="0")
def test_the_share_is_a_setting(catalog, import_feed, ch):
    code, out = import_feed("shop-d", TEN[1:], full=True)
    assert code == 1 and "more than the 0% allowed" in out
    assert skus(ch) == catalog


def test_the_http_upload_is_guarded_too(catalog, client, runner, ch):
    code, out = runner("create-token", "shop-d")
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    resp = client.put("/api/v1/feeds/shop-d?full=1", data=feed_bytes(TEN[:2]), headers=headers)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "too_many_removed" and "8 of the 10" in resp.get_json()["message"]
    assert skus(ch) == catalog
    resp = client.put("/api/v1/feeds/shop-d?full=1&force=1", data=feed_bytes(TEN[:2]), headers=headers)
    assert resp.status_code == 200 and resp.get_json()["removed"] == 8
    assert skus(ch) == ["P0", "P1"]


@pytest.mark.parametrize("value", ["1.5", "-0.1", "half"])
def test_a_share_outside_0_to_1_stops_the_start(tmp_path, value):
    env = {"ADSERVER_DATA_DIR": str(tmp_path)}
    assert load_settings(env).feed_max_drop == 0.5
    with pytest.raises(SettingsError, match="ADSERVER_FEED_MAX_DROP"):
        load_settings({**env, "ADSERVER_FEED_MAX_DROP": value})
