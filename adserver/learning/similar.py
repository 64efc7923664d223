"""Serving side of the recommender: each process keeps the current artifact of every advertiser in
memory and notices a new version (``<model_dir>/<advertiser>/CURRENT``) without a restart.

Serving never computes a model: a lookup is a dictionary access and a slice of arrays.
"""

from __future__ import annotations

from pathlib import Path

from adserver.learning.cache import CurrentVersionCache
from models.artifact import Artifact, load_artifact


class ModelCache(CurrentVersionCache[Artifact]):
    """Current artifact per advertiser, re-checked at most every ``check_seconds``."""

    def __init__(self, model_dir: Path, check_seconds: float = 5.0) -> None:
        super().__init__(load_artifact, check_seconds)
        self.model_dir = Path(model_dir)

    def get(self, advertiser: str) -> Artifact | None:
        """The advertiser's artifact, or None before any training."""
        return self.current(self.model_dir / advertiser)
