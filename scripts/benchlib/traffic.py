"""The visitors and requests of the benchmarks: signed visitor cookies, product views, ads and clicks."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .web import USER_AGENT, get_json

DEMO_SKUS = [f"D{n}" for n in range(1001, 1061)]
OUTDOOR_SKUS = [f"T{n}" for n in range(2001, 2025)]


def mint_visitors(env: dict, count: int) -> list[str]:
    """``count`` visitor cookies (``uid=…``), signed with the product's key as the pixel would sign them."""
    from tracker.identity import UID_COOKIE, VisitorIds

    ids = VisitorIds([k.strip() for k in env["ADSERVER_SECRET_KEY"].split(",") if k.strip()])
    return [f"{UID_COOKIE}={ids.new()[1]}" for _ in range(count)]


def pixel_requests(cookies: list[str], rng: random.Random, per_visitor: int = 3) -> list[tuple[str, str]]:
    """Product views of each visitor: two thirds browse the demo store only, one third also the outdoor store
    (its CPM campaign then competes with the demo's CPC campaign in their auctions)."""
    out = []
    for n, cookie in enumerate(cookies):
        skus = [("demo", sku) for sku in rng.sample(DEMO_SKUS, per_visitor)]
        if n % 3 == 2:
            skus[-1] = ("outdoor", rng.choice(OUTDOOR_SKUS))
        out += [(f"/px.gif?a={adv}&e=view_item&sku={sku}", cookie) for adv, sku in skus]
    return out


def write_requests(path: Path, rows: list[tuple[str, str]]) -> Path:
    """A ``path<TAB>cookie`` file for wrk's ``rotate.lua``."""
    path.write_text("".join(f"{p}\t{c}\n" for p, c in rows))
    return path


def as_loadgen(rows: list[tuple[str, str]]) -> list[tuple[str, dict[str, str]]]:
    """``(path, cookie)`` rows as the load generator's ``(path, headers)``."""
    return [(p, {"User-Agent": USER_AGENT, **({"Cookie": c} if c else {})}) for p, c in rows]


def path_mix(base: str, cookies: list[str], placement: str = "demo-feed") -> dict:
    """What ``/ad.json`` answers these visitors: path (and fallback reason) and winning campaign counts."""
    with ThreadPoolExecutor(8) as pool:
        ads = list(pool.map(lambda c: get_json(f"{base}/ad.json?p={placement}&size=300x250", c), cookies))
    paths = Counter(a["path"] + (f" ({a['fallback_reason']})" if a.get("fallback_reason") else "") for a in ads)
    winners = Counter(a.get("campaign") or "house" for a in ads)
    return {"sampled": len(ads), "paths": dict(paths.most_common()), "winners": dict(winners.most_common())}


def click_requests(base: str, cookies: list[str]) -> list[tuple[str, str]]:
    """The click links of one impression per visitor, with that visitor's cookie."""
    with ThreadPoolExecutor(8) as pool:
        ads = list(pool.map(lambda c: (c, get_json(f"{base}/ad.json?p=demo-feed&size=300x250", c)), cookies))
    return [("/c/" + p["click_url"].rsplit("/c/", 1)[1], c) for c, ad in ads for p in ad["products"]]
