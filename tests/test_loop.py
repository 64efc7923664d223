"""The whole retargeting loop on real servers: view -> ad -> click -> rows in ClickHouse."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.conftest import drain


def test_view_then_ad_then_click_reaches_clickhouse(client, demo_loaded, writer, ch):
    for sku in ("D1004", "D1010", "D1021"):
        assert client.get(f"/px.gif?a=demo&e=view_item&sku={sku}").status_code == 200
    client.get("/px.gif?a=demo&e=add_to_cart&sku=D1010")

    ad = client.get("/ad.json?p=demo-feed&size=300x250").get_json()
    assert ad["advertiser"] == "demo"
    assert ad["path"] == "personalised"
    shown = [p["sku"] for p in ad["products"]]
    # Most recent interest first, half of the unit; then products similar to those views.
    assert shown[:2] == ["D1010", "D1021"]
    assert [p["reason"] for p in ad["products"]] == ["recent", "recent", "similar", "similar"]
    assert {p["source_sku"] for p in ad["products"][2:]} <= {"D1010", "D1021", "D1004"}

    click = client.get(urlsplit(ad["products"][0]["click_url"]).path)
    assert click.status_code == 302
    target = urlsplit(click.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == "https://store.example/demo/store/p/D1010"
    assert parse_qs(target.query)["utm_source"] == ["adserver"]

    drain(writer)
    counts = dict(ch.execute("SELECT event, count() FROM events WHERE advertiser = 'demo' GROUP BY event"))
    assert counts == {"view_item": 3, "add_to_cart": 1, "impression": 1, "click": 1}
    impression = ch.execute("SELECT impression_id, placement, skus, reasons, addressable FROM events "
                            "WHERE event = 'impression'")[0]
    assert impression[0] == ad["impression_id"]
    assert impression[1] == "demo-feed"
    assert impression[2] == shown
    assert impression[4] == 1
    clicked = ch.execute("SELECT impression_id, sku, placement, reasons FROM events WHERE event = 'click'")[0]
    assert clicked == (ad["impression_id"], "D1010", "demo-feed", ["recent"])
