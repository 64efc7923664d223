"""The cost-per-request targets of ``make bench``, measured in single-node and in cluster mode in one run.

Each target is a figure the bench already measures, computed the same way for both setups: the pixel's and
the ad's req/s over the bare app's of the same round (rounds interleave every endpoint of both setups, so
the machine's drift spreads over all of them), the ad's p99 at half its own maximum rate in each of
several open-loop runs (the worst run counts: the target holds "in every run"), the writers' events/s all
together (as many writer processes as stream partitions), and the lag from pixel to row, p99.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MODES = ("single", "cluster")


@dataclass(frozen=True)
class Target:
    key: str
    measure: str
    bound: float
    at_least: bool  # True: the figure must reach the bound; False: stay at or under it
    unit: str = ""

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound

    def bound_text(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.bound:,g}{self.unit}"


TARGETS = (
    Target("pixel_ratio", "pixel req/s ÷ bare", 0.85, True),
    Target("ad_ratio", "ad req/s ÷ bare (rotating visitors, auction on)", 0.5, True),
    Target("ad_p99_worst_ms", "ad p99 at half its maximum rate, worst of the runs", 10, False, " ms"),
    Target("ad_p99_idle_store_ms", "the same, ClickHouse at idle CPU weight (shared-host drop-in)", 10, False,
           " ms"),
    Target("writer_per_s", "writer events/s, all writers together", 250_000, True),
    Target("lag_p99_s", "lag pixel → row visible, p99", 1.0, False, " s"),
)


def round_ratios(runs: dict[str, list[dict]], endpoint: str) -> list[float]:
    """``endpoint``'s req/s over the bare app's, round by round (the runs of one round ran back to back)."""
    return [round(run["rps"] / max(bare["rps"], 1e-9), 3) for run, bare in zip(runs[endpoint], runs["bare"],
                                                                                strict=True)]


def figures(r: dict, mode: str) -> dict:
    """The targets' values of one setup from the bench's results (None where not measured)."""
    web = r["targets"][mode]
    p99s = _p99s(web.get("ad_half_runs", []))
    idle = _p99s(web.get("ad_half_idle_store", {}).get("runs", []))
    writer = web.get("writer")
    return {
        "pixel_ratio": statistics.median(web["pixel_ratios"]) if web.get("pixel_ratios") else None,
        "ad_ratio": statistics.median(web["ad_ratios"]) if web.get("ad_ratios") else None,
        "ad_p99_worst_ms": max(p99s) if p99s else None,
        "ad_p99_idle_store_ms": max(idle) if idle else None,
        "writer_per_s": writer["events_per_s"] if writer else None,
        "lag_p99_s": web["lag"]["p99_s"] if web.get("lag") else None,
    }


def _p99s(runs: list[dict]) -> list[float]:
    return [run["p99_ms"] for run in runs if run.get("p99_ms") is not None]


def _value(target: Target, value: float | None) -> str:
    if value is None:
        return "not measured"
    if target.key == "writer_per_s":
        return f"{value:,.0f}"
    return f"{value:,.3g}{target.unit}"


def _detail(r: dict, mode: str, key: str) -> str:
    web = r["targets"][mode]
    if key in ("pixel_ratio", "ad_ratio"):
        return ", ".join(f"{x:.2f}" for x in web.get(key.replace("ratio", "ratios"), []))
    if key == "ad_p99_worst_ms":
        return ", ".join(f"{p99:.1f}" for p99 in _p99s(web.get("ad_half_runs", [])))
    if key == "ad_p99_idle_store_ms":
        idle = web.get("ad_half_idle_store", {})
        if "unavailable" in idle:
            return f"not measured: {idle['unavailable']}"
        return ", ".join(f"{p99:.1f}" for p99 in _p99s(idle.get("runs", [])))
    if key == "writer_per_s" and web.get("writer"):
        w = web["writer"]
        packing = web.get("packing", {}).get("per_entry")
        measured = f" (the pixel runs wrote {packing} per entry)" if packing is not None else ""
        return (f"{w['writers']} writers, {w['partitions']} partitions, entries of {w.get('pack', 1)} "
                f"event{'s' if w.get('pack', 1) > 1 else ''}{measured}")
    if key == "lag_p99_s" and web.get("lag"):
        return f"p50 {web['lag']['p50_s']} s, {web['lag']['seen']}/{web['lag']['hits']} hits"
    return ""


def render_targets(r: dict) -> list[str]:
    """The targets table (Markdown lines): each target's value in both setups, whether it is met, and the runs."""
    measured = [mode for mode in MODES if mode in r.get("targets", {})]
    values = {mode: figures(r, mode) for mode in measured}
    lines = [
        "| measure | target | " + " | ".join(f"{mode} | met" for mode in measured) + " | runs |",
        "|---|---|" + "---|---|" * len(measured) + "---|",
    ]
    for target in TARGETS:
        cells = []
        for mode in measured:
            value = values[mode][target.key]
            met = target.met(value)
            cells.append(f"**{_value(target, value)}** | {'n/a' if met is None else ('yes' if met else 'no')}")
        runs = "; ".join(f"{mode}: {_detail(r, mode, target.key)}" for mode in measured)
        lines.append(f"| {target.measure} | {target.bound_text()} | {' | '.join(cells)} | {runs} |")
    return lines
