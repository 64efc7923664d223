"""The CTR model of a serving process: the current version under ``<model_dir>/_ctr/``, without a restart.

The folder sits beside the recommender's per-advertiser folders; advertiser ids cannot start with
``_``, so it never collides with one. :mod:`adserver.learning.ctr_training` writes the versions.
"""

from __future__ import annotations

from pathlib import Path

from adserver.learning.cache import CurrentVersionCache
from models.ctr import CtrModel, load_ctr

CTR_FOLDER = "_ctr"


def ctr_folder(model_dir: Path) -> Path:
    """Where the CTR model's versions and their ``CURRENT`` pointer live."""
    return Path(model_dir) / CTR_FOLDER


class CtrCache(CurrentVersionCache[CtrModel]):
    """The current CTR model, re-checked at most every ``check_seconds``."""

    def __init__(self, model_dir: Path, check_seconds: float = 5.0) -> None:
        super().__init__(load_ctr, check_seconds)
        self.folder = ctr_folder(model_dir)

    def get(self) -> CtrModel | None:
        """The current model, or None before any training (the auction then assumes the prior)."""
        return self.current(self.folder)
