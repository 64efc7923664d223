"""The dashboard's time-series chart, drawn on the server as inline SVG (no script, no CDN).

Conversions are bars (right axis), CTR is a line (left axis, in percent). Every label is escaped;
each bar carries a ``<title>`` so hovering it shows the day's figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 44, 28, 34
CTR_COLOR, BAR_COLOR, GRID_COLOR, TEXT_COLOR = "#0b5cad", "#9cc3ee", "#e3e7ec", "#57606a"


@dataclass(frozen=True)
class Point:
    label: str  # full label (tooltip)
    short: str  # axis label
    ctr: float | None  # fraction
    conversions: int


def nice_max(value: float, ticks: int = 4) -> float:
    """The smallest 'round' number >= value that divides into ``ticks`` round steps."""
    if value <= 0:
        return 1.0
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= raw:
            return step * magnitude * ticks
    return 10 * magnitude * ticks


def _fmt_pct(value: float) -> str:
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def render(points: list[Point], title: str = "CTR and conversions") -> Markup:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(1, len(points))
    ctr_max = nice_max(max((p.ctr or 0.0 for p in points), default=0.0))
    conv_max = max(4.0, nice_max(max((p.conversions for p in points), default=0)))
    slot = plot_w / n
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):  # grid and both axes' labels
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="{GRID_COLOR}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{CTR_COLOR}">'
                   f"{escape(_fmt_pct(ctr_max * i / 4))}</text>")
        out.append(f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}" fill="{TEXT_COLOR}">'
                   f"{escape(_fmt_int(conv_max * i / 4))}</text>")
    bar_w = max(1.0, slot * 0.6)
    for i, p in enumerate(points):
        h = plot_h * p.conversions / conv_max
        x = LEFT + slot * i + (slot - bar_w) / 2
        tip = f"{p.label}: CTR {_fmt_pct(p.ctr) if p.ctr is not None else 'n/a'}, {p.conversions:,} conversions"
        out.append(f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                   f'height="{h:.1f}" fill="{BAR_COLOR}"><title>{escape(tip)}</title></rect>')
    coords = [(LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * p.ctr / ctr_max)
              for i, p in enumerate(points) if p.ctr is not None]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(f'<polyline class="ctr-line" points="{path}" fill="none" stroke="{CTR_COLOR}" '
                   f'stroke-width="2" stroke-linejoin="round"/>')
        if len(coords) <= 62:
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{CTR_COLOR}"/>' for x, y in coords]
    every = max(1, math.ceil(n / 8))
    for i, p in enumerate(points):
        if i % every == 0:
            out.append(f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                       f'fill="{TEXT_COLOR}">{escape(p.short)}</text>')
    out.append(f'<rect x="{LEFT}" y="6" width="12" height="3" fill="{CTR_COLOR}"/>'
               f'<text x="{LEFT + 16}" y="11" fill="{TEXT_COLOR}">CTR (left)</text>'
               f'<rect x="{LEFT + 100}" y="2" width="10" height="10" fill="{BAR_COLOR}"/>'
               f'<text x="{LEFT + 114}" y="11" fill="{TEXT_COLOR}">Conversions (right)</text>')
    if not points:
        out.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="{TEXT_COLOR}">No data</text>')
    out.append("</svg>")
    return Markup("".join(out))
