"""Landing pages: a feed's links must lead where the store says, on real servers.

A link with user info (``https://store.test@evil.test/``) goes to the host after the ``@``, so it is
refused wherever a URL comes from a feed or a campaign. A link must also be on one of the
advertiser's declared landing domains (or a subdomain of one); other rows are rejected with their
row number, field and reason, and the good rows are imported. (The click side: serving/test_clicks.py.)
"""

from __future__ import annotations

import pytest

from adserver.catalog.feed import parse_feed
from adserver.catalog.storage import load_products
from tests.adserver.conftest import feed_bytes, product
from tracker.errors import AdServerError

USERINFO = "https://store.test@evil.test/p/9"


def rejected(report) -> list[tuple[int, str]]:
    return [(e.row, e.field) for e in report.errors]


def stored(ch, advertiser: str) -> set[str]:
    return set(load_products(ch, advertiser))


@pytest.mark.parametrize("field", ["link", "image_link"])
@pytest.mark.parametrize("url", [
    USERINFO,
    "https://user:secret@shop.example/p/1",
    "https://@shop.example/p/1",
    "http://shop.example:80@evil.test/",
    "HTTPS://shop.example@evil.test",
    "https://shop.example@evil.test?x=1",
])
def test_urls_with_user_info_are_rejected_with_a_row_reason(field, url):
    products, report = parse_feed(feed_bytes([product("OK1"), product("U1", **{field: url}), product("OK2")]), "csv")
    assert [p.sku for p in products] == ["OK1", "OK2"]
    assert rejected(report) == [(3, field)]
    assert "user info" in report.errors[0].reason


@pytest.mark.parametrize("url", [
    "https://shop.example%40evil.test/p/1",  # a browser decodes the host: not the host we would check
    "https://shop.example%2eevil.test/p/1",
    "https://shop.example\\@evil.test/p/1",
    "https://sh\u043ep.example/p/1",  # Cyrillic o: internationalised hosts only in their xn-- form
    "https://0x7f.0.0.1/p/1",
    "https://[::1/p/1",
    "https://[fe80::1%25eth0]/p/1",
    "https://shop.example:99999/p/1",
    "https:///p/1",
])
def test_hosts_a_browser_would_read_differently_are_rejected(url):
    products, report = parse_feed(feed_bytes([product("OK1"), product("H1", link=url)]), "csv")
    assert [p.sku for p in products] == ["OK1"]
    assert rejected(report) == [(3, "link")]


@pytest.mark.parametrize("url", [
    "https://shop.example/p/1", "http://SHOP.example:8080/p/1?a=b@c#x@y", "https://xn--80ak6aa92e.example/p",
    "https://127.0.0.1:8000/demo/store/p/D1001", "https://[2001:db8::1]:8443/p/1", "https://shop.example./p/1",
    "https://shop.example/p/茶具?颜色=青",
])
def test_ordinary_links_are_accepted(url):
    products, report = parse_feed(feed_bytes([product("OK1", link=url)]), "csv")
    assert report.errors == [] and products[0].link == url


@pytest.fixture
def shop(runner) -> str:
    code, out = runner("create-advertiser", "shop", "--domain", "shop.example")
    assert code == 0, out
    return "shop"


def test_import_keeps_links_on_the_declared_domains_and_their_subdomains(shop, import_feed, ch):
    rows = [
        product("A1"),                                                          # row 2
        product("A2", link="https://www.shop.example/p/A2"),                    # row 3: a subdomain
        product("A3", link="http://m.eu.SHOP.example:8080/p/A3"),               # row 4
        product("E1", link="https://evil.test/p/E1"),                           # row 5
        product("E2", link="https://shop.example.evil.test/p/E2"),              # row 6
        product("E3", link="https://notshop.example/p/E3"),                     # row 7
        product("U1", link=USERINFO.replace("store.test", "shop.example")),     # row 8
        product("I1", image_link="https://cdn.images.example/i1.png"),          # row 9: images may live on a CDN
    ]
    code, out = import_feed(shop, rows)
    assert code == 0, out
    assert stored(ch, shop) == {"A1", "A2", "A3", "I1"}
    for row, host in ((5, "evil.test"), (6, "shop.example.evil.test"), (7, "notshop.example")):
        line = next(line for line in out.splitlines() if line.startswith(f"row {row}: link: "))
        assert host in line and "landing domain" in line and "shop.example" in line
    assert "user info" in next(line for line in out.splitlines() if line.startswith("row 8: link: "))
    assert "imported 4 products, rejected 4" in out


def test_feed_upload_reports_the_refused_links(client, runner, shop, ch):
    code, out = runner("create-token", shop)
    token = out.strip().splitlines()[-1]
    rows = [product("A1"), product("U1", link=USERINFO), product("E1", link="https://evil.test/p/E1")]
    response = client.put(f"/api/v1/feeds/{shop}", data=feed_bytes(rows),
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert report["accepted"] == 1 and report["rejected"] == 2
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "link"), (4, "link")]
    assert "user info" in report["errors"][0]["reason"]
    assert "evil.test" in report["errors"][1]["reason"]
    assert stored(ch, shop) == {"A1"}


def test_an_advertiser_without_a_landing_domain_gets_no_link_imported(runner, import_feed, ch):
    code, out = runner("create-advertiser", "bare")
    assert code == 0, out
    code, out = import_feed("bare", [product("A1"), product("A2")])
    assert code != 0
    assert "no landing domain" in out and "create-advertiser bare --domain" in out
    assert stored(ch, "bare") == set()
    code, out = runner("create-advertiser", "bare", "--domain", "shop.example")
    assert code == 0, out
    code, out = import_feed("bare", [product("A1"), product("A2")])
    assert code == 0, out
    assert stored(ch, "bare") == {"A1", "A2"}


def test_the_demo_declares_the_domain_of_its_store_pages(demo_loaded, ch):
    rows = ch.execute("SELECT id, domains FROM advertisers FINAL WHERE deleted = 0 ORDER BY id")
    assert rows == [("demo", ["store.example"]), ("outdoor", ["store.example"])]


def test_campaign_logos_with_user_info_are_refused(ch):
    from adserver.campaigns.campaign import Campaign, save_campaign
    from adserver.serving.units import safe_url

    for url in (USERINFO, "https://user:pw@cdn.example/logo.svg"):
        with pytest.raises(AdServerError, match="user info"):
            save_campaign(ch, Campaign("c1", "shop", pricing="cpc", price=1.0, logo_url=url))
        assert safe_url(url) == ""  # a logo stored before is not drawn either
    assert ch.execute("SELECT count() FROM campaigns") == [(0,)]
    save_campaign(ch, Campaign("c1", "shop", pricing="cpc", price=1.0, logo_url="https://cdn.example/logo.svg"))
    assert safe_url("https://cdn.example/logo.svg") == "https://cdn.example/logo.svg"
