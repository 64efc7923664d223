"""Exponential recency decay, shared by every model that weighs events by age.

One definition keeps "half-life" meaning the same thing everywhere: an event ``half_life_days`` old counts
half as much as one happening ``now``. Events in the future of ``now`` (clock skew) count fully, never more.
"""

from __future__ import annotations

import math

import numpy as np

SECONDS_PER_DAY = 86_400.0


def decay_factors(ts: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """``exp(-ln2 · age / half_life)`` per timestamp, with age = now − ts clipped at zero (float64)."""
    if not half_life_days > 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days!r}")
    age = np.maximum(float(now) - np.asarray(ts, dtype=np.float64), 0.0)
    return np.exp(-math.log(2.0) * age / (half_life_days * SECONDS_PER_DAY))
