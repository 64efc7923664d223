"""The training job: events from ClickHouse and the catalog in, a versioned similarity artifact out.

The models themselves are pure (``models/``); this module only gathers their inputs and stores the
result where serving processes pick it up (``<model_dir>/<advertiser>/CURRENT``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from adserver.catalog.storage import load_products
from adserver.progress import Progress
from tracker.clickhouse import ClickHouse
from tracker.events import INTEREST_WEIGHTS

TRAINING_SQL = """
SELECT uid, arrayJoin(skus) AS sku, toUnixTimestamp(ts) AS t, event
FROM events
WHERE advertiser = %(a)s AND event IN ('view_item', 'add_to_cart', 'purchase')
  AND uid != '' AND invalid = 0 AND ts >= %(since)s
"""


@dataclass
class TrainingResult:
    advertiser: str
    version: str
    products: int
    events: int
    seconds: float
    path: Path


def training_events(ch: ClickHouse, advertiser: str, index: dict[str, int], days: int):
    """Interest events of the last ``days`` as arrays (visitor, item index, ts, weight)."""
    since = (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None)
    rows = ch.execute(TRAINING_SQL, {"a": advertiser, "since": since})
    visitors: dict[str, int] = {}
    v, i, t, w = [], [], [], []
    for uid, sku, ts, event in rows:
        item = index.get(sku)
        if item is None:  # no longer in the catalog
            continue
        v.append(visitors.setdefault(uid, len(visitors)))
        i.append(item)
        t.append(float(ts))
        w.append(INTEREST_WEIGHTS[event])
    return (np.asarray(v, dtype=np.int64), np.asarray(i, dtype=np.int64),
            np.asarray(t, dtype=np.float64), np.asarray(w, dtype=np.float64))


def train_advertiser(ch: ClickHouse, advertiser: str, model_dir: Path, k: int = 20, days: int = 90) -> TrainingResult:
    from models.artifact import Artifact, new_version, save_artifact
    from models.similarity import behaviour_neighbors, blend, content_neighbors, popular_items, product_text

    started = time.monotonic()
    progress = Progress(f"{advertiser}: catalog")
    products = list(load_products(ch, advertiser).values())
    progress.finish(f"{len(products):,} products")
    if not products:
        raise ValueError(f"advertiser {advertiser!r} has no products; import a feed first")
    skus = [p.sku for p in products]
    index = {sku: n for n, sku in enumerate(skus)}

    progress = Progress(f"{advertiser}: events")
    visitors, items, ts, weights = training_events(ch, advertiser, index, days)
    progress.finish(f"{len(items):,} interest events")

    progress = Progress(f"{advertiser}: content similarity")
    content = content_neighbors([product_text(p.title, p.brand, p.product_type, p.description) for p in products], k)
    progress.finish()
    progress = Progress(f"{advertiser}: behavioural similarity")
    nbr, score, support = behaviour_neighbors(visitors, items, ts, weights, len(skus), k)
    progress.finish(f"{int((support > 0).sum()):,} products seen in sessions")
    progress = Progress(f"{advertiser}: blend")
    neighbors, scores = blend(content, (nbr, score), support, k)
    popular = popular_items(items, ts, weights, len(skus)) if len(items) else np.zeros(0, dtype=np.int32)
    progress.finish()

    seconds = time.monotonic() - started
    artifact = Artifact(
        version=new_version(), items=np.asarray(skus, dtype=str), neighbors=neighbors, scores=scores,
        popular=np.asarray(popular, dtype=np.int32),
        meta={"advertiser": advertiser, "products": len(skus), "events": int(len(items)),
              "visitors": int(visitors.max() + 1) if len(visitors) else 0, "k": k, "days": days,
              "seconds": round(seconds, 3), "created_at": datetime.now(UTC).isoformat()},
    )
    path = save_artifact(model_dir / advertiser, artifact)
    return TrainingResult(advertiser, artifact.version, len(skus), int(len(items)), seconds, path)
