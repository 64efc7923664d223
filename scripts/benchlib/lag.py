"""The lag from a pixel hit answered to its row visible in ClickHouse, as a marketer's report would see it."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.request

from .stack import clickhouse
from .web import USER_AGENT

POLL_PAUSE_S = 0.005


def end_to_end_lag(env: dict, base: str, hits: int = 300) -> dict:
    """Pixel answered -> row visible in the ClickHouse ``env`` names, per hit (p50/p99), with the product's
    own writer running.

    ClickHouse is polled from before the first hit, in a thread of its own: polling only once every hit
    was sent (~2 s) would count that sending time into the early hits' lag. A hit counts as visible when
    the first query that sees it started, so a lag is overstated by up to one poll cycle (a query of a
    few milliseconds and a 5 ms pause): small beside the writer's window, which is what is measured.
    """
    ch = clickhouse(env)
    marker = "lag" + secrets.token_hex(3)
    sent: dict[int, float] = {}
    visible: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        deadline = time.monotonic() + 60
        while len(visible) < hits and time.monotonic() < deadline and not done.is_set():
            # A row in the answer was visible when the query started: that moment is its visibility
            # time (taking the time after the answer would add the query's own duration to every lag).
            now = time.monotonic()
            rows = ch.execute("SELECT sku FROM events WHERE event = 'view_item' AND sku LIKE %(m)s",
                              {"m": marker + "-%"})
            for (sku,) in rows:
                visible.setdefault(int(sku.rsplit("-", 1)[1]), now)
            time.sleep(POLL_PAUSE_S)

    poller = threading.Thread(target=poll, name="lag-poller", daemon=True)
    poller.start()
    for n in range(hits):
        urllib.request.urlopen(urllib.request.Request(f"{base}/px.gif?a=demo&e=view_item&sku={marker}-{n}",
                                                      headers={"User-Agent": USER_AGENT})).read()
        sent[n] = time.monotonic()
        time.sleep(0.005)
    poller.join(timeout=70)
    done.set()
    ch.close()
    visible = {n: t for n, t in visible.items() if n in sent}
    lags = sorted(visible[n] - sent[n] for n in visible)
    pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None  # noqa: E731
    return {"hits": hits, "seen": len(lags), "p50_s": pick(0.5), "p99_s": pick(0.99)}
