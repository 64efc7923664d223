"""Serving side of the recommender: each process keeps the current artifact of every advertiser in
memory and notices a new version (``<model_dir>/<advertiser>/CURRENT``) without a restart.

Serving never computes a model: a lookup is a dictionary access and a slice of arrays.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


class ModelCache:
    """Current artifact per advertiser, re-checked at most every ``check_seconds``."""

    def __init__(self, model_dir: Path, check_seconds: float = 5.0) -> None:
        self.model_dir = model_dir
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str | None, object | None]] = {}

    def get(self, advertiser: str):
        """The advertiser's artifact (``models.artifact.Artifact``), or None before any training."""
        entry = self._entries.get(advertiser)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.check_seconds:
            return entry[2]
        with self._lock:
            folder = self.model_dir / advertiser
            try:
                version = (folder / "CURRENT").read_text().strip()
            except OSError:
                version = None
            if entry is not None and entry[1] == version:
                self._entries[advertiser] = (now, version, entry[2])
                return entry[2]
            artifact = None
            if version:
                try:
                    from models.artifact import load_artifact

                    artifact = load_artifact(folder, version)
                    log.info("loaded model %s for %s", version, advertiser)
                except (OSError, ValueError) as exc:
                    log.error("model %s of %s not loaded (%s); keeping the previous one", version, advertiser, exc)
                    artifact = entry[2] if entry else None
            self._entries[advertiser] = (now, version, artifact)
            return artifact
