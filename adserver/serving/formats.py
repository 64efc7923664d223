"""Ad sizes: parsing ``size=WxH|responsive`` and how each size is laid out.

The IAB sizes publishers ask for most get a layout designed for them; any other size within the
bounds gets a generic one chosen from its shape. A :class:`Format` carries everything the template
needs (so ``adserver/templates/ad.html`` holds no size arithmetic) and ``slots``, the number of
products the decision picks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"([0-9]{2,4})x([0-9]{2,4})")  # ASCII digits: \d also takes other scripts' digits
MIN_SIDE, MAX_SIDE = 20, 2000
BORDER, PAD, GAP = 1, 4, 4  # px: the unit's border, the product area's padding, the gap between products
BAR = 20  # px: height of the brand bar on top of vertical layouts


@dataclass(frozen=True)
class Format:
    """One ad size and its layout.

    ``layout``: ``banner`` (one product in a row), ``strip`` (a row of products), ``column``, ``grid``
    or ``carousel`` (a horizontally scrolling row that adapts to the frame, for ``responsive``).
    ``bar``: where the brand and the AdChoices link go, ``top`` (a bar) or ``side`` (a block on the left,
    ``side_width`` pixels wide). Products show their image ``image`` pixels square, beside their text
    (``across``) or above it, and ``lines`` lines of title.
    """

    name: str
    width: int | None
    height: int | None
    layout: str
    slots: int
    cols: int = 1
    rows: int = 1
    bar: str = "top"
    side_width: int = 0
    image: int = 64
    across: bool = False
    lines: int = 2


# Hand-made layouts for the standard sizes.
STANDARD: dict[str, Format] = {
    "320x50": Format("320x50", 320, 50, "banner", 1, bar="side", side_width=64, image=40, across=True, lines=1),
    "320x100": Format("320x100", 320, 100, "strip", 2, cols=2, image=64, across=True, lines=3),
    "728x90": Format("728x90", 728, 90, "strip", 4, cols=4, bar="side", side_width=112, image=72, across=True,
                     lines=3),
    "160x600": Format("160x600", 160, 600, "column", 3, rows=3, image=124, lines=2),
    "300x250": Format("300x250", 300, 250, "grid", 4, cols=2, rows=2, image=60, lines=2),
}
RESPONSIVE = Format("responsive", None, None, "carousel", 6, cols=6, image=120, lines=2)
# The native card (``/ad.json?format=native``): the publisher's page lays it out, around one product.
NATIVE = Format("native", None, None, "native", 1)


class BadSize(ValueError):
    pass


def parse_size(value: str | None) -> Format:
    """``300x250`` style sizes within sane bounds, or ``responsive`` (the default)."""
    if not value or value == "responsive":
        return RESPONSIVE
    if value in STANDARD:
        return STANDARD[value]
    match = _SIZE.fullmatch(value)  # not match(): `$` would let a trailing newline through
    if not match:
        raise BadSize("size must be WxH (for example 300x250) or responsive")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise BadSize(f"width and height must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    return generic(value, width, height)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def generic(name: str, width: int, height: int) -> Format:
    """A layout for any other size, from its shape: low ones are strips, narrow ones columns, the rest grids."""
    inner_w, inner_h = width - 2 * BORDER - 2 * PAD, height - 2 * BORDER - 2 * PAD
    if height <= 120:
        side = _clamp(width // 6, 32, 120)  # the brand block on the left: a bar on top would leave no room
        slots = _clamp((width - side) // 180, 1, 6)
        image = _clamp(inner_h, 16, 80)
        lines = 1 if inner_h < 48 else (2 if inner_h < 72 else 3)
        layout = "banner" if slots == 1 and height <= 60 else "strip"
        return Format(name, width, height, layout, slots, cols=slots, bar="side", side_width=side, image=image,
                      across=True, lines=lines)
    if width <= 200:
        slots = _clamp((height - 20) // 150, 1, 6)
        cell_h = (inner_h - BAR - GAP * (slots - 1)) // slots
        image = _clamp(min(inner_w, cell_h - 48), 24, 192)
        return Format(name, width, height, "column", slots, rows=slots, image=image, lines=2)
    cols = _clamp(width // 140, 1, 4)
    rows = _clamp((height - 20) // 115, 1, 3)
    cell_w = (inner_w - GAP * (cols - 1)) // cols
    cell_h = (inner_h - BAR - GAP * (rows - 1)) // rows
    image = _clamp(min(cell_w, cell_h - 48), 24, 320)
    return Format(name, width, height, "grid", cols * rows, cols=cols, rows=rows, image=image, lines=2)
