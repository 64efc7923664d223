"""Ad sizes: parsing ``size=WxH|responsive`` and choosing how many products fit."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"([0-9]{2,4})x([0-9]{2,4})")  # ASCII digits: \d also takes other scripts' digits
MIN_SIDE, MAX_SIDE = 20, 2000


@dataclass(frozen=True)
class Format:
    name: str
    width: int | None
    height: int | None
    layout: str  # strip (one row), column (one column), grid, responsive
    slots: int


class BadSize(ValueError):
    pass


def parse_size(value: str | None) -> Format:
    """``300x250`` style sizes within sane bounds, or ``responsive`` (the default)."""
    if not value or value == "responsive":
        return Format("responsive", None, None, "responsive", 4)
    match = _SIZE.fullmatch(value)  # not match(): `$` would let a trailing newline through
    if not match:
        raise BadSize("size must be WxH (for example 300x250) or responsive")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise BadSize(f"width and height must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    if height <= 120:
        return Format(value, width, height, "strip", max(1, min(6, width // 180)))
    if width <= 200:
        return Format(value, width, height, "column", max(1, min(6, (height - 20) // 150)))
    cols = max(1, min(4, width // 140))
    rows = max(1, min(3, (height - 20) // 115))
    return Format(value, width, height, "grid", cols * rows)
