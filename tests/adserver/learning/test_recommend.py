"""Similar products in the ad: the trained model, its hot reload, and the train/evaluate commands."""

from __future__ import annotations

import json

from adserver.serving.decision import fill_slots, similar_candidates
from tests.conftest import drain


def _ad(client) -> dict:
    return client.get("/ad.json?p=demo-feed&size=300x250").get_json()


def test_demo_ad_shows_similar_products_with_their_source(client, demo_loaded):
    client.get("/px.gif?a=demo&e=view_item&sku=D1001")  # a celadon tea set
    ad = _ad(client)
    reasons = [p["reason"] for p in ad["products"]]
    assert reasons[0] == "recent" and "similar" in reasons
    similar = [p for p in ad["products"] if p["reason"] == "similar"]
    assert all(p["source_sku"] == "D1001" for p in similar)
    catalog = client.application.extensions["adserver"].catalog.get("demo")
    # Content similarity: the neighbours of a tea set are tea ware.
    assert all(catalog[p["sku"]].product_type == catalog["D1001"].product_type for p in similar)


def test_retraining_is_picked_up_by_the_running_app(app, client, demo_loaded, runner, writer):
    services = app.extensions["adserver"]
    services.models.check_seconds = 0
    first = services.models.get("demo").version
    # Shoppers who look at the tea set (D1001) also look at a desk lamp (D1057): behaviour the catalog
    # text cannot know.
    for _ in range(12):
        shopper = app.test_client()
        shopper.get("/px.gif?a=demo&e=view_item&sku=D1001")
        shopper.get("/px.gif?a=demo&e=view_item&sku=D1057")
    drain(writer)
    client.get("/px.gif?a=demo&e=view_item&sku=D1001")
    assert "D1057" not in [p["sku"] for p in _ad(client)["products"] if p["reason"] == "similar"]

    code, out = runner("train", "--advertiser", "demo")
    assert code == 0, out
    assert "demo: model " in out and "24 events" in out
    assert services.models.get("demo").version != first
    similar = [p["sku"] for p in _ad(client)["products"] if p["reason"] == "similar"]
    assert similar[0] == "D1057"


def test_train_command_errors(runner, create_advertiser):
    code, out = runner("train", "--advertiser", "nosuch")
    assert code == 1 and "unknown advertiser" in out
    create_advertiser("empty-shop")
    code, out = runner("train", "--advertiser", "empty-shop")
    assert code == 1 and "no products" in out


def test_evaluate_command_prints_the_table_and_json(runner, tmp_path):
    rows = ["visitor,item,ts,event,title"]
    for visitor in range(6):
        for step, item in enumerate(["A", "B", "C", "A"]):
            rows.append(f"v{visitor},{item},{1_700_000_000 + visitor * 10 + step},view,Item {item}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out = runner("evaluate", str(path), "--json")
    assert code == 0, out
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result["methods"]) == {"adserver", "popular", "item_knn"}
    assert set(result["methods"]["adserver"]) == {"HR@10", "HR@20", "MRR@20", "NDCG@10", "coverage"}
    assert result["predictions"] > 0
    code, out = runner("evaluate", str(path))
    assert code == 0 and "HR@10" in out and "item_knn" in out


def test_evaluate_command_rejects_bad_files(runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("visitor,item,ts\nv1,A,yesterday\n")
    code, out = runner("evaluate", str(bad))
    assert code == 2 and "line 2" in out
    code, out = runner("evaluate", str(tmp_path / "missing.csv"))
    assert code == 2


class _Model:
    def __init__(self, table: dict[str, list[tuple[str, float]]]) -> None:
        self.table = table

    def similar(self, sku: str, n: int) -> list[tuple[str, float]]:
        return self.table.get(sku, [])[:n]


def test_similar_candidates_weight_recent_views_more():
    model = _Model({"V1": [("X", 1.0), ("Y", 0.5)], "V2": [("Y", 0.9), ("Z", 0.8)]})
    # V1 is the latest view (weight 1), V2 the one before (weight 1/2).
    assert similar_candidates(model, ["V1", "V2"]) == [("X", "V1"), ("Y", "V1"), ("Z", "V2")]
    assert similar_candidates(None, ["V1"]) == []


def test_recent_takes_at_most_half_when_similar_products_exist():
    from adserver.catalog.product import Product

    products = {s: Product(s, s, f"https://s.example/{s}") for s in ["R1", "R2", "R3", "S1", "S2", "P1"]}
    slots = fill_slots(products, ["R1", "R2", "R3"], ["P1"], set(), 4, similar=[("S1", "R1"), ("S2", "R2")])
    assert [(s.product.sku, s.reason) for s in slots] == [("R1", "recent"), ("R2", "recent"),
                                                          ("S1", "similar"), ("S2", "similar")]
    slots = fill_slots(products, ["R1", "R2", "R3"], ["P1"], set(), 4)
    assert [s.reason for s in slots] == ["recent", "recent", "recent", "popular"]
