"""What an advertiser pays for its ads: a price per click (CPC) or per 1000 impressions (CPM).

One price per advertiser, in its currency; reports compute cost and ROAS from it (and show neither
when no price is set). A new price applies to every report, past periods included.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tracker.clickhouse import ClickHouse
from tracker.errors import AdServerError
from tracker.schema import PRICES_COLUMNS

MODELS = ("cpc", "cpm")


@dataclass(frozen=True)
class Price:
    model: str  # 'cpc' or 'cpm'
    amount: float


def set_price(ch: ClickHouse, advertiser: str, model: str, amount: float) -> Price | None:
    """Set (or with ``model=''`` remove) the advertiser's price."""
    if model and model not in MODELS:
        raise AdServerError(f"price model must be one of {', '.join(MODELS)}", "invalid_price")
    if model and (not math.isfinite(amount) or amount <= 0 or amount > 1e9):
        raise AdServerError("price must be a positive amount", "invalid_price")
    now = datetime.now(UTC).replace(tzinfo=None)
    ch.insert("advertiser_prices", PRICES_COLUMNS, [(advertiser, model, float(amount) if model else 0.0,
                                                      time.time_ns(), now)])
    return Price(model, float(amount)) if model else None


def get_price(ch: ClickHouse, advertiser: str) -> Price | None:
    rows = ch.execute("SELECT model, amount FROM advertiser_prices FINAL WHERE advertiser = %(a)s",
                      {"a": advertiser})
    if not rows or rows[0][0] not in MODELS:
        return None
    return Price(rows[0][0], float(rows[0][1]))
